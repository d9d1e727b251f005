"""A BERT sentence classifier: token ids -> encoder -> pooling -> dropout -> logits. The encoder is a
TF-Hub handle as one layer, or the same encoder as Keras layers (for LoRA, `models.lora`).

Two builders, because training and serving see text differently: training feeds length-bucketed
token ids (tokenized once in the `tf.data` pipeline), serving takes raw strings. The second wraps
the first with the TF-Hub preprocessor, so both share every weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

from models.bert.preprocessor import BERT_INPUTS, BertTextPreprocessing
from models.hub_layer import HubLayer

POOLINGS = ("mean", "cls")
# The word-piece embedding table in keras-hub exports and in the official TF-Hub BERT encoders.
WORD_EMBEDDING_NAMES = ("token_embedding", "word_embeddings")
POSITION_EMBEDDING_NAME = "position_embedding"


@dataclass(frozen=True)
class BertClassifierConfig:
    """``pooling``: ``mean`` = average of the unpadded token vectors (for encoders without a trained
    pooler, like the shared MiniLM); ``cls`` = the encoder's ``pooled_output``."""

    encoder_handle: str
    num_classes: int = 2
    pooling: str = "mean"
    dropout_rate: float = 0.1
    trainable_encoder: bool = True
    freeze_word_embeddings: bool = True


def build_bert_classifier(config: BertClassifierConfig, encoder: keras.Model | None = None) -> keras.Model:
    """``input_word_ids``/``input_mask``/``input_type_ids`` [batch, length] -> class logits.

    ``encoder``: the encoder as a Keras model with TF-Hub's inputs and outputs
    (`models.bert.encoder.build_encoder_model`), used as it is (its trainable weights are the caller's
    choice); by default ``config.encoder_handle`` as one layer."""
    if config.pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, not {config.pooling!r}")
    inputs = {name: keras.Input((None,), dtype="int32", name=name) for name in BERT_INPUTS}
    if encoder is None:
        encoder = HubLayer(
            config.encoder_handle, trainable=config.trainable_encoder, pass_training=config.trainable_encoder, name="encoder"
        )
        if config.freeze_word_embeddings:
            for weight in encoder.weights:
                if any(name in weight.name for name in WORD_EMBEDDING_NAMES):
                    weight.trainable = False
    encoded = encoder(inputs)
    if config.pooling == "cls":
        features = encoded["pooled_output"]
    else:
        padding_mask = keras.ops.cast(inputs["input_mask"], "bool")
        features = layers.GlobalAveragePooling1D(name="mean_pooling")(encoded["sequence_output"], mask=padding_mask)
    features = layers.Dropout(config.dropout_rate, name="dropout")(features)
    logits = layers.Dense(config.num_classes, dtype="float32", name="logits")(features)
    return keras.Model(inputs, logits, name="bert_classifier")


def encoder_positions(classifier: keras.Model) -> int | None:
    """How many word pieces the classifier's encoder takes at most: the rows of its position
    embedding (official BERT handles and keras-hub exports both name it so), or None if it has none."""
    rows = [weight.shape[0] for weight in classifier.get_layer("encoder").weights if POSITION_EMBEDDING_NAME in weight.path]
    return int(rows[0]) if rows else None


def build_text_classifier(classifier: keras.Model, preprocessor_handle: str, max_seq_length: int = 128, pairs: bool = False) -> keras.Model:
    """Raw strings [batch] (``pairs``: two inputs, ``text`` and ``second_text``) -> the TF-Hub preprocessor
    -> ``classifier`` -> class logits."""
    texts = [keras.Input((), dtype="string", name=name) for name in (("text", "second_text") if pairs else ("text",))]
    token_inputs = BertTextPreprocessing(preprocessor_handle, max_seq_length, name="preprocessor")(texts if pairs else texts[0])
    return keras.Model(texts if pairs else texts[0], classifier(token_inputs), name="bert_text_classifier")

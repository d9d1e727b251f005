"""A BERT sentence classifier: token ids -> TF-Hub encoder (fine-tuned) -> pooling -> dropout -> logits.

Two builders, because training and serving see text differently: training feeds length-bucketed
token ids (tokenized once in the `tf.data` pipeline), serving takes raw strings. The second wraps
the first with the TF-Hub preprocessor, so both share every weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf
from keras import layers

from models.hub_layer import HubLayer, resolve_handle

BERT_INPUTS = ("input_word_ids", "input_mask", "input_type_ids")
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


def build_bert_classifier(config: BertClassifierConfig) -> keras.Model:
    """``input_word_ids``/``input_mask``/``input_type_ids`` [batch, length] -> class logits."""
    if config.pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, not {config.pooling!r}")
    inputs = {name: keras.Input((None,), dtype="int32", name=name) for name in BERT_INPUTS}
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
    rows = [weight.shape[0] for weight in classifier.get_layer("encoder").weights if POSITION_EMBEDDING_NAME in weight.name]
    return int(rows[0]) if rows else None


class BertTextPreprocessing(keras.layers.Layer):
    """Raw strings -> BERT inputs with a TF-Hub preprocessor's ``tokenize`` and ``bert_pack_inputs``,
    cut at ``max_seq_length`` word pieces as in training, and padded only to the batch's longest
    sentence (a single short request does not pay for 128 positions)."""

    def __init__(self, handle: str, max_seq_length: int = 128, **kwargs):
        super().__init__(trainable=False, **kwargs)
        self.handle, self.max_seq_length = handle, max_seq_length
        self.preprocessor = tf.saved_model.load(resolve_handle(handle))

    def call(self, text):
        tokens = self.preprocessor.tokenize(text)
        packed = self.preprocessor.bert_pack_inputs([tokens], seq_length=self.max_seq_length)
        longest = tf.reduce_max(tf.reduce_sum(packed["input_mask"], axis=1))
        return {name: packed[name][:, :longest] for name in BERT_INPUTS}

    def compute_output_spec(self, text):
        return {name: keras.KerasTensor((text.shape[0], None), dtype="int32") for name in BERT_INPUTS}

    def get_config(self):
        return {**super().get_config(), "handle": self.handle, "max_seq_length": self.max_seq_length}


def build_text_classifier(classifier: keras.Model, preprocessor_handle: str, max_seq_length: int = 128) -> keras.Model:
    """Raw strings [batch] -> the TF-Hub preprocessor -> ``classifier`` -> class logits."""
    text = keras.Input((), dtype="string", name="text")
    token_inputs = BertTextPreprocessing(preprocessor_handle, max_seq_length, name="preprocessor")(text)
    return keras.Model(text, classifier(token_inputs), name="bert_text_classifier")

"""BERT's encoder: keras-hub's ``BertBackbone``, from random weights (a config) or from a checkpoint,
and rewired to TF-Hub's input and output names.

Sizes follow Turc et al.'s compact BERTs for the presets (BERT-Tiny 2x128, BERT-Mini 4x256).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import keras
import keras_hub

from data_pipelines.errors import DataError
from models.bert.preprocessor import BERT_INPUTS
from models.saved_weights import copy_saved_weights


# The asset of a TF-Hub encoder exported by this project (app.exports.hub) that holds its Keras config.
KERAS_BACKBONE_ASSET = "keras_backbone.json"


@dataclass(frozen=True)
class BertEncoderConfig:
    """Sizes of the encoder; ``max_length`` is the longest input (position embeddings)."""

    vocab_size: int
    num_layers: int = 4
    hidden_dim: int = 256
    num_heads: int = 4
    intermediate_dim: int | None = None  # default 4 x hidden_dim, as in BERT
    max_length: int = 128
    dropout: float = 0.1


# --size presets (app.train mlm).
PRESETS = {
    "tiny": dict(num_layers=2, hidden_dim=128, num_heads=2),
    "mini": dict(num_layers=4, hidden_dim=256, num_heads=4),
}


def build_bert_encoder(config: BertEncoderConfig) -> keras_hub.models.BertBackbone:
    """A randomly initialised BERT encoder (token_ids, segment_ids, padding_mask -> sequence/pooled output)."""
    if config.hidden_dim % config.num_heads:
        raise ValueError(f"hidden_dim {config.hidden_dim} is not divisible by num_heads {config.num_heads}")
    return keras_hub.models.BertBackbone(
        vocabulary_size=config.vocab_size,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        hidden_dim=config.hidden_dim,
        intermediate_dim=config.intermediate_dim or 4 * config.hidden_dim,
        dropout=config.dropout,
        max_sequence_length=config.max_length,
    )


def build_encoder_model(backbone, model_name: str = "bert_encoder", transformer_layers: list | None = None) -> keras.Model:
    """Rewire a keras-hub ``BertBackbone``'s own layers to TF-Hub's input and output names.

    Adds ``encoder_outputs`` (every transformer layer's output), which the backbone does not expose.
    ``transformer_layers``: others in place of the backbone's (a pruned encoder, `models.bert.pruning`).
    """
    inputs = {name: keras.Input((None,), dtype="int32", name=name) for name in BERT_INPUTS}
    tokens = backbone.token_embedding(inputs["input_word_ids"])
    x = backbone.embeddings_add((tokens, backbone.position_embedding(tokens), backbone.segment_embedding(inputs["input_type_ids"])))
    x = backbone.embeddings_dropout(backbone.embeddings_layer_norm(x))
    encoder_outputs = []
    for transformer_layer in transformer_layers or backbone.transformer_layers:
        x = transformer_layer(x, padding_mask=inputs["input_mask"])
        encoder_outputs.append(x)
    pooled_output = backbone.pooled_dense(x[:, backbone.cls_token_index, :])
    outputs = {"sequence_output": x, "pooled_output": pooled_output, "encoder_outputs": encoder_outputs}
    return keras.Model(inputs, outputs, name=model_name)


def first_layers(backbone, num_layers: int):
    """A copy of ``backbone`` with only its first ``num_layers`` Transformer layers (embeddings, those
    layers and the pooler keep their weights): a smaller student that starts from its teacher's own
    weights, as DistilBERT's does."""
    if not 1 <= num_layers <= backbone.num_layers:
        raise ValueError(f"num_layers must be between 1 and the checkpoint's {backbone.num_layers} layers, not {num_layers}")
    smaller = type(backbone).from_config({**backbone.get_config(), "num_layers": num_layers})
    for layer in smaller.layers:
        layer.set_weights(backbone.get_layer(layer.name).get_weights())
    return smaller


def load_backbone(checkpoint: Path, seed: int = 0):
    """The checkpoint as a keras-hub ``BertBackbone``. The seed fixes its dropout seed generators, which
    the export keeps: two exports of one checkpoint then fine-tune identically."""
    if not checkpoint.is_dir():
        raise DataError(f"checkpoint folder not found: {checkpoint}")
    keras.utils.set_random_seed(seed)
    return keras_hub.models.BertBackbone.from_preset(str(checkpoint), dtype="float32")


def has_keras_form(encoder_dir: Path | str) -> bool:
    """Whether a TF-Hub encoder folder was exported by this project, with its Keras config."""
    return (Path(encoder_dir) / "assets" / KERAS_BACKBONE_ASSET).is_file()


def backbone_from_hub(encoder_dir: Path | str):
    """The TF-Hub encoder in ``encoder_dir`` as a keras-hub ``BertBackbone`` with the handle's weights.

    A TF-Hub SavedModel is one opaque graph; methods that change layers (LoRA) need the layers. Only
    handles exported by this project say how to rebuild them (`has_keras_form`)."""
    if not has_keras_form(encoder_dir):
        raise DataError(f"{encoder_dir} has no {KERAS_BACKBONE_ASSET}: it was not exported by app.export_hub or app.train mlm")
    backbone = keras.saving.deserialize_keras_object(json.loads((Path(encoder_dir) / "assets" / KERAS_BACKBONE_ASSET).read_text()))
    try:
        copy_saved_weights(backbone.weights, encoder_dir)
    except ValueError as error:
        raise DataError(f"{error}, which its Keras config describes") from None
    return backbone

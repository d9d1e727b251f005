"""A BERT encoder from random weights, with the masked-language-modelling head it is pretrained with.

The encoder is keras-hub's ``BertBackbone`` (token + position + segment embeddings, N Transformer
encoder blocks, a pooler); the head is keras-hub's ``BertMaskedLM`` head, which predicts the word
piece at each masked position with the output projection *tied* to the token embedding (the same
matrix reads word pieces in and writes them out, as in BERT).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import keras_hub


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


# --size presets, the shapes of Turc et al.'s compact BERTs (BERT-Tiny 2x128, BERT-Mini 4x256).
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


def build_masked_lm(config: BertEncoderConfig) -> keras_hub.models.BertMaskedLM:
    """Encoder + tied masked-LM head: the inputs plus ``mask_positions`` [batch, P] -> logits [batch, P, vocab]."""
    return keras_hub.models.BertMaskedLM(backbone=build_bert_encoder(config), preprocessor=None)


def parameter_count(model: keras.Model) -> int:
    return int(sum(weight.numpy().size for weight in model.weights))

"""Structured pruning of a BERT encoder: whole attention heads and feed-forward units removed, so its
matrices become smaller and every call does less arithmetic (Michel et al. 2019, "Are Sixteen Heads
Really Better than One?"). Zeroing single weights (magnitude pruning) leaves dense kernels as slow as
before; removing a head removes its slice of the query, key, value and output projections.

Which heads and units go is the caller's choice (`PruningPlan`, from importance scores);
`pruned_transformer_layers` builds the smaller layers with the kept slices of the trained weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np


@dataclass(frozen=True)
class PruningPlan:
    """What each Transformer layer keeps: head indices and feed-forward unit indices, ascending."""

    heads: tuple[tuple[int, ...], ...]
    units: tuple[tuple[int, ...], ...]


def most_important(importance: np.ndarray, fraction: float) -> tuple[tuple[int, ...], ...]:
    """Per row (one layer) of ``importance``, the indices of all but the ``fraction`` least important;
    ValueError if that leaves a layer with nothing."""
    count = importance.shape[1]
    keep = count - int(round(fraction * count))
    if keep < 1:
        raise ValueError(f"removing {fraction} of {count} leaves none in a layer")
    return tuple(tuple(sorted(np.argsort(-row, kind="stable")[:keep].tolist())) for row in importance)


def plan_from_importance(head_importance: np.ndarray, unit_importance: np.ndarray, heads: float, units: float) -> PruningPlan:
    """Remove the least important ``heads`` fraction of every layer's heads and ``units`` fraction of
    its feed-forward units (the same number in each layer, so the encoder stays uniform)."""
    try:
        kept_heads = most_important(head_importance, heads)
    except ValueError as error:
        raise ValueError(f"heads: {error}") from None
    try:
        kept_units = most_important(unit_importance, units)
    except ValueError as error:
        raise ValueError(f"feed-forward units: {error}") from None
    return PruningPlan(kept_heads, kept_units)


class PrunedTransformerLayer(keras.layers.Layer):
    """BERT's post-norm Transformer layer (as keras-hub's ``TransformerEncoder`` in ``BertBackbone``)
    with its own number of heads and head size. keras-hub's layer derives the head size from
    ``hidden_dim / num_heads``, so it cannot hold 6 heads of 32 where there were 12: this one is made of
    the same Keras layers, with the sizes given."""

    def __init__(self, hidden_dim: int, num_heads: int, head_dim: int, intermediate_dim: int, dropout: float = 0.1,
                 layer_norm_epsilon: float = 1e-12, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim, self.num_heads, self.head_dim, self.intermediate_dim = hidden_dim, num_heads, head_dim, intermediate_dim
        self.dropout, self.layer_norm_epsilon = dropout, layer_norm_epsilon
        self.attention = keras.layers.MultiHeadAttention(num_heads, head_dim, dropout=dropout, dtype=self.dtype_policy, name="self_attention_layer")
        self.attention_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="self_attention_layer_norm")
        self.attention_dropout = keras.layers.Dropout(dropout, dtype=self.dtype_policy)
        # keras-hub's BertBackbone uses the tanh approximation of GELU.
        self.intermediate = keras.layers.Dense(
            intermediate_dim, activation=lambda x: keras.activations.gelu(x, approximate=True), dtype=self.dtype_policy,
            name="feedforward_intermediate_dense",
        )
        self.output_dense = keras.layers.Dense(hidden_dim, dtype=self.dtype_policy, name="feedforward_output_dense")
        self.feedforward_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="feedforward_layer_norm")
        self.feedforward_dropout = keras.layers.Dropout(dropout, dtype=self.dtype_policy)

    def build(self, inputs_shape):
        self.attention.build(inputs_shape, inputs_shape)
        self.attention_norm.build(inputs_shape)
        self.intermediate.build(inputs_shape)
        self.output_dense.build((*inputs_shape[:-1], self.intermediate_dim))
        self.feedforward_norm.build(inputs_shape)

    def call(self, inputs, padding_mask=None, training=None):
        mask = None if padding_mask is None else keras.ops.expand_dims(keras.ops.cast(padding_mask, "bool"), axis=1)
        attended = self.attention(query=inputs, value=inputs, attention_mask=mask, training=training)
        x = self.attention_norm(inputs + self.attention_dropout(attended, training=training))
        transformed = self.output_dense(self.intermediate(x))
        return self.feedforward_norm(x + self.feedforward_dropout(transformed, training=training))

    def get_config(self):
        return {
            **super().get_config(), "hidden_dim": self.hidden_dim, "num_heads": self.num_heads, "head_dim": self.head_dim,
            "intermediate_dim": self.intermediate_dim, "dropout": self.dropout, "layer_norm_epsilon": self.layer_norm_epsilon,
        }


def pruned_transformer_layers(backbone, plan: PruningPlan) -> list[PrunedTransformerLayer]:
    """``backbone``'s Transformer layers (a keras-hub ``BertBackbone``) keeping only ``plan``'s heads and
    units, with their trained weights: the query, key and value kernels lose the pruned heads' columns,
    the attention output kernel their rows; the feed-forward kernels lose the pruned units' columns (in)
    and rows (out)."""
    pruned = []
    for source, heads, units in zip(backbone.transformer_layers, plan.heads, plan.units):
        attention = source._self_attention_layer
        head_dim = attention.get_config()["key_dim"]
        layer = PrunedTransformerLayer(
            backbone.hidden_dim, len(heads), head_dim, len(units), dropout=source.dropout, layer_norm_epsilon=source.layer_norm_epsilon,
            dtype=source.dtype_policy, name=source.name,
        )
        layer.build((None, None, backbone.hidden_dim))
        heads, units = list(heads), list(units)
        for name in ("query", "key", "value"):
            kernel, bias = getattr(attention, f"_{name}_dense").get_weights()  # [hidden, heads, head_dim], [heads, head_dim]
            getattr(layer.attention, f"_{name}_dense").set_weights([kernel[:, heads], bias[heads]])
        kernel, bias = attention._output_dense.get_weights()  # [heads, head_dim, hidden], [hidden]
        layer.attention._output_dense.set_weights([kernel[heads], bias])
        layer.attention_norm.set_weights(source._self_attention_layer_norm.get_weights())
        kernel, bias = source._feedforward_intermediate_dense.get_weights()  # [hidden, units], [units]
        layer.intermediate.set_weights([kernel[:, units], bias[units]])
        kernel, bias = source._feedforward_output_dense.get_weights()  # [units, hidden], [hidden]
        layer.output_dense.set_weights([kernel[units], bias])
        layer.feedforward_norm.set_weights(source._feedforward_layer_norm.get_weights())
        pruned.append(layer)
    return pruned

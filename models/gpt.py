"""A GPT-style Transformer language model: token + position embedding -> N decoder blocks -> logits.

Each decoder block is keras-hub's ``TransformerDecoder`` used decoder-only (no cross-attention):
causal multi-head self-attention and a feed-forward network, each with a residual connection and
layer normalisation applied first (``normalize_first``, as GPT-2 and nanoGPT do), then a final
norm. ``forward_with_cache`` runs the same layers one new token at a time with a key/value cache,
which is what makes generation cost one step per token instead of a whole window.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import keras_hub
from keras import layers, ops

from models.decoding import IncrementalDecoder


@dataclass(frozen=True)
class GptConfig:
    """Sizes of the model; ``context_length`` is the longest sequence it can attend over."""

    vocab_size: int
    context_length: int = 128
    num_layers: int = 4
    num_heads: int = 4
    embedding_dim: int = 128
    feedforward_dim: int | None = None  # default 4 x embedding_dim, as in GPT
    dropout_rate: float = 0.0

    @property
    def head_dim(self) -> int:
        return self.embedding_dim // self.num_heads


# --size presets. `base` is nanoGPT's Shakespeare-character configuration, for users with a GPU.
PRESETS = {
    "tiny": dict(context_length=64, num_layers=2, num_heads=2, embedding_dim=64),
    "small": dict(context_length=128, num_layers=4, num_heads=4, embedding_dim=128),
    "base": dict(context_length=256, num_layers=6, num_heads=6, embedding_dim=384, dropout_rate=0.2),
}


def build_gpt(config: GptConfig) -> keras.Model:
    """Predict the next token at every position of a [batch, time] id sequence (time <= context_length)."""
    if config.embedding_dim % config.num_heads:
        raise ValueError(f"embedding_dim {config.embedding_dim} is not divisible by num_heads {config.num_heads}")
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    x = keras_hub.layers.TokenAndPositionEmbedding(
        vocabulary_size=config.vocab_size,
        sequence_length=config.context_length,
        embedding_dim=config.embedding_dim,
        name="embedding",
    )(token_ids)
    x = layers.Dropout(config.dropout_rate, name="embedding_dropout")(x)
    for index in range(config.num_layers):
        x = keras_hub.layers.TransformerDecoder(
            intermediate_dim=config.feedforward_dim or 4 * config.embedding_dim,
            num_heads=config.num_heads,
            dropout=config.dropout_rate,
            activation="gelu",
            normalize_first=True,
            name=f"decoder_{index}",
        )(x)  # no encoder sequence: self-attention only, with a causal mask by default
    x = layers.LayerNormalization(epsilon=1e-5, name="final_norm")(x)
    logits = layers.Dense(config.vocab_size, dtype="float32", name="logits")(x)
    return keras.Model(token_ids, logits, name="gpt")


def empty_cache(model: keras.Model, batch_size) -> tuple:
    """A zero key/value cache: one [batch, 2 (key, value), context_length, heads, head_dim] per block
    (separate tensors: one stacked tensor would be copied whole at every step)."""
    decoders = _decoders(model)
    attention = decoders[0]._self_attention_layer
    shape = [batch_size, 2, context_length(model), attention.num_heads, attention.key_dim]
    return tuple(ops.zeros(shape, dtype=model.compute_dtype) for _ in decoders)


def forward_with_cache(model: keras.Model, token_ids, cache, cache_index):
    """Logits for ``token_ids`` placed at positions ``cache_index ...`` of the sequence, attending over
    the cached keys/values of earlier positions; returns (logits [batch, time, vocab], updated cache)."""
    x = model.get_layer("embedding")(token_ids, start_index=cache_index)
    next_cache = []
    for decoder, layer_cache in zip(_decoders(model), cache):
        x, layer_cache = decoder(x, self_attention_cache=layer_cache, self_attention_cache_update_index=cache_index)
        next_cache.append(layer_cache)
    logits = model.get_layer("logits")(model.get_layer("final_norm")(x))
    return logits, tuple(next_cache)


def attention_scores(model: keras.Model, token_ids, layer_index: int = 0):
    """The causal self-attention weights of one decoder block: [batch, heads, query, key], each row
    a softmax over the positions up to the query (for pictures; the model does not need them)."""
    decoder = _decoders(model)[layer_index]
    block_input = keras.Model(model.input, decoder.input)(token_ids)
    normalized = decoder._self_attention_layer_norm(block_input)  # normalize_first: attention reads the normed input
    length = ops.shape(token_ids)[1]
    causal_mask = ops.tril(ops.ones([length, length], dtype="bool"))[None]
    _, scores = decoder._self_attention_layer(
        normalized, normalized, attention_mask=causal_mask, return_attention_scores=True, training=False
    )
    return scores


def gpt_decoder(model: keras.Model) -> IncrementalDecoder:
    """Generation with a key/value cache. When the cache is full, it is rebuilt from the newest half
    of the context (one pass over those tokens), so long generations cost ~1.5 steps per token."""
    window = context_length(model)

    def prefill(token_ids):
        logits, cache = forward_with_cache(model, token_ids, empty_cache(model, ops.shape(token_ids)[0]), 0)
        return logits[:, -1], (cache, ops.shape(token_ids)[1])

    def step(history, state):
        cache, filled = state

        def next_position():
            logits, next_cache = forward_with_cache(model, history[:, -1:], cache, filled)
            return logits[:, -1], (next_cache, filled + 1)

        return ops.cond(filled < window, next_position, lambda: prefill(history[:, -(window // 2):]))

    return IncrementalDecoder(prefill, step, context_length=window)


def context_length(model: keras.Model) -> int:
    return model.get_layer("embedding").position_embedding.sequence_length


def _decoders(model: keras.Model) -> list:
    return [layer for layer in model.layers if isinstance(layer, keras_hub.layers.TransformerDecoder)]

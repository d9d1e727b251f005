"""An LSTM language model: token ids -> Embedding -> LSTM (x layers) -> logits over the vocabulary."""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

from models.decoding import IncrementalDecoder


@dataclass(frozen=True)
class LstmLmConfig:
    """Sizes of the language model. ``dropout_rate`` acts between layers, never inside the recurrence."""

    vocab_size: int
    embedding_dim: int = 256
    lstm_units: int = 128
    num_layers: int = 1
    dropout_rate: float = 0.0


def build_lstm_lm(config: LstmLmConfig) -> keras.Model:
    """Predict the next token at every position of a [batch, time] id sequence.

    The LSTM layers keep Keras's defaults (tanh, sigmoid, no recurrent dropout, not unrolled), which is
    what makes them eligible for the fused cuDNN kernel on a GPU.
    """
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    x = layers.Embedding(config.vocab_size, config.embedding_dim, name="embedding")(token_ids)
    for index in range(1, config.num_layers + 1):
        x = layers.LSTM(config.lstm_units, return_sequences=True, name=f"lstm_{index}")(x)
        if config.dropout_rate > 0:
            x = layers.Dropout(config.dropout_rate, name=f"dropout_{index}")(x)
    logits = layers.Dense(config.vocab_size, dtype="float32", name="logits")(x)
    return keras.Model(token_ids, logits, name="lstm_lm")


def lstm_decoder(model: keras.Model) -> IncrementalDecoder:
    """Generation that carries each LSTM's (h, c) state from token to token: one cell step per token.

    The prompt runs through ``keras.layers.RNN`` wrappers around the trained cells (same weights),
    which return their final states; each new token then goes through the cells directly.
    """
    embedding, head = model.get_layer("embedding"), model.get_layer("logits")
    cells = [layer.cell for layer in model.layers if isinstance(layer, layers.LSTM)]
    readers = [layers.RNN(cell, return_sequences=True, return_state=True) for cell in cells]

    def prefill(token_ids):
        x, states = embedding(token_ids), []
        for reader in readers:
            x, *state = reader(x)
            states.append(tuple(state))
        return head(x[:, -1]), tuple(states)

    def step(history, states):
        x, next_states = embedding(history[:, -1]), []
        for cell, state in zip(cells, states):
            x, state = cell(x, list(state))
            next_states.append(tuple(state))
        return head(x), tuple(next_states)

    return IncrementalDecoder(prefill, step)

"""Model builders: the architectures the tutorials describe, and GPU-friendly LSTM settings."""

from __future__ import annotations

import numpy as np

from models.dense_mnist import DenseMnistConfig, build_dense_mnist
from models.lstm_lm import LstmLmConfig, build_lstm_lm


def test_dense_mnist_is_784_64_64_10_softmax():
    model = build_dense_mnist()
    dense = [layer for layer in model.layers if layer.__class__.__name__ == "Dense"]
    assert [layer.units for layer in dense] == [64, 64, 10]
    assert [layer.activation.__name__ for layer in dense] == ["relu", "relu", "softmax"]
    assert model.input_shape == (None, 784)
    probabilities = model(np.random.default_rng(0).random((3, 784), dtype="float32")).numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert not any(layer.__class__.__name__ == "Dropout" for layer in model.layers)


def test_dense_mnist_dropout_and_width_come_from_the_config():
    model = build_dense_mnist(DenseMnistConfig(hidden_units=(128, 32), dropout_rate=0.2))
    assert [layer.rate for layer in model.layers if layer.__class__.__name__ == "Dropout"] == [0.2, 0.2]
    assert model.get_layer("hidden_1").units == 128


def test_lstm_lm_shapes_and_cudnn_eligible_layers():
    model = build_lstm_lm(LstmLmConfig(vocab_size=70, embedding_dim=16, lstm_units=24, num_layers=2))
    logits = model(np.ones((2, 11), dtype="int32"))
    assert logits.shape == (2, 11, 70)
    lstms = [layer for layer in model.layers if layer.__class__.__name__ == "LSTM"]
    assert len(lstms) == 2
    for lstm in lstms:
        # The cuDNN kernel needs exactly these settings (Keras falls back to a slow loop otherwise).
        assert lstm.cell.activation.__name__ == "tanh"
        assert lstm.cell.recurrent_activation.__name__ == "sigmoid"
        assert lstm.cell.recurrent_dropout == 0 and not lstm.unroll and lstm.cell.use_bias
        assert lstm.return_sequences

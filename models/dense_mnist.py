"""The classic first network: 784 pixels -> 64 relu -> 64 relu -> 10-way softmax."""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers


@dataclass(frozen=True)
class DenseMnistConfig:
    """Layer sizes of the dense classifier; dropout is off unless ``dropout_rate`` > 0."""

    input_dim: int = 784
    hidden_units: tuple[int, ...] = (64, 64)
    num_classes: int = 10
    dropout_rate: float = 0.0


def build_dense_mnist(config: DenseMnistConfig = DenseMnistConfig()) -> keras.Model:
    """Flat [0, 1]-scaled images in, class probabilities out (train with sparse categorical cross-entropy)."""
    images = keras.Input(shape=(config.input_dim,), name="images")
    x = images
    for index, units in enumerate(config.hidden_units, start=1):
        x = layers.Dense(units, activation="relu", name=f"hidden_{index}")(x)
        if config.dropout_rate > 0:
            x = layers.Dropout(config.dropout_rate, name=f"dropout_{index}")(x)
    # Probabilities stay float32 under mixed precision, for a numerically stable loss.
    probabilities = layers.Dense(config.num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(images, probabilities, name="dense_mnist")

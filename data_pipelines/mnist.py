"""MNIST handwritten digits as `tf.data` pipelines of flat, [0, 1]-scaled 784-pixel images.

The offline copy in ``../shared/data/mnist/mnist.npz`` has the layout of
``keras.datasets.mnist.load_data()``, with a 5,000-image training subset sorted by class: it is
shuffled (seeded) before a validation split is carved from it. The test split is never touched
for training or validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from data_pipelines.batching import batch_for_training
from data_pipelines.errors import DataError
from data_pipelines.sources import OnlineSource, resolve_data_file

MNIST_FILE = "mnist/mnist.npz"
MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
IMAGE_PIXELS = 28 * 28


def _download_mnist() -> str:
    """Fetch mnist.npz into the Keras cache, exactly as `keras.datasets.mnist.load_data()` does."""
    import keras

    return keras.utils.get_file("mnist.npz", origin=MNIST_URL)


ONLINE_MNIST = OnlineSource(f"{MNIST_URL} (keras.datasets.mnist)", _download_mnist)


TEST_BATCH_SIZE = 256


@dataclass(frozen=True)
class MnistConfig:
    """How much MNIST to use and how to split it."""

    data_dir: str | None = None
    validation_fraction: float = 0.1
    max_train_samples: int | None = None
    batch_size: int = 32
    seed: int = 0


@dataclass(frozen=True)
class MnistData:
    """The three splits as batched datasets, plus where they came from."""

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    source: Path
    counts: dict

    def describe(self) -> str:
        counts = ", ".join(f"{split} {count:,}" for split, count in self.counts.items())
        return f"MNIST from {self.source}: {counts}"


def flatten_images(images: np.ndarray) -> np.ndarray:
    """uint8 [N, 28, 28] -> float32 [N, 784] in [0, 1], the model's input."""
    return images.reshape(len(images), IMAGE_PIXELS).astype("float32") / 255.0


def read_mnist_arrays(path: Path) -> dict[str, np.ndarray]:
    """Read the four arrays of a `mnist.npz`, with a clear error for a file of the wrong layout."""
    try:
        with np.load(path) as npz:
            arrays = {key: npz[key] for key in ("x_train", "y_train", "x_test", "y_test")}
    except (OSError, ValueError, KeyError) as error:
        raise DataError(f"{path} is not an mnist.npz (x_train, y_train, x_test, y_test): {error}") from None
    if len(arrays["x_train"]) == 0:
        raise DataError(f"{path} holds no training images")
    return arrays


def load_mnist(config: MnistConfig = MnistConfig()) -> MnistData:
    """Locate, read, shuffle, split and batch MNIST."""
    path = resolve_data_file(MNIST_FILE, config.data_dir, ONLINE_MNIST)
    arrays = read_mnist_arrays(path)
    order = np.random.default_rng(config.seed).permutation(len(arrays["x_train"]))
    x_all = flatten_images(arrays["x_train"][order])
    y_all = arrays["y_train"][order].astype("int32")

    validation_count = max(1, int(round(len(x_all) * config.validation_fraction)))
    x_val, y_val = x_all[:validation_count], y_all[:validation_count]
    x_train, y_train = x_all[validation_count:], y_all[validation_count:]
    if config.max_train_samples:
        x_train, y_train = x_train[: config.max_train_samples], y_train[: config.max_train_samples]
    x_test, y_test = flatten_images(arrays["x_test"]), arrays["y_test"].astype("int32")

    def as_dataset(x, y, shuffle_seed=None, batch_size=config.batch_size):
        return batch_for_training(tf.data.Dataset.from_tensor_slices((x, y)), batch_size, shuffle_seed=shuffle_seed)

    return MnistData(
        train=as_dataset(x_train, y_train, shuffle_seed=config.seed),
        validation=as_dataset(x_val, y_val),
        # The test set is only scored: its batch size changes no metric, only the number of steps (each
        # with a fixed cost; several workers also synchronise at every one), so it is batched larger.
        test=as_dataset(x_test, y_test, batch_size=max(config.batch_size, TEST_BATCH_SIZE)),
        source=path,
        counts={"train": len(x_train), "validation": len(x_val), "test": len(x_test)},
    )

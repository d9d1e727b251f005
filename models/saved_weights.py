"""Weights of a Keras model read back from a SavedModel this project exported (a TF-Hub encoder, a
GPT export): a SavedModel is one graph, but its variables keep their Keras paths as names."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf


def copy_saved_weights(weights: list, saved_model_dir: Path | str) -> None:
    """Assign each of ``weights`` the SavedModel variable of the same path; ValueError naming the first
    weight the SavedModel lacks or holds in another shape."""
    saved = {variable.name.split(":")[0]: variable for variable in tf.saved_model.load(str(saved_model_dir)).variables}
    for weight in weights:
        if weight.path not in saved or tuple(saved[weight.path].shape) != tuple(weight.shape):
            raise ValueError(f"{saved_model_dir} does not hold the weight {weight.path} {tuple(weight.shape)}")
        weight.assign(saved[weight.path])

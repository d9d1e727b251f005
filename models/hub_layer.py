"""A TF-Hub SavedModel as a Keras 3 layer, without tf-keras.

`tensorflow_hub.KerasLayer` is a Keras 2 layer and fails inside Keras 3 models. This layer resolves
the handle with `tensorflow_hub.resolve` (tfhub.dev or Kaggle URL, or a local folder; downloads are
cached in ``TFHUB_CACHE_DIR``), loads it with Keras 3's `TFSMLayer`, and calls the restored
``__call__`` (the signatures flatten dict inputs, so they cannot be used for BERT's dict).
"""

from __future__ import annotations

import keras
import tensorflow_text  # noqa: F401  (registers the TF Text ops that BERT preprocessors are made of)
from keras.src import backend


def resolve_handle(handle: str) -> str:
    """A local folder for ``handle``: local paths as they are, URLs downloaded (or found) in the TF-Hub cache."""
    import tensorflow_hub as hub

    return hub.resolve(handle)


class HubLayer(keras.layers.TFSMLayer):
    """Call a TF-Hub model inside a Keras 3 functional model; ``trainable=True`` fine-tunes its weights."""

    def __init__(
        self, handle: str, trainable: bool = False, call_endpoint: str = "__call__", pass_training: bool = False, **kwargs
    ):
        """``pass_training``: the model's function takes ``training`` (TF-Hub BERT encoders do), so
        its dropout is on while fine-tuning and off at inference, as with `hub.KerasLayer`."""
        super().__init__(resolve_handle(handle), call_endpoint=call_endpoint, trainable=trainable, **kwargs)
        self.handle = handle
        self.pass_training = pass_training

    def call(self, inputs, training=False):
        if self.pass_training:
            return self.call_endpoint_fn(inputs, training=bool(training))
        return self.call_endpoint_fn(inputs)

    def _add_existing_weight(self, weight):
        # TF names end in ":0", which Keras 3 rejects in optimizer slot names: drop the suffix.
        variable = backend.Variable(
            initializer=weight,
            trainable=weight.trainable,
            dtype=weight.dtype,
            shape=weight.shape,
            name=weight.name.split(":")[0].replace("/", "_"),
        )
        self._track_variable(variable)

    def get_config(self):
        config = super().get_config()
        config.pop("filepath", None)
        return {**config, "handle": self.handle, "pass_training": self.pass_training}

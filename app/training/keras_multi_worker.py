"""The one place where Keras 3 is patched: `model.fit` under `tf.distribute.MultiWorkerMirroredStrategy`.

Keras 3.15's TensorFlow trainer fails with several workers (keras-team/keras#20585 and #20329,
tensorflow/tensorflow#72388; no upstream fix yet) in two places:

1. ``_maybe_symbolic_build`` reduces a whole (x, y) batch of per-replica values with one
   ``strategy.reduce`` call, which the multi-worker strategy cannot do ("Attempt to convert a value
   (PerReplica ...)"). Building the model symbolically needs only shapes and dtypes, so the patch
   hands it the dataset's element spec instead of a batch.
2. ``reduce_per_replica`` averages every step output over workers with ``axis=0``, which fails for
   the scalar loss and metrics ("Invalid reduction dimension 0"). The patch averages scalars with
   ``axis=None`` (one value per replica) and leaves every other case to Keras.

A third failure is avoided rather than patched: with ``steps_per_execution`` > 1 the multi-step
graph loop fails under several workers ("You must feed a value for placeholder tensor ..."), so the
trainer runs one step per graph call there.

Why a patch and not our own train step through ``strategy.run``: `fit` is what every task, callback
and notebook already uses; a second training loop would duplicate all of it for one upstream bug.
The patch is applied only when training on several workers, and only to the Keras versions it was
tested with: on any other version it refuses with a clear message instead of guessing.
"""

from __future__ import annotations

import keras

from app.common.errors import UsageError

UPSTREAM_ISSUE = "https://github.com/keras-team/keras/issues/20585"
TESTED_KERAS_VERSIONS = ("3.15.0",)


def patch_keras_for_multi_worker() -> None:
    """Make `model.fit` work under `MultiWorkerMirroredStrategy` (idempotent)."""
    if keras.__version__ not in TESTED_KERAS_VERSIONS:
        raise UsageError(
            f"multi-worker training needs a small fix of Keras's TensorFlow trainer ({UPSTREAM_ISSUE}) that was "
            f"tested with Keras {', '.join(TESTED_KERAS_VERSIONS)} only, and this is Keras {keras.__version__}: "
            "install the version in requirements.txt, or check whether upstream fixed it and extend "
            "TESTED_KERAS_VERSIONS in app/training/keras_multi_worker.py"
        )
    from keras.src.backend.tensorflow import trainer as tf_trainer

    if getattr(tf_trainer, "_fromzero_patched", False):
        return
    original_reduce = tf_trainer.reduce_per_replica
    original_build = tf_trainer.TensorFlowTrainer._maybe_symbolic_build

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(strategy):
            return keras.tree.map_structure(
                lambda value: strategy.reduce("MEAN", value, axis=None if value.shape.rank == 0 else 0), values
            )
        return original_reduce(values, strategy, reduction)

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is not None and tf_trainer._collective_all_reduce_multi_worker(self.distribute_strategy):
            # Shapes and dtypes are all the symbolic build reads. Taking them from the dataset's spec, rather
            # than a batch, also leaves a reshuffling dataset's epoch order as it is without a strategy.
            data_batch, iterator = iterator.data_adapter.get_tf_dataset().element_spec, None
        return original_build(self, iterator=iterator, data_batch=data_batch)

    tf_trainer.reduce_per_replica = reduce_per_replica
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    tf_trainer._fromzero_patched = True


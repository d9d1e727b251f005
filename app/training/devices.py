"""Device-dependent choices made in one place: XLA, mixed precision, multi-GPU strategy.

The same code runs on CPU and GPU; only these decisions differ. CPUs differ too: bfloat16 exists only
on those with AMX or AVX512-BF16 instructions, and even there ``auto`` times the model before using it
(app.training.autotune).
"""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path

import keras
import tensorflow as tf


BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
ONEDNN_BF16 = "bfloat16 (oneDNN rewrite)"
ONEDNN_BF16_OPTION = "auto_mixed_precision_onednn_bfloat16"
ASSUME_BF16_CPU = "FROMZERO_ASSUME_BF16_CPU"
AS_EXPORTED = "as exported"


def gpus() -> list:
    return tf.config.list_physical_devices("GPU")


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_supports_bf16() -> bool:
    """Whether the CPU has bfloat16 matrix instructions (AMX-BF16 or AVX512-BF16).
    ``FROMZERO_ASSUME_BF16_CPU=1`` says yes on any CPU, so that tests see what a bf16 CPU would do."""
    if os.environ.get(ASSUME_BF16_CPU) == "1":
        return True
    return any(flag in cpu_flags() for flag in BF16_CPU_FLAGS)


def gpu_mixed_policy() -> str:
    """Keras's mixed policy for the first GPU: bfloat16 on Ampere or newer, float16 before."""
    details = tf.config.experimental.get_device_details(gpus()[0])
    major, _ = details.get("compute_capability", (0, 0))
    return "mixed_bfloat16" if major >= 8 else "mixed_float16"


def set_precision_policy(policy: str, restored_graph: bool = False) -> str:
    """Train in ``policy`` (Keras's float32, mixed_bfloat16 or mixed_float16; ``auto`` is decided in
    app.training.autotune). A model that runs a restored SavedModel graph (``restored_graph``: a TF-Hub
    encoder) cannot be re-typed by a Keras policy, so on a CPU its bf16 is oneDNN's bfloat16 graph
    rewrite instead. Returns the precision as the run's summary names it."""
    tf.config.optimizer.set_experimental_options({ONEDNN_BF16_OPTION: False})
    if restored_graph and policy == "mixed_bfloat16" and not gpus():
        return use_onednn_bf16_rewrite()
    keras.mixed_precision.set_global_policy(policy)
    return policy


@contextlib.contextmanager
def precision_kept():
    """Restore Keras's global dtype policy and oneDNN's bf16 rewrite afterwards, so that one training
    run's precision does not leak into the models and graphs built after it in the same process."""
    policy = keras.mixed_precision.global_policy()
    rewrite = tf.config.optimizer.get_experimental_options().get(ONEDNN_BF16_OPTION, False)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(policy)
        tf.config.optimizer.set_experimental_options({ONEDNN_BF16_OPTION: rewrite})


def use_onednn_bf16_rewrite() -> str:
    """Let oneDNN run the float32 graphs of this process (restored SavedModels included) in bfloat16
    where it is safe. The rewrite exists only on CPUs with bf16 instructions: elsewhere, float32."""
    keras.mixed_precision.set_global_policy("float32")
    if not cpu_supports_bf16():
        print("note: no bf16 instructions (AMX-BF16/AVX512-BF16) on this CPU: running in float32", flush=True)
        return "float32"
    tf.config.optimizer.set_experimental_options({ONEDNN_BF16_OPTION: True})
    return ONEDNN_BF16


def set_inference_precision(choice: str) -> str:
    """How this process runs the exports it loads. ``off`` (the default): the graph as exported, so
    the answers equal TF Serving's and ``tf.saved_model.load``'s. ``bf16``: oneDNN's bfloat16 rewrite,
    faster on CPUs with bf16 instructions, with answers that differ (logits in the third digit, sampled
    text after a few characters): a speed the user asks for, never a default."""
    if choice == "bf16":
        return use_onednn_bf16_rewrite()
    tf.config.optimizer.set_experimental_options({ONEDNN_BF16_OPTION: False})
    return AS_EXPORTED


def set_threads(intra_op: int, inter_op: int | None = None) -> int:
    """Use ``intra_op`` threads inside TensorFlow's ops and ``inter_op`` between them (None = as many
    as inside; 0 = TensorFlow's default: every core); returns the number inside in effect. Takes effect
    only before TensorFlow has run anything in this process (a command's own process); later (a
    notebook, a test) the pools stay as they are."""
    inter_op = intra_op if inter_op is None else inter_op
    try:
        if intra_op:
            tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        if inter_op:
            tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError:  # "cannot be modified after initialization"
        pass
    return tf.config.threading.get_intra_op_parallelism_threads()


def thread_settings() -> dict[str, int]:
    """TensorFlow's thread pools as set in this process (0 = TensorFlow's default)."""
    return {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}


def distribution_strategy(cluster=None, collective: str = "auto", cluster_timeout: float = 300) -> tf.distribute.Strategy:
    """Several workers (``TF_CONFIG``, see app.training.cluster) -> MultiWorkerMirroredStrategy; several local
    GPUs -> MirroredStrategy; else the default strategy."""
    if cluster is not None:
        from app.training.cluster import multi_worker_strategy

        return multi_worker_strategy(cluster, collective, cluster_timeout)
    if len(gpus()) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def describe(jit_compile: bool, policy: str, strategy: tf.distribute.Strategy) -> str:
    device = f"{len(gpus())} GPU(s)" if gpus() else "CPU"
    return (
        f"device: {device}, XLA jit_compile={'on' if jit_compile else 'off'}, precision {policy}, "
        f"{strategy.num_replicas_in_sync} replica(s) ({type(strategy).__name__})"
    )

"""Device-dependent choices made in one place: XLA, mixed precision, multi-GPU strategy.

The same code runs on CPU and GPU; only these decisions differ. CPUs differ too: bfloat16 pays only
on those with AMX or AVX512-BF16 instructions, and even there it is measured before it is used.
"""

from __future__ import annotations

import contextlib
import functools
import platform
import time
from pathlib import Path

import keras
import tensorflow as tf

from app.common.errors import UsageError

BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
# bf16 is used on a CPU only when its matrix products measure at least this much faster than fp32.
BF16_MIN_SPEEDUP = 1.3
ONEDNN_BF16 = "bfloat16 (oneDNN rewrite)"
ONEDNN_BF16_OPTION = "auto_mixed_precision_onednn_bfloat16"


def gpus() -> list:
    return tf.config.list_physical_devices("GPU")


def use_jit_compile(choice: str, cpu_default: bool, multi_worker: bool = False) -> bool:
    """``on``/``off`` as asked; ``auto`` = XLA on GPU, and the task's measured preference on CPU.
    XLA cannot compile collectives for CPUs, so several CPU workers train without it."""
    if multi_worker and not gpus():
        if choice == "on":
            raise UsageError("--jit-compile on: XLA cannot compile the workers' collectives on CPUs (use auto or off)")
        return False
    if choice == "auto":
        return True if gpus() else cpu_default
    return choice == "on"


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
    """Whether the CPU has bfloat16 matrix instructions (AMX-BF16 or AVX512-BF16)."""
    return any(flag in cpu_flags() for flag in BF16_CPU_FLAGS)


@functools.cache
def bf16_matmul_speedup(size: int = 1024, repeats: int = 5) -> float:
    """How many times faster a [size x size] matrix product runs in bfloat16 than in float32 here."""

    def seconds(dtype) -> float:
        a = tf.random.stateless_normal([size, size], seed=[0, 1], dtype=tf.float32)
        a = tf.cast(a, dtype)
        tf.linalg.matmul(a, a).numpy()  # warm-up: kernel selection
        start = time.perf_counter()
        for _ in range(repeats):
            tf.linalg.matmul(a, a).numpy()
        return time.perf_counter() - start

    return seconds(tf.float32) / seconds(tf.bfloat16)


def set_precision_policy(choice: str, bf16_candidate_on_cpu: bool = False, restored_graph: bool = False) -> str:
    """``off`` = float32, ``bf16`` = bfloat16. ``auto``: on a GPU, mixed precision (bfloat16 on Ampere
    or newer, float16 before); on a CPU, bfloat16 only for models that may gain from it
    (``bf16_candidate_on_cpu``) on CPUs with bf16 instructions where it measures faster, else float32.

    Models made of Keras layers get Keras's ``mixed_bfloat16`` policy; a model that runs a restored
    SavedModel graph (``restored_graph``: a TF-Hub encoder) cannot be re-typed by a Keras policy, so
    on a CPU it gets oneDNN's bfloat16 graph rewrite instead."""
    policy = "float32"
    if choice == "bf16":
        policy = "mixed_bfloat16"
    elif choice == "auto" and gpus():
        details = tf.config.experimental.get_device_details(gpus()[0])
        major, _ = details.get("compute_capability", (0, 0))
        policy = "mixed_bfloat16" if major >= 8 else "mixed_float16"
    elif choice == "auto" and bf16_candidate_on_cpu and cpu_supports_bf16() and bf16_matmul_speedup() >= BF16_MIN_SPEEDUP:
        policy = "mixed_bfloat16"
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

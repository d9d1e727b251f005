"""Device-dependent choices made in one place: XLA, mixed precision, multi-GPU strategy.

The same code runs on CPU and GPU; only these decisions differ.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def gpus() -> list:
    return tf.config.list_physical_devices("GPU")


def use_jit_compile(choice: str, cpu_default: bool) -> bool:
    """``on``/``off`` as asked; ``auto`` = XLA on GPU, and the task's measured preference on CPU."""
    if choice == "auto":
        return True if gpus() else cpu_default
    return choice == "on"


def set_precision_policy(choice: str) -> str:
    """``auto`` = mixed precision on GPU (bfloat16 on Ampere or newer, float16 before), float32 on CPU."""
    policy = "float32"
    if choice == "auto" and gpus():
        details = tf.config.experimental.get_device_details(gpus()[0])
        major, _ = details.get("compute_capability", (0, 0))
        policy = "mixed_bfloat16" if major >= 8 else "mixed_float16"
    keras.mixed_precision.set_global_policy(policy)
    return policy


def distribution_strategy() -> tf.distribute.Strategy:
    """Mirror the model over every GPU when there is more than one, else the default strategy."""
    if len(gpus()) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def describe(jit_compile: bool, policy: str, strategy: tf.distribute.Strategy) -> str:
    device = f"{len(gpus())} GPU(s)" if gpus() else "CPU"
    return (
        f"device: {device}, XLA jit_compile={'on' if jit_compile else 'off'}, precision {policy}, "
        f"{strategy.num_replicas_in_sync} replica(s)"
    )

"""The all-reduce that every multi-worker training step runs, timed alone, and the ring model that
projects it to other clusters (used by ``bench/multi_worker.py``).

Run as a worker (``python -m app.launch --workers N -- python bench/allreduce.py 4096 65536 ...``), each
process builds the trainer's own ``MultiWorkerMirroredStrategy`` (RING collective) from its
``TF_CONFIG`` and times, for each size in bytes, repeated all-reduces (sum) of one float32 tensor of that
size inside ``strategy.run`` in a ``tf.function``: what Keras does with a step's gradients, which
TensorFlow packs into one tensor. The chief prints one JSON line: the median seconds per all-reduce.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

WARMUP = 2  # calls before timing: tracing, the collective's first set-up, buffers
TIMED_BYTES = 2**28  # per size, time about this many bytes of all-reduce (fewer repetitions for big tensors) ...
MIN_REPEATS, MAX_REPEATS = 5, 40  # ... within these bounds


def repeats(size: int) -> int:
    """Timed all-reduces of ``size`` bytes: the same on every worker (they must run the same collectives)."""
    return max(MIN_REPEATS, min(MAX_REPEATS, TIMED_BYTES // size))


def time_allreduces(sizes: list[int]) -> dict[int, float]:
    """Median seconds of one all-reduce of each size, on this worker of the ``TF_CONFIG`` cluster."""
    from app.training.cluster import cluster_from_environment, multi_worker_strategy

    strategy = multi_worker_strategy(cluster_from_environment(), "ring", timeout_seconds=120)
    import tensorflow as tf

    def step(values):
        summed = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, values)
        return summed[:1]  # fetch one number: the whole all-reduce must finish, little to copy back

    medians = {}
    for size in sizes:
        values = tf.ones([size // 4], tf.float32)
        run = tf.function(lambda: strategy.run(step, args=(values,)))
        for _ in range(WARMUP):
            run().numpy()
        seconds = []
        for _ in range(repeats(size)):
            start = time.perf_counter()
            run().numpy()
            seconds.append(time.perf_counter() - start)
        medians[size] = statistics.median(seconds)
    return medians


def fit_line(sizes: list[int], seconds: list[float]) -> tuple[float, float]:
    """``seconds ~ latency + bytes / bandwidth``, least squares on the relative error (the sizes span
    five orders of magnitude: plain least squares would fit the largest alone). Returns (latency s,
    bandwidth bytes/s)."""
    import numpy as np

    weights = 1 / np.asarray(seconds)
    design = np.stack([np.ones(len(sizes)), np.asarray(sizes, dtype=float)], axis=1) * weights[:, None]
    (latency, per_byte), *_ = np.linalg.lstsq(design, np.asarray(seconds) * weights, rcond=None)
    return float(latency), float(1 / per_byte)


def ring_allreduce_seconds(size: int, workers: int, hop_latency: float, link_bandwidth: float) -> float:
    """A ring all-reduce of ``size`` bytes over ``workers`` hosts: 2(H-1) steps, each one hop's latency
    and 1/H of the tensor over each host's link (reduce-scatter, then all-gather)."""
    return 2 * (workers - 1) * hop_latency + 2 * (workers - 1) / workers * size / link_bandwidth


def main() -> None:
    medians = time_allreduces([int(size) for size in sys.argv[1:]])
    from app.training.cluster import cluster_from_environment

    if cluster_from_environment().is_chief:
        print(json.dumps({"seconds_per_allreduce": {str(size): seconds for size, seconds in medians.items()}}), flush=True)


if __name__ == "__main__":
    main()

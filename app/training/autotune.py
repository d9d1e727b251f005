"""``--mixed-precision auto`` and ``--jit-compile auto``, decided by timing the model itself.

Whether bfloat16 or XLA pays depends on the CPU *and* the model: a bf16 matrix product can run twice
as fast while a whole model trains slower in bf16. So on a CPU, ``auto`` trains a few real steps of
each candidate (float32 / mixed_bfloat16, XLA off / on) at the run's own shapes and keeps the fastest.
The decision is remembered in ``<runs>/autotune.json`` per CPU model, task, model settings, batch
shapes and library versions, so later runs of the same kind skip the probe. Never slower than float32
beyond noise: another setting wins only when it measured at least ``MIN_GAIN`` faster than plain float32.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import keras
import tensorflow as tf

from app.common.errors import UsageError
from app.training import devices

CACHE_FILE = "autotune.json"
# A probe costs a few compilations and ~10 steps per candidate: runs shorter than this do not repay it.
MIN_RUN_STEPS = 300
MIN_RUN_SECONDS = 120  # ... and runs that take less than this in float32
MIN_GAIN = 1.05  # the winner must beat plain float32 by 5 % (the spread of repeated timings here)
MIN_TIMED_STEPS = 8


@dataclass(frozen=True)
class Candidate:
    precision: str  # "float32", "mixed_bfloat16" or "mixed_float16"
    jit_compile: bool

    @property
    def label(self) -> str:
        return self.precision + ("+xla" if self.jit_compile else "")


@dataclass
class Choice:
    """The setting a run trains with, and why (``report`` goes into the run's JSON line)."""

    candidate: Candidate
    precision: str  # as applied: "bfloat16 (oneDNN rewrite)" for a restored graph
    report: dict = field(default_factory=dict)


def candidates(mixed_precision: str, jit_compile: str, multi_worker: bool) -> tuple[list[Candidate], str | None]:
    """The settings the flags allow, plainest first, and the rule that settled ``auto`` without a
    probe (or None when the candidates must be timed)."""
    xla = {"on": [True], "off": [False], "auto": [False, True]}[jit_compile]
    precisions = {"off": ["float32"], "bf16": ["mixed_bfloat16"], "auto": ["float32", "mixed_bfloat16"]}[mixed_precision]
    rule = None
    if devices.gpus():
        precisions = [devices.gpu_mixed_policy()] if mixed_precision == "auto" else precisions
        xla, rule = xla[-1:], "GPU: mixed precision and XLA"
    elif multi_worker:  # XLA cannot compile CPU collectives; every worker must make the same choice
        if jit_compile == "on":
            raise UsageError("--jit-compile on: XLA cannot compile the workers' collectives on CPUs (use auto or off)")
        precisions, xla, rule = precisions[:1], [False], "several CPU workers: no probe, so that all agree"
    elif not devices.cpu_supports_bf16() and mixed_precision == "auto":
        precisions = ["float32"]  # no bf16 instructions: bf16 is emulated, many times slower
    return [Candidate(p, x) for p in precisions for x in xla], rule


def choose(
    flags: tuple[str, str], multi_worker: bool, run_steps: int, restored_graph: bool, key: dict, runs_dir: str,
    build: Callable[[Candidate], keras.Model], probe_data: Callable[[], tf.data.Dataset], say: Callable[..., None],
) -> Choice:
    """Pick the setting for a run and apply its precision. ``build(candidate)`` returns the compiled
    model for a candidate; ``probe_data()`` a fresh copy of the training batches to time it on (the
    run's own dataset is not touched, so a probed and a cached run train on the same order)."""
    options, rule = candidates(*flags, multi_worker)
    if rule is None and len(options) > 1 and run_steps < MIN_RUN_STEPS:
        rule = f"a short run ({run_steps} steps < {MIN_RUN_STEPS}): plain {options[0].label}, a probe would cost more than it saves"
    report = {"decided_by": rule or "flags"}
    chosen = options[0]
    if rule is None and len(options) > 1:
        cache = Path(runs_dir) / CACHE_FILE
        cache_key = _cache_key(key, options)
        timings = _read_cache(cache).get(cache_key, {}).get("samples_per_s")
        report["decided_by"] = f"cache ({cache})"
        if not timings:
            timings = probe(options, build, probe_data, restored_graph, run_steps, say)
            complete = len(timings) == len(options)
            if complete:
                _write_cache(cache, cache_key, {"samples_per_s": timings, "key": key})
            report["decided_by"] = f"probe (remembered in {cache})" if complete else (
                f"probe: the run takes under {MIN_RUN_SECONDS} s in {options[0].label}, too short to time the others"
            )
        chosen = fastest(options, timings)
        report["samples_per_s"] = timings
        say("auto: " + ", ".join(f"{label} {speed:,.0f}" for label, speed in timings.items())
            + f" samples/s -> {chosen.label}; {report['decided_by']}")
    precision = devices.set_precision_policy(chosen.precision, restored_graph)
    report["chosen"] = chosen.label
    return Choice(chosen, precision, report)


def fastest(options: list[Candidate], timings: dict[str, float]) -> Candidate:
    """The fastest timed candidate, unless it beats the plainest (float32 without XLA) by less than
    ``MIN_GAIN``: then the plainest. Candidates that failed to run have no timing."""
    plain = options[0]
    timed = [option for option in options if timings.get(option.label)]
    best = max(timed, key=lambda option: timings[option.label], default=plain)
    if plain.label in timings and timings[best.label] < MIN_GAIN * timings[plain.label]:
        return plain
    return best


def probe(
    options: list[Candidate], build: Callable[[Candidate], keras.Model], probe_data: Callable[[], tf.data.Dataset],
    restored_graph: bool, run_steps: int, say: Callable[..., None],
) -> dict[str, float]:
    """Train each candidate for one warm-up call (tracing, compilation) and then at least
    ``MIN_TIMED_STEPS`` steps; returns samples/s of the timed steps (0 for a candidate that failed).
    Stops after the plainest when the whole run would take under ``MIN_RUN_SECONDS`` with it."""
    say(f"auto: timing {len(options)} settings on this model: " + ", ".join(option.label for option in options))
    dataset = probe_batches(probe_data())
    batch = next(iter(dataset))[0]
    batch_size = int(tf.nest.flatten(batch)[0].shape[0])
    timings = {}
    for option in options:
        devices.set_precision_policy(option.precision, restored_graph)
        try:
            timings[option.label] = round(batch_size / _seconds_per_step(build(option), dataset), 1)
        except (tf.errors.OpError, ValueError, TypeError) as error:  # e.g. an op XLA cannot compile
            say(f"auto: {option.label} failed ({type(error).__name__}: {str(error).splitlines()[0][:120]})")
            timings[option.label] = 0.0
        keras.backend.clear_session()
        gc.collect()
        if len(timings) == 1 and timings[option.label] and run_steps * batch_size / timings[option.label] < MIN_RUN_SECONDS:
            break
    return timings


def probe_batches(data: tf.data.Dataset) -> tf.data.Dataset:
    """The first ``1 + MIN_TIMED_STEPS`` training batches, read once into memory and repeated: every
    candidate trains on the same batches (lengths vary from batch to batch with length grouping), and
    none pays for the input pipeline's start (a shuffle buffer to fill, pairs to draw) in its timing."""
    batches = data.take(1 + MIN_TIMED_STEPS).cache()
    for _ in batches:  # fills the cache
        pass
    return batches.repeat()


class _StepClock(keras.callbacks.Callback):
    """Starts the clock when the first graph call (the warm-up) ends."""

    def __init__(self):
        super().__init__()
        self.start = None

    def on_train_batch_end(self, batch, logs=None):
        if self.start is None:
            self.start = time.perf_counter()


def _seconds_per_step(model: keras.Model, dataset: tf.data.Dataset) -> float:
    per_call = model.steps_per_execution if isinstance(model.steps_per_execution, int) else 1
    timed_calls = -(-MIN_TIMED_STEPS // per_call)
    clock = _StepClock()
    model.fit(dataset, epochs=1, steps_per_epoch=per_call * (1 + timed_calls), callbacks=[clock], shuffle=False, verbose=0)
    return (time.perf_counter() - clock.start) / (per_call * timed_calls)


def _cache_key(key: dict, options: list[Candidate]) -> str:
    versions = {"tensorflow": tf.__version__, "keras": keras.__version__}
    described = {**key, "cpu": devices.cpu_model(), "threads": os.cpu_count(), "candidates": [o.label for o in options], **versions}
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _read_cache(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_cache(path: Path, cache_key: str, entry: dict) -> None:
    """Add one decision (written to a temporary file and renamed, so a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    entries = {**_read_cache(path), cache_key: entry}
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(entries, indent=1, default=str))
    partial.replace(path)

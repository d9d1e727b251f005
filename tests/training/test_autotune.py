"""``auto`` precision and XLA: decided by timing the model, remembered per CPU and shapes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.common.errors import UsageError
from app.tasks import MnistTask
from app.training import autotune
from app.training.autotune import Candidate, candidates, fastest
from app.training.devices import ASSUME_BF16_CPU
from app.training.trainer import TrainConfig, train

PLAIN, XLA, BF16 = Candidate("float32", False), Candidate("float32", True), Candidate("mixed_bfloat16", False)


def test_the_fastest_setting_wins_only_when_it_beats_float32_beyond_noise():
    options = [PLAIN, XLA, BF16]
    assert fastest(options, {"float32": 100, "float32+xla": 180, "mixed_bfloat16": 150}) == XLA
    assert fastest(options, {"float32": 100, "float32+xla": 103, "mixed_bfloat16": 90}) == PLAIN  # within noise
    assert fastest(options, {"float32": 100, "float32+xla": 0.0, "mixed_bfloat16": 120}) == BF16  # XLA failed


def test_the_flags_decide_what_is_timed(monkeypatch):
    monkeypatch.setattr(autotune.devices, "gpus", lambda: [])
    monkeypatch.setenv(ASSUME_BF16_CPU, "1")
    assert candidates("auto", "auto", multi_worker=False) == ([PLAIN, XLA, BF16, Candidate("mixed_bfloat16", True)], None)
    assert candidates("off", "auto", multi_worker=False) == ([PLAIN, XLA], None)
    assert candidates("bf16", "off", multi_worker=False) == ([BF16], None)
    options, rule = candidates("auto", "auto", multi_worker=True)
    assert options == [PLAIN] and "several CPU workers" in rule
    with pytest.raises(UsageError, match="XLA cannot compile the workers' collectives"):
        candidates("auto", "on", multi_worker=True)
    monkeypatch.delenv(ASSUME_BF16_CPU)
    monkeypatch.setattr(autotune.devices, "cpu_supports_bf16", lambda: False)
    assert candidates("auto", "auto", multi_worker=False) == ([PLAIN, XLA], None)  # bf16 would be emulated


def test_auto_times_each_setting_keeps_the_fastest_and_a_second_run_reads_the_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(autotune, "MIN_RUN_STEPS", 0)  # a test-sized run, probed as a long one would be
    monkeypatch.setattr(autotune, "MIN_RUN_SECONDS", 0)
    config = TrainConfig(epochs=1, max_train_samples=640, runs_dir=str(tmp_path / "runs"), out=str(tmp_path / "out"), quiet=True)
    first = train(MnistTask(), config).summary
    auto = first["auto"]
    timings = auto["samples_per_s"]
    assert set(timings) == {option.label for option in candidates("auto", "auto", multi_worker=False)[0]}
    assert all(speed > 0 for speed in timings.values()) and auto["decided_by"].startswith("probe")
    assert timings[auto["chosen"]] >= timings["float32"]  # never slower than float32 as measured
    assert auto["chosen"] == fastest(candidates("auto", "auto", False)[0], timings).label
    assert first["jit_compile"] == auto["chosen"].endswith("+xla")
    assert first["precision"] == auto["chosen"].removesuffix("+xla")
    assert (tmp_path / "runs" / autotune.CACHE_FILE).is_file()

    second = train(MnistTask(), config).summary
    assert second["auto"]["decided_by"].startswith("cache")
    assert second["auto"]["samples_per_s"] == timings and second["auto"]["chosen"] == auto["chosen"]
    other = train(MnistTask(dropout_rate=0.0), replace(config, mixed_precision="off")).summary  # another model: probed anew
    assert other["auto"]["decided_by"].startswith("probe") and other["precision"] == "float32"


def test_every_candidate_is_timed_on_the_same_batches_read_before_the_clock_starts():
    import tensorflow as tf

    # Reshuffled each iteration and of varying length, like length-grouped training batches.
    reshuffled = tf.data.Dataset.range(1, 40).shuffle(40, reshuffle_each_iteration=True).map(lambda n: tf.range(n))
    batches = autotune.probe_batches(reshuffled)
    first, second = ([tensor.numpy().tolist() for tensor in batches.take(2 * (1 + autotune.MIN_TIMED_STEPS))] for _ in range(2))
    assert first == second  # a second candidate sees exactly the first one's batches
    assert first[: 1 + autotune.MIN_TIMED_STEPS] == first[1 + autotune.MIN_TIMED_STEPS:]  # repeated
    assert len({len(batch) for batch in first}) > 1  # of varying length, not one batch over and over

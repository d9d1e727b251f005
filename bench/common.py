"""Shared benchmark plumbing: run two sides in alternation in one process, measure peak memory, print JSON."""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Callable

REPO_ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("FROMZERO_OFFLINE", "1")


def matmul_gflops(dtype_name: str, size: int = 1024, repeats: int = 10) -> float:
    """This machine's speed at one [size x size] matrix product in ``dtype_name`` (TensorFlow), GFLOP/s."""
    import time

    import tensorflow as tf

    a = tf.cast(tf.random.stateless_normal([size, size], seed=[0, 1]), getattr(tf, dtype_name))
    tf.linalg.matmul(a, a).numpy()  # warm-up: kernel selection
    start = time.perf_counter()
    for _ in range(repeats):
        tf.linalg.matmul(a, a).numpy()
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def reset_peak_memory() -> None:
    """Reset this process's peak resident set size (Linux: writing 5 to clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_memory_mb() -> float | None:
    """Peak resident set size since the last reset, in MB (VmHWM), or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def alternate(sides: dict[str, Callable[[Path], dict]], rounds: int) -> dict[str, dict]:
    """Run each side ``rounds`` times, interleaved (A B A B ...); median of each figure, max of memory."""
    results = {name: [] for name in sides}
    with tempfile.TemporaryDirectory() as workdir:
        for round_index in range(rounds):
            for name, run in sides.items():
                reset_peak_memory()
                figures = run(Path(workdir) / f"{name}-{round_index}")
                figures.setdefault("peak_rss_mb", peak_memory_mb())  # a side in a child process reports its own
                print(f"round {round_index + 1} {name}: {figures}", file=sys.stderr, flush=True)
                results[name].append(figures)
    return summarize(results)


def round_of(workdir: Path) -> int:
    """The round (from 0) that a side's folder belongs to: `alternate` names it ``<side>-<round>``."""
    return int(Path(workdir).name.rsplit("-", 1)[1])


def summarize(results: dict[str, list[dict]]) -> dict[str, dict]:
    """Each side's rounds as one row: the median of each number, the maximum of memory, and a value
    that is not a number (a precision's name, None) as the first round gave it."""
    summary = {}
    for name, runs in results.items():
        row = {}
        for key in runs[0]:
            values = [run[key] for run in runs]
            if all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in values):
                row[key] = (max if key == "peak_rss_mb" else statistics.median)(values)
            else:
                row[key] = values[0]
        summary[name] = row
    return summary


def print_comparison(bench: str, settings: dict, results: dict[str, dict], speed: str, quality: str) -> None:
    """One JSON line: both sides' figures, project/peer speed ratio and the quality difference."""
    payload = {
        "bench": bench,
        **settings,
        **results,
        "speed_ratio": round(results["project"][speed] / results["peer"][speed], 2),
        f"{quality}_delta": round(results["project"][quality] - results["peer"][quality], 4),
    }
    print(json.dumps(payload), flush=True)

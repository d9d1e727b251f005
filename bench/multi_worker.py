"""One worker against two local workers (`app.launch`) on the same global batch and steps: same final
loss, samples/s of each, and what the workers' communication costs per step.

    python bench/multi_worker.py [--epochs 3] [--global-batch 64] [--rounds 3]

Sides, alternating, each a fresh process as a user runs it (MNIST, dropout 0 so the sides compute the
same thing, one step per graph call as multi-worker training runs):
- ``one_worker``: global batch on one process;
- ``two_workers``: half the global batch on each of two processes on this machine;
- ``one_worker_half_batch``: one process with half the batch: one replica's compute per step, so
  ``two_workers`` seconds per step minus this is the communication and synchronisation overhead.
On a 2-core machine no speed-up is expected (the two workers share the cores); the point is
correctness and the overhead figure. Prints the CPU model and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys

from common import REPO_ROOT, alternate


def run(command: list[str], workdir) -> dict:
    """Run a training command, return its figures from the final JSON line."""
    completed = subprocess.run(
        [sys.executable, "-m", *command, "--out", str(workdir / "saved"), "--runs-dir", str(workdir / "runs")],
        cwd=REPO_ROOT, capture_output=True, text=True,
    )
    if completed.returncode != 0:
        sys.exit(f"error: {' '.join(command)} failed: {completed.stderr.strip().splitlines()[-1:]}")
    summary = json.loads(completed.stdout.strip().splitlines()[-1])
    return summary


def figures(summary: dict, per_replica_batch: int) -> dict:
    epochs, seconds = summary["epochs_trained"], summary["train_seconds"]
    examples = round(summary["train_samples_per_s"] * seconds / epochs)
    steps = epochs * math.ceil(examples / summary["global_batch_size"])
    return {
        "train_samples_per_s": summary["train_samples_per_s"],
        "final_val_loss": summary["validation_curves"]["val_loss"][-1],
        "ms_per_step": round(1000 * seconds / steps, 2),
        "per_replica_batch": per_replica_batch,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--global-batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from app.training.devices import cpu_model

    print(f"CPU: {cpu_model()}", file=sys.stderr, flush=True)
    half = args.global_batch // 2
    train = ["app.train", "mnist", "--dropout-rate", "0", "--steps-per-execution", "1", "--epochs", str(args.epochs), "--patience", str(args.epochs), "--quiet"]
    results = alternate(
        {
            "one_worker": lambda workdir: figures(run([*train, "--batch-size", str(args.global_batch)], workdir), args.global_batch),
            "two_workers": lambda workdir: figures(run(["app.launch", "--workers", "2", "--", "python", "-m", *train, "--batch-size", str(half)], workdir), half),
            "one_worker_half_batch": lambda workdir: figures(run([*train, "--batch-size", str(half)], workdir), half),
        },
        args.rounds,
    )
    for side in results.values():
        side.pop("peak_rss_mb")  # the bench process's own, not the workers'
    one, two, reference = results["one_worker"], results["two_workers"], results["one_worker_half_batch"]
    print(json.dumps({
        "bench": "multi_worker", "cpu": cpu_model(), "epochs": args.epochs, "global_batch": args.global_batch, "rounds": args.rounds,
        **results,
        "two_vs_one_samples_per_s": round(two["train_samples_per_s"] / one["train_samples_per_s"], 2),
        "final_val_loss_relative_difference": round(abs(two["final_val_loss"] - one["final_val_loss"]) / one["final_val_loss"], 6),
        "communication_overhead_ms_per_step": round(two["ms_per_step"] - reference["ms_per_step"], 2),
    }), flush=True)


if __name__ == "__main__":
    main()

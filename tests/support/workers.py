"""What multi-worker tests read from a job's output and folders, whichever engine started it."""

from __future__ import annotations

import csv
import re
from pathlib import Path

# Without dropout, so that one worker with the global batch computes exactly what two workers do.
MNIST = ("python", "-m", "app.train", "mnist", "--dropout-rate", "0")


def fingerprints(output: str) -> dict[int, str]:
    """Each worker's ``weights sha256`` line: worker index -> digest."""
    return {int(worker): digest for worker, digest in re.findall(r"worker (\d+) of \d+: weights sha256 (\w+)", output)}


def history_epochs(runs: Path, task: str = "mnist") -> list[int]:
    """The epochs the chief's history.csv records, in order (each once if nothing ran twice)."""
    (history,) = list((runs / task).glob("*/history.csv"))
    with history.open() as file:
        return [int(row["epoch"]) for row in csv.DictReader(file)]


def assert_chief_only_outputs(stdout: str, out: Path, runs: Path, task: str = "mnist"):
    """One JSON line (the chief's, last), one export and one run folder: the other workers wrote nothing there."""
    assert sum(line.lstrip().startswith("{") or line.startswith("[worker 1] {") for line in stdout.splitlines()) == 1
    assert stdout.strip().splitlines()[-1].startswith("{")
    assert [path.name for path in (out / task).iterdir()] == ["1"]
    assert len(list((runs / task).iterdir())) == 1

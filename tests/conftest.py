"""Shared fixtures: small real trainings (in-process, once per session) and a CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
os.environ["FROMZERO_OFFLINE"] = "1"  # tests never touch the network
os.environ.pop("FROMZERO_DATA", None)


def run_app(*args: str, cwd: Path = REPO_ROOT, env: dict | None = None, timeout: int = 300):
    """Run ``python -m app.<args>`` as a user would; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def last_json_line(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def trained_mnist(tmp_path_factory):
    """Two quick epochs of the dense MNIST network on 1,500 images, exported."""
    from app.tasks import MnistTask
    from app.trainer import TrainConfig, train

    base = tmp_path_factory.mktemp("mnist")
    config = TrainConfig(epochs=2, max_train_samples=1500, out=str(base / "saved"), runs_dir=str(base / "runs"), quiet=True)
    return train(MnistTask(), config)


@pytest.fixture(scope="session")
def trained_lm(tmp_path_factory):
    """One epoch of a small character LSTM on the first 30k characters of Tiny Shakespeare, exported."""
    from app.tasks import LanguageModelTask
    from app.trainer import TrainConfig, train

    base = tmp_path_factory.mktemp("lm")
    config = TrainConfig(epochs=1, max_train_samples=30_000, out=str(base / "saved"), runs_dir=str(base / "runs"), quiet=True)
    return train(LanguageModelTask(seq_len=50, lstm_units=32, embedding_dim=32), config)

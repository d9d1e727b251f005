"""The trained models and exports several test files share, built once per test run.

`pytest -n 2` runs two worker processes; each would build its own copy of a session fixture. Here
the first worker to ask builds the model under a file lock in the run's shared temporary folder and
writes its summary there; every other asker (the other worker, a later session) reads it back. What
lives only in memory (the Keras model, the datasets) is rebuilt on demand in the asking process:
the model from the run's best checkpoint, the data by the task's own `load_data`.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Callable

CORPUS_LINES = 1000
VOCAB_SIZE = 400


@contextmanager
def locked(path: Path):
    """Hold an exclusive lock on ``path`` (created if missing) for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_once(folder: Path, build: Callable[[Path], dict]) -> dict:
    """``build(folder)`` the first time any process of this run asks for ``folder``; its JSON result
    is kept in ``folder/built.json`` and returned to every later asker."""
    done = folder / "built.json"
    with locked(folder.parent / f".{folder.name}.lock"):
        if not done.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            done.write_text(json.dumps(build(folder)))
    return json.loads(done.read_text())


@dataclasses.dataclass
class TrainedModel:
    """A model trained by the shared trainer, as the tests see it: its run summary and export, and on
    demand its data and its Keras model (the best epoch's weights)."""

    task: object
    config: object
    summary: dict

    @property
    def export_dir(self) -> str:
        return self.summary["export_dir"]

    @cached_property
    def data(self):
        batch_size = self.config.batch_size or self.task.defaults.batch_size
        return self.task.load_data(self.config.data_dir, batch_size, self.config.seed, self.config.max_train_samples)

    @cached_property
    def model(self):
        model = self.task.build_model(self.data)
        model.load_weights(Path(self.summary["run_dir"]) / "checkpoints" / "best.keras")
        return model


def train_once(folder: Path, task, **config) -> TrainedModel:
    """``task`` trained once per test run with ``TrainConfig(**config)``, exported under ``folder``."""
    from app.training.trainer import TrainConfig, train

    full_config = TrainConfig(out=str(folder / "saved"), runs_dir=str(folder / "runs"), quiet=True, **config)
    summary = build_once(folder, lambda _: train(task, full_config).summary)
    return TrainedModel(task, full_config, summary)

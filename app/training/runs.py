"""Run directories: ``runs/<task>/<timestamp>/`` for a new run, or the newest unfinished one to resume."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from app.common.errors import UsageError

# While a run is unfinished its directory holds this backup (`keras.callbacks.BackupAndRestore`).
BACKUP_DIR = "backup"


def run_directory(runs_dir: str, task_name: str, resume: bool) -> Path:
    """A new timestamped run directory, or with ``resume`` the newest one left unfinished."""
    task_runs = Path(runs_dir) / task_name
    if resume:
        unfinished = sorted(path.parent for path in task_runs.glob(f"*/{BACKUP_DIR}"))
        if not unfinished:
            raise UsageError(f"nothing to resume: no interrupted run under {task_runs}")
        return unfinished[-1]
    run_dir = task_runs / datetime.now().strftime("%Y%m%d-%H%M%S")
    suffix = 1
    while run_dir.exists():
        suffix += 1
        run_dir = task_runs / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{suffix}"
    run_dir.mkdir(parents=True)
    return run_dir

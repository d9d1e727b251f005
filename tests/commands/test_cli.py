"""The command line as a user meets it: a JSON last line, one clear error line, resumable training."""

from __future__ import annotations

import csv
import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.commands import assert_one_line_error, last_json_line, run_app, run_in_process, start_app
from tests.support.paths import REPO_ROOT


def test_unknown_model_name():
    assert_one_line_error(run_app("app.train", "resnet"), "invalid choice: 'resnet'")


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--epochs", "0"], "--epochs: must be a positive integer"),
        (["--epochs", "many"], "--epochs: invalid positive_int value"),
        (["--learning-rate", "-1"], "--learning-rate: must be a positive number"),
        (["--jit-compile", "maybe"], "--jit-compile: invalid choice"),
    ],
)
def test_bad_flag_values(flags, expected):
    result = run_app("app.train", "mnist", *flags)
    assert_one_line_error(result, expected)
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_data_names_every_place_looked(tmp_path):
    """A checkout with no ../shared beside it, offline, no FROMZERO_DATA: one line naming each place."""
    checkout = tmp_path / "checkout"
    for package in ("app", "models", "data_pipelines"):
        shutil.copytree(REPO_ROOT / package, checkout / package, ignore=shutil.ignore_patterns("__pycache__"))
    result = run_app("app.train", "mnist", cwd=checkout)
    assert_one_line_error(
        result,
        "could not find mnist/mnist.npz",
        str(tmp_path / "shared" / "data" / "mnist" / "mnist.npz"),
        "storage.googleapis.com",
    )


@pytest.mark.parametrize("task", ["mnist", "bert"])
def test_a_data_dir_that_does_not_exist_is_an_error_naming_it(task):
    result = run_in_process("app.train", task, "--data-dir", "/nonexistent/place")
    assert_one_line_error(result, "--data-dir /nonexistent/place does not exist")


def test_empty_text_file(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert_one_line_error(run_in_process("app.train", "lm", "--text-file", str(empty)), f"{empty} is empty")


def test_generate_without_an_export(tmp_path):
    result = run_in_process("app.generate", "--model-dir", str(tmp_path / "nothing"))
    assert_one_line_error(result, "no exported versions", "python -m app.train lm")


def test_resume_without_an_interrupted_run(tmp_path):
    result = run_in_process("app.train", "mnist", "--resume", "--runs-dir", str(tmp_path))
    assert_one_line_error(result, "nothing to resume")


def _history_epochs(run_dir: Path) -> list[int]:
    with open(run_dir / "history.csv") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


def test_interrupted_training_resumes_from_the_last_finished_epoch(tmp_path):
    common = ["--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "saved"), "--max-train-samples", "2000"]
    process = start_app("app.train", "mnist", "--epochs", "500", "--patience", "500", *common)
    deadline = time.monotonic() + 240
    history = None
    while time.monotonic() < deadline and process.poll() is None:
        found = list((tmp_path / "runs" / "mnist").glob("*/history.csv"))
        if found and len(_history_epochs(found[0].parent)) >= 2:
            history = found[0]
            break
        time.sleep(0.2)
    assert history is not None, "training did not finish two epochs"
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    assert_one_line_error(result, "training interrupted", "--resume", code=130)
    run_dir = history.parent
    assert (run_dir / "backup").is_dir()
    finished = _history_epochs(run_dir)

    resumed = run_app("app.train", "mnist", "--resume", "--epochs", str(len(finished) + 2), "--quiet", *common)
    assert resumed.returncode == 0, resumed.stderr
    summary = last_json_line(resumed.stdout)
    assert summary["run_dir"] == str(run_dir)
    assert summary["epochs_trained"] <= 3, "the resumed run started over instead of continuing"
    epochs = _history_epochs(run_dir)
    assert epochs == sorted(set(epochs)) and epochs[-1] == len(finished) + 1
    assert not (run_dir / "backup").exists()
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["export_dir"].endswith("1")

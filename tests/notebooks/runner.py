"""Running a notebook headless in QUICK mode, as ``make notebooks`` does, once per test run.

Each notebook is tested in a file of its own, so the two test workers run notebooks side by side
(``--dist loadfile``). Notebook 4 serves the exports notebooks 1-3 wrote: those four share one work
folder, and notebook 4's test first runs whichever of 1-3 no worker has run yet (`build_once`: one
run each, whichever worker asks first).
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat

from tests.support.builds import build_once
from tests.support.commands import last_json_line, run_app

FIGURES = {  # notebook -> figures it must draw
    "01_dense_mnist.ipynb": 4,  # sample digits, training curves, confusion matrix, mistakes
    "02_lstm_language_model.ipynb": 1,  # training curves
    "03_bert_finetuning_tfhub.ipynb": 3,  # training curves, confusion matrix, ROC curve
    "04_serving.ipynb": 0,
    "05_transformer_from_zero.ipynb": 3,  # causal mask, GPT vs LSTM loss against time, attention heads
    "06_pretraining_from_zero.ipynb": 2,  # pretraining curves, (a)/(b)/(c) bar chart
    "07_distillation_and_compression.ipynb": 2,  # distillation curves, accuracy-vs-latency scatter
    "08_finetuning_methods.ipynb": 2,  # methods: accuracy vs trainable parameters and speed; GPT adaptation curves
}
CHAINED = tuple(FIGURES)[:4]


def executed(name: str, shared_builds: Path) -> tuple[dict, nbformat.NotebookNode]:
    """(its result line, the executed copy) of notebook ``name``, run once per test run."""
    work_dir = shared_builds / ("notebooks-01-04" if name in CHAINED else f"notebook-{name[:2]}")

    def run(folder: Path) -> dict:
        done = run_app("app.notebooks", name, "--out", str(folder), "--work-dir", str(work_dir), timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        (result,) = last_json_line(done.stdout)["notebooks"]
        return result

    result = build_once(shared_builds / f"notebook-run-{name[:2]}", run)
    return result, nbformat.read(shared_builds / f"notebook-run-{name[:2]}" / name, as_version=4)


def check_runs_headless(name: str, shared_builds: Path) -> None:
    """The notebook runs top to bottom without an error and draws its figures."""
    if name == "04_serving.ipynb":
        for needed in CHAINED[:3]:
            executed(needed, shared_builds)
    result, notebook = executed(name, shared_builds)
    assert result["error"] is None
    assert result["images"] >= FIGURES[name], f"{name} drew {result['images']} figures, expected {FIGURES[name]}"
    errors = [output for cell in notebook.cells for output in cell.get("outputs", []) if output.output_type == "error"]
    assert errors == [], json.dumps(errors)[:2000]

"""The step-by-step notebooks: committed without outputs, built on the project's modules, and run
top to bottom headless in QUICK mode with every expected figure drawn."""

from __future__ import annotations

import json
import re

import nbformat
import pytest

from app.notebooks import notebook_paths
from tests.conftest import last_json_line, run_app

EXPECTED = {  # notebook -> figures it must draw
    "01_dense_mnist.ipynb": 4,  # sample digits, training curves, confusion matrix, mistakes
    "02_lstm_language_model.ipynb": 1,  # training curves
    "03_bert_finetuning_tfhub.ipynb": 3,  # training curves, confusion matrix, ROC curve
    "04_serving.ipynb": 0,
    "05_transformer_from_zero.ipynb": 3,  # causal mask, GPT vs LSTM loss against time, attention heads
    "06_pretraining_from_zero.ipynb": 2,  # pretraining curves, (a)/(b)/(c) bar chart
    "07_distillation_and_compression.ipynb": 2,  # distillation curves, accuracy-vs-latency scatter
}
# What a notebook must get from the project instead of writing its own.
OWN_IMPLEMENTATIONS = re.compile(r"def build_|def load_|def train|\.fit\(|keras\.Sequential|keras\.Model\(|tf\.data\.Dataset\.|GradientTape")


def test_the_notebooks_are_there_in_order():
    assert [path.name for path in notebook_paths()] == list(EXPECTED)


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda path: path.name)
def test_committed_notebook_has_no_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"outputs committed in {path.name}: clear them"


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda path: path.name)
def test_notebook_uses_the_project_code(path):
    notebook = nbformat.read(path, as_version=4)
    source = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert re.search(r"^from (app|models|data_pipelines)[.\w]* import", source, re.MULTILINE)
    assert not OWN_IMPLEMENTATIONS.findall(source)
    titles = [line for cell in notebook.cells if cell.cell_type == "markdown" for line in cell.source.splitlines() if line.startswith("## ")]
    assert titles and all(re.search(r"[\u4e00-\u9fff]", title) for title in titles), "each section names the seeds' term"
    assert 'os.environ.get("FROMZERO_QUICK"' in notebook.cells[2].source


def test_notebooks_run_headless_in_quick_mode(tmp_path):
    done = run_app("app.notebooks", "--out", str(tmp_path), timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    results = {result["notebook"]: result for result in last_json_line(done.stdout)["notebooks"]}
    assert list(results) == list(EXPECTED)
    for name, figures in EXPECTED.items():
        assert results[name]["error"] is None
        assert results[name]["images"] >= figures, f"{name} drew {results[name]['images']} figures, expected {figures}"
        executed = nbformat.read(tmp_path / name, as_version=4)
        errors = [output for cell in executed.cells for output in cell.get("outputs", []) if output.output_type == "error"]
        assert errors == [], json.dumps(errors)[:2000]

"""The step-by-step notebooks: there in order, committed without outputs, built on the project's
modules, linking their docs page. Each one's headless run is a test file of its own (test_0*.py)."""

from __future__ import annotations

import re

import nbformat
import pytest

from app.notebooks import notebook_paths
from tests.notebooks.runner import FIGURES
from tests.support.paths import REPO_ROOT

# What a notebook must get from the project instead of writing its own.
OWN_IMPLEMENTATIONS = re.compile(r"def build_|def load_|def train|\.fit\(|keras\.Sequential|keras\.Model\(|tf\.data\.Dataset\.|GradientTape")


def test_the_notebooks_are_there_in_order():
    assert [path.name for path in notebook_paths()] == list(FIGURES)


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


def test_each_notebook_links_its_docs_page():
    for path in notebook_paths():
        first = nbformat.read(path, as_version=4).cells[0].source
        link = re.search(r"\]\(\.\./(docs/[\w-]+\.md)\)", first)
        assert link and (REPO_ROOT / link.group(1)).is_file(), f"{path.name} links no docs page"

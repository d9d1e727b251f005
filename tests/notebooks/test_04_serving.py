"""Notebook 04 run headless in QUICK mode (tests/notebooks/runner.py)."""

from tests.notebooks.runner import check_runs_headless


def test_runs_headless_in_quick_mode(shared_builds, minilm_hub):  # notebook 3 fine-tunes the run's MiniLM export
    check_runs_headless("04_serving.ipynb", shared_builds)

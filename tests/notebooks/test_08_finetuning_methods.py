"""Notebook 08 run headless in QUICK mode (tests/notebooks/runner.py)."""

from tests.notebooks.runner import check_runs_headless


def test_runs_headless_in_quick_mode(shared_builds):
    check_runs_headless("08_finetuning_methods.ipynb", shared_builds)

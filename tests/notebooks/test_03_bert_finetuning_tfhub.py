"""Notebook 03 run headless in QUICK mode (tests/notebooks/runner.py)."""

from tests.notebooks.runner import check_runs_headless


def test_runs_headless_in_quick_mode(shared_builds, minilm_hub):  # fine-tunes the run's MiniLM export
    check_runs_headless("03_bert_finetuning_tfhub.ipynb", shared_builds)

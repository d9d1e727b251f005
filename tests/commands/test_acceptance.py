"""The README's main jobs, run as a user runs them, with the figures the project promises."""

from __future__ import annotations

from pathlib import Path

from tests.support.commands import last_json_line, run_app


def test_make_run_job_trains_mnist_to_093_on_the_full_test_set(tmp_path):
    result = run_app("app.train", "mnist", "--out", str(tmp_path / "saved"), "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 0, result.stderr
    assert "MNIST from" in result.stdout and "test 10,000" in result.stdout
    summary = last_json_line(result.stdout)
    assert summary["metrics"]["test_accuracy"] >= 0.93
    assert (Path(summary["export_dir"]) / "saved_model.pb").is_file()


def test_language_model_trains_exports_and_generates(tmp_path):
    trained = run_app(
        "app.train", "lm", "--epochs", "1", "--max-train-samples", "200000", "--quiet",
        "--out", str(tmp_path / "saved"), "--runs-dir", str(tmp_path / "runs"),
    )
    assert trained.returncode == 0, trained.stderr
    summary = last_json_line(trained.stdout)
    assert len(trained.stdout.strip().splitlines()) == 1, "--quiet prints only the JSON line"
    assert 0 < summary["metrics"]["bits_per_char"] < 4.5

    generated = run_app("app.generate", "--model-dir", str(tmp_path / "saved" / "lm"), "--length", "120", "--seed", "7")
    assert generated.returncode == 0, generated.stderr
    result = last_json_line(generated.stdout)
    assert result["text"].startswith("ROMEO:") and len(result["text"]) == len("ROMEO:") + 120
    assert generated.stdout.startswith("ROMEO:")

"""The trainer's outputs (metrics, run directory) and exports reloaded and compared with the model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from app.exports.savedmodel import export_model, read_metadata, resolve_version, versions
from app.exports.generation import SamplingConfig, generate
from data_pipelines.mnist import read_mnist_arrays
from data_pipelines.sources import SHARED_DATA_DIR


def test_mnist_run_reports_metrics_and_keeps_its_logs(trained_mnist):
    summary = trained_mnist.summary
    assert set(summary) >= {"model", "metrics", "export_dir", "run_dir", "train_samples_per_s"}
    assert summary["model"] == "mnist" and summary["epochs_trained"] == 2
    assert 0.8 < summary["metrics"]["test_accuracy"] <= 1.0  # 2 epochs on 1,500 images
    run_dir = Path(summary["run_dir"])
    for name in ("history.csv", "training_curves.png", "checkpoints/best.keras"):
        assert (run_dir / name).is_file(), name
    assert list(run_dir.glob("train/events.out.tfevents.*")), "TensorBoard logs missing"
    assert not (run_dir / "backup").exists(), "a finished run leaves no resume backup"
    assert Path(summary["export_dir"]).name == "1"


def test_mnist_export_matches_the_trained_model(trained_mnist):
    arrays = read_mnist_arrays(SHARED_DATA_DIR / "mnist" / "mnist.npz")
    raw = arrays["x_test"][:64]
    images = raw.reshape(64, 784).astype("float32") / 255.0
    expected = trained_mnist.model.predict(images, verbose=0)

    exported = tf.saved_model.load(trained_mnist.summary["export_dir"])
    outputs = exported.signatures["serving_default"](images=tf.constant(images))
    np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, atol=1e-6)
    np.testing.assert_array_equal(outputs["class_ids"].numpy(), expected.argmax(axis=1))
    from_uint8 = exported.signatures["classify_uint8"](images=tf.constant(raw))
    np.testing.assert_allclose(from_uint8["probabilities"].numpy(), expected, atol=1e-6)
    assert read_metadata(trained_mnist.summary["export_dir"])["task"] == "mnist"


def test_saved_model_cli_lists_the_serving_signature(trained_mnist):
    cli = Path(sys.executable).with_name("saved_model_cli")
    shown = subprocess.run(
        [str(cli), "show", "--all", "--dir", trained_mnist.summary["export_dir"]],
        capture_output=True, text=True, timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert "signature_def['serving_default']" in shown.stdout
    assert "inputs['images']" in shown.stdout and "outputs['probabilities']" in shown.stdout


def test_exports_get_increasing_versions_and_never_leave_half_written_ones(trained_mnist, tmp_path):
    from app.tasks import MnistTask

    model = trained_mnist.model
    spec = MnistTask().export_spec(model, trained_mnist.data)
    (tmp_path / "mnist" / ".staging-123").mkdir(parents=True)  # debris of a crashed export
    first = export_model(model, spec, tmp_path, "mnist")
    second = export_model(model, spec, tmp_path, "mnist")
    assert (first.name, second.name) == ("1", "2")
    assert versions(tmp_path / "mnist") == [1, 2]
    # Only the foreign debris is left (another process may still be writing it); versions ignore it.
    assert [path.name for path in (tmp_path / "mnist").glob(".staging-*")] == [".staging-123"]
    assert resolve_version(tmp_path / "mnist") == second
    assert resolve_version(tmp_path / "mnist", 1) == first
    with pytest.raises(FileNotFoundError, match="available: \\[1, 2\\]"):
        resolve_version(tmp_path / "mnist", 7)


def test_lm_run_reports_perplexity_and_bits_per_char(trained_lm):
    metrics = trained_lm.summary["metrics"]
    assert metrics["perplexity"] == pytest.approx(np.exp(metrics["validation_loss"]), rel=1e-6)
    assert metrics["bits_per_char"] == pytest.approx(metrics["validation_loss"] / np.log(2), rel=1e-6)
    assert metrics["bits_per_char"] < np.log2(trained_lm.data.tokenizer.vocab_size)  # better than uniform


def test_lm_export_carries_its_vocabulary_and_matches_the_model(trained_lm):
    export_dir = trained_lm.summary["export_dir"]
    exported = tf.saved_model.load(export_dir)
    line = "First Citizen:\nBefore we proceed any further, hear me speak."
    ids = exported.signatures["encode"](text=tf.constant(line))["token_ids"]
    np.testing.assert_array_equal(ids.numpy(), trained_lm.data.tokenizer.encode(tf.constant(line)).numpy())
    assert exported.signatures["decode"](token_ids=ids)["text"].numpy().decode() == line

    batch = tf.reshape(ids[:20], [2, 10])
    logits = exported.signatures["serving_default"](token_ids=batch)["logits"].numpy()
    np.testing.assert_allclose(logits, trained_lm.model.predict(batch, verbose=0), atol=1e-5)
    metadata = read_metadata(export_dir)
    assert metadata["tokenizer"] == "char" and metadata["seq_len"] == 50


def test_generation_from_the_export_is_reproducible(trained_lm):
    export_dir = trained_lm.summary["export_dir"]
    config = SamplingConfig(length=40, temperature=0.8, top_k=10, seed=3)
    text = generate(export_dir, "ROMEO:", config)
    assert text.startswith("ROMEO:") and len(text) == len("ROMEO:") + 40
    assert generate(export_dir, "ROMEO:", config) == text
    assert generate(export_dir, "ROMEO:", SamplingConfig(length=40, seed=4)) != text
    greedy = SamplingConfig(length=20, temperature=0)
    assert generate(export_dir, "ROMEO:", greedy) == generate(export_dir, "ROMEO:", greedy)

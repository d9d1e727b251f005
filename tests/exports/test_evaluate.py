"""`python -m app.evaluate`: every metric, both plots, for the binary BERT and the 10-class MNIST export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.common.errors import UsageError
from app.evaluate import main
from app.exports.scoring import classification_metrics
from data_pipelines.sources import SHARED_DATA_DIR


def test_evaluates_the_sentiment_export_on_a_tsv(trained_bert, small_sst2, tmp_path):
    result, _ = trained_bert
    report = main(["--model-dir", str(Path(result.summary["export_dir"]).parent), "--data", str(small_sst2 / "dev.tsv"), "--out-dir", str(tmp_path)])
    metrics = report["metrics"]
    assert report["examples"] == 64
    assert set(metrics["precision"]) == set(metrics["recall"]) == set(metrics["f1"]) == {"negative", "positive"}
    assert 0 <= metrics["roc_auc"] <= 1 and 0 <= metrics["macro_f1"] <= 1
    assert np.sum(metrics["confusion_matrix"]) == 64
    assert metrics["accuracy"] == pytest.approx(np.trace(metrics["confusion_matrix"]) / 64)
    for png in report["plots"].values():
        assert Path(png).stat().st_size > 1000


def test_bf16_and_float32_answer_the_same_classes_on_the_dev_set(trained_bert, tmp_path):
    """On CPUs with bf16 instructions, bf16 runs the export through oneDNN's bf16 rewrite; elsewhere it
    falls back to float32. Either way the answers must agree on >= 99 % of the dev sentences that are
    not near-ties: the fixture is barely trained (96 sentences, one epoch), and a sentence whose float32
    probabilities are within 0.02 of 0.5 may flip under any change of rounding (agreement on all 872
    measured 95.8-98 % in some runs, >= 99 % in others)."""
    import tensorflow as tf

    from app.training import devices
    from app.evaluate import load_examples
    from app.exports.predictions import predict

    result, _ = trained_bert
    export_dir = Path(result.summary["export_dir"])
    inputs, labels = load_examples({"task": "bert"}, SHARED_DATA_DIR / "sst2" / "dev.tsv", "sentence", "label")
    probabilities = {}
    try:
        for choice in ("off", "bf16"):
            devices.set_inference_precision(choice)
            probabilities[choice] = predict(export_dir, inputs, batch_size=64)
    finally:
        tf.config.optimizer.set_experimental_options({"auto_mixed_precision_onednn_bfloat16": False})
    classes = {choice: answers.argmax(axis=1) for choice, answers in probabilities.items()}
    decided = np.abs(probabilities["off"][:, 1] - 0.5) > 0.02
    assert len(classes["off"]) == 872 and decided.mean() >= 0.5, decided.mean()
    assert np.mean(classes["off"][decided] == classes["bf16"][decided]) >= 0.99
    report = main(["--model-dir", str(export_dir), "--data", str(SHARED_DATA_DIR / "sst2" / "dev.tsv"), "--out-dir", str(tmp_path)])
    assert report["precision"] == devices.AS_EXPORTED
    assert report["metrics"]["accuracy"] == pytest.approx(np.mean(classes["off"] == labels))


def test_evaluates_the_mnist_export_on_the_test_split(trained_mnist, tmp_path):
    report = main([
        "--model-dir", trained_mnist.summary["export_dir"], "--data", str(SHARED_DATA_DIR / "mnist" / "mnist.npz"),
        "--out-dir", str(tmp_path),
    ])
    assert report["examples"] == 10000
    assert report["metrics"]["accuracy"] == pytest.approx(trained_mnist.summary["metrics"]["test_accuracy"], abs=1e-6)
    assert len(report["metrics"]["confusion_matrix"]) == 10


def test_metrics_agree_with_their_definitions():
    labels = np.array([0, 0, 1, 1, 1])
    probabilities = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.8, 0.2], [0.1, 0.9]])
    metrics = classification_metrics(labels, probabilities, ["neg", "pos"])
    assert metrics["confusion_matrix"] == [[1, 1], [1, 2]]
    assert metrics["precision"]["pos"] == pytest.approx(2 / 3) and metrics["recall"]["pos"] == pytest.approx(2 / 3)
    assert metrics["precision"]["neg"] == pytest.approx(1 / 2) and metrics["f1"]["neg"] == pytest.approx(1 / 2)
    # Positive scores 0.7, 0.2, 0.9 against negative scores 0.1, 0.6: 5 of the 6 pairs are ranked right.
    assert metrics["roc_auc"] == pytest.approx(5 / 6, abs=0.01)


def test_refuses_a_language_model_export(trained_lm, tmp_path):
    with pytest.raises(UsageError, match="only classifiers"):
        main(["--model-dir", trained_lm.summary["export_dir"], "--data", str(SHARED_DATA_DIR / "sst2" / "dev.tsv"), "--out-dir", str(tmp_path)])

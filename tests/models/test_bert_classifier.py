"""The BERT classifier through the shared trainer: length-grouped fine-tuning, a raw-string export, precision."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from data_pipelines.errors import DataError
from data_pipelines.text_classification import TextClassificationConfig, load_text_classification


def test_batches_hold_every_sentence_padded_only_to_their_longest(tiny_hub, small_sst2):
    import tensorflow_text  # noqa: F401  (a TF-Hub preprocessor is made of TF Text ops: loading it needs them registered)

    preprocessor = tf.saved_model.load(str(tiny_hub / "preprocessor"))
    config = TextClassificationConfig(train_file=str(small_sst2 / "train.tsv"), validation_file=str(small_sst2 / "dev.tsv"), batch_size=8)
    train, _, train_split, _ = load_text_classification(config, preprocessor)
    count = 0
    for features, labels in train:
        mask = features["input_mask"].numpy()
        assert features["input_word_ids"].shape[1] == mask.sum(axis=1).max()
        assert (features["input_word_ids"].numpy()[mask == 0] == 0).all()
        count += len(labels)
    assert count == len(train_split.labels) == 96


def test_fine_tuning_reports_dev_metrics_and_exports_a_raw_string_signature(trained_bert):
    result, hub = trained_bert
    assert result.summary["model"] == "bert" and set(result.summary["metrics"]) == {"dev_accuracy", "dev_loss"}
    exported = tf.saved_model.load(result.summary["export_dir"])
    sentences = ["a gorgeous, witty, seductive movie.", "the plot is nothing but boilerplate clichés"]
    outputs = exported.signatures["serving_default"](text=tf.constant(sentences))
    preprocessor = tf.saved_model.load(str(hub / "preprocessor"))
    expected = tf.nn.softmax(result.model(preprocessor(tf.constant(sentences)), training=False)).numpy()
    np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, atol=1e-5)
    assert set(outputs["labels"].numpy().tolist()) <= {b"negative", b"positive"}
    np.testing.assert_array_equal(outputs["class_ids"].numpy(), expected.argmax(axis=1))


def test_restored_graphs_get_onednns_bf16_rewrite_and_fall_back_to_float32_on_cpus_without_bf16(monkeypatch, capsys):
    from app.training import devices

    monkeypatch.setattr(devices, "gpus", lambda: [])
    monkeypatch.setattr(devices, "cpu_supports_bf16", lambda: False)
    assert devices.set_precision_policy("mixed_bfloat16", restored_graph=True) == "float32"
    assert "no bf16 instructions" in capsys.readouterr().out
    assert not tf.config.optimizer.get_experimental_options().get("auto_mixed_precision_onednn_bfloat16")
    monkeypatch.setattr(devices, "cpu_supports_bf16", lambda: True)
    try:
        assert devices.set_precision_policy("mixed_bfloat16", restored_graph=True) == devices.ONEDNN_BF16
        assert tf.config.optimizer.get_experimental_options()["auto_mixed_precision_onednn_bfloat16"]
    finally:
        assert devices.set_precision_policy("float32", restored_graph=True) == "float32"
    assert not tf.config.optimizer.get_experimental_options().get("auto_mixed_precision_onednn_bfloat16")


def test_a_missing_label_column_is_a_clear_error(tiny_hub, small_sst2):
    preprocessor = tf.saved_model.load(str(tiny_hub / "preprocessor"))
    config = TextClassificationConfig(train_file=str(small_sst2 / "train.tsv"), label_column="sentiment")
    with pytest.raises(DataError, match="no column \\['sentiment'\\]"):
        load_text_classification(config, preprocessor)

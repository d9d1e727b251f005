"""The BERT classifier through the shared trainer: length-bucketed fine-tuning, a raw-string export."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from data_pipelines.errors import DataError
from data_pipelines.text_classification import TextClassificationConfig, load_text_classification


def test_bucketed_batches_hold_every_sentence_padded_to_a_bucket(tiny_hub, small_sst2):
    preprocessor = tf.saved_model.load(str(tiny_hub / "preprocessor"))
    config = TextClassificationConfig(train_file=str(small_sst2 / "train.tsv"), validation_file=str(small_sst2 / "dev.tsv"), batch_size=8)
    train, _, train_split, _ = load_text_classification(config, preprocessor)
    count = 0
    for features, labels in train:
        length = features["input_word_ids"].shape[1]
        assert length in (16, 32, 64, 128)
        mask = features["input_mask"].numpy()
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


def test_a_missing_label_column_is_a_clear_error(tiny_hub, small_sst2):
    preprocessor = tf.saved_model.load(str(tiny_hub / "preprocessor"))
    config = TextClassificationConfig(train_file=str(small_sst2 / "train.tsv"), label_column="sentiment")
    with pytest.raises(DataError, match="no column \\['sentiment'\\]"):
        load_text_classification(config, preprocessor)

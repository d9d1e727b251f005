"""Distillation (app.distill) and compression (app.compress, LiteRT in app.evaluate), on a tiny
teacher fine-tuned from the tiny encoder and a tiny student pretrained from zero."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from app.exports.savedmodel import read_metadata, resolve_version
from tests.support.commands import last_json_line, run_app, run_in_process


@pytest.fixture(scope="session")
def distilled(trained_bert, pretrained_tiny, small_sst2, tmp_path_factory):
    """One epoch of distillation from the tiny teacher into the tiny from-zero student: (summary, folders)."""
    from app.distill import main

    base = tmp_path_factory.mktemp("distill")
    student = pretrained_tiny.summary["export_dir"]
    summary = main([
        "--teacher", trained_bert[0].summary["export_dir"], "--student-encoder", f"{student}/encoder",
        "--student-preprocessor", f"{student}/preprocessor", "--train-file", str(small_sst2 / "train.tsv"),
        "--validation-file", str(small_sst2 / "dev.tsv"), "--max-seq-length", "64", "--epochs", "1", "--batch-size", "16", "--learning-rate", "1e-3",
        "--cache-dir", str(base / "cache"), "--out", str(base / "saved"), "--runs-dir", str(base / "runs"), "--quiet",
    ])
    return summary, base


def test_the_student_is_exported_like_every_classifier(distilled, trained_bert):
    summary, base = distilled
    export_dir = resolve_version(base / "saved" / "bert_sst2_student")
    metadata = read_metadata(export_dir)
    assert metadata["task"] == "bert" and metadata["label_names"] == ["negative", "positive"]
    assert metadata["distilled_from"] == trained_bert[0].summary["export_dir"]
    assert 0 <= summary["metrics"]["dev_accuracy"] <= 1 and summary["model"] == "distill"
    loaded = tf.saved_model.load(str(export_dir))
    assert {"serving_default", "classify_token_ids", "word_piece_counts"} <= set(loaded.signatures)
    answer = loaded.signatures["serving_default"](text=tf.constant(["a gorgeous, witty film", "dull"]))
    np.testing.assert_allclose(answer["probabilities"].numpy().sum(axis=1), 1, atol=1e-5)
    assert (export_dir / "assets.extra" / "tf_serving_warmup_requests").is_file()
    # Train and dev logits were cached once each, as whole chunks.
    assert len(list((base / "cache").glob("*/*.npy"))) == 2


def test_cached_teacher_logits_are_read_back_not_recomputed_after_an_interruption(trained_bert, small_sst2, tmp_path, monkeypatch):
    from app.exports import predictions
    from app.tasks import teacher

    monkeypatch.setattr(teacher, "CHUNK", 32)
    texts = pd.read_csv(small_sst2 / "train.tsv", sep="\t", quoting=3)["sentence"].to_numpy(dtype=object)
    calls = []
    classify = predictions.classify
    monkeypatch.setattr(predictions, "classify", lambda loaded, inputs, batch: calls.append(len(inputs["text"])) or classify(loaded, inputs, batch))
    model = teacher.Teacher(trained_bert[0].summary["export_dir"])

    def interrupt_after_first_chunk(line):
        if "teacher logits 32/" in line:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.logits(texts, tmp_path, say=interrupt_after_first_chunk)
    assert calls == [32]
    logits = model.logits(texts, tmp_path, say=lambda line: None)
    assert calls == [32, 32, 32]  # only the two missing chunks
    assert model.logits(texts, tmp_path, say=lambda line: None).shape == (96, 2) and calls == [32, 32, 32]
    probabilities = classify(tf.saved_model.load(str(model.export_dir)), {"text": texts}, 64)
    np.testing.assert_allclose(logits, np.log(probabilities), atol=1e-5)


def test_the_loss_mixes_true_labels_and_the_teachers_softened_answers():
    from app.tasks.distill import DistillationLoss

    labels = np.array([0.0, 1.0])
    teacher, student = np.array([[2.0, -1.0], [0.5, 0.3]]), np.array([[1.0, 0.0], [-1.0, 1.0]])
    targets = np.concatenate([labels[:, None], teacher], axis=1).astype("float32")

    def softmax(logits):
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)

    cross_entropy = -np.mean(np.log(softmax(student)[[0, 1], [0, 1]]))
    p, q = softmax(teacher / 3), softmax(student / 3)
    kl = 9 * np.mean(np.sum(p * np.log(p / q), axis=1))
    for weight, expected in ((0.0, cross_entropy), (1.0, kl), (0.25, 0.75 * cross_entropy + 0.25 * kl)):
        assert float(DistillationLoss(3.0, weight)(targets, student.astype("float32"))) == pytest.approx(expected, rel=1e-4)


def fake_export(folder, task: str):
    """An export folder whose metadata says it is a ``task`` model (nothing else is read before the check)."""
    (folder / "1" / "assets.extra").mkdir(parents=True)
    (folder / "1" / "saved_model.pb").write_bytes(b"")
    (folder / "1" / "assets.extra" / "fromzero.json").write_text(json.dumps({"name": folder.name, "task": task}))
    return folder


def test_bad_teacher_student_or_labels_are_one_clear_error(trained_bert, pretrained_tiny, small_sst2, tmp_path):
    student = pretrained_tiny.summary["export_dir"]
    common = ["--train-file", str(small_sst2 / "train.tsv"), "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out"),
              "--runs-dir", str(tmp_path / "runs"), "--student-encoder", f"{student}/encoder", "--student-preprocessor", f"{student}/preprocessor"]
    teacher = ["--teacher", trained_bert[0].summary["export_dir"]]
    three_labels = tmp_path / "dev3.tsv"
    frame = pd.read_csv(small_sst2 / "dev.tsv", sep="\t", quoting=3)
    frame.loc[:4, "label"] = 2
    frame.to_csv(three_labels, sep="\t", index=False)
    cases = {
        "is a 'mnist' export, not a text classifier": ["--teacher", str(fake_export(tmp_path / "mnist", "mnist")), *common],
        "no exported versions": ["--teacher", str(tmp_path / "nothing"), *common],
        "--student-encoder /no/such/encoder does not exist": [*teacher, *common, "--student-encoder", "/no/such/encoder"],
        "has labels [2] that the teacher does not know": [*teacher, *common, "--validation-file", str(three_labels)],
    }
    for message, args in cases.items():
        result = run_in_process("app.distill", *args)
        assert result.returncode == 2, result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and message in errors[0] and "Traceback" not in result.stderr


def test_compressed_models_score_like_the_savedmodel(trained_bert, small_sst2, tmp_path):
    source = resolve_version(trained_bert[0].summary["export_dir"])
    export_dir = tmp_path / "bert_sst2" / "1"
    shutil.copytree(source, export_dir)
    result = run_app("app.compress", "--model-dir", str(export_dir.parent))
    assert result.returncode == 0, result.stderr
    report = last_json_line(result.stdout)["litert"]
    for quantization in ("int8", "float16"):
        assert (export_dir / "litert" / f"{quantization}.tflite").stat().st_size == report[quantization]["bytes"]
    assert report["int8"]["bytes"] < report["float16"]["bytes"] < report["int8"]["bytes"] * 3
    dev = str(small_sst2 / "dev.tsv")
    scores = {}
    for run, model in ((run_app, str(export_dir)), (run_in_process, str(export_dir / "litert" / "int8.tflite")),
                       (run_in_process, str(export_dir / "litert" / "float16.tflite"))):  # one real process is enough
        result = run("app.evaluate", "--model-dir", model, "--data", dev, "--out-dir", str(tmp_path / "plots"))
        assert result.returncode == 0, result.stderr
        scores[model] = last_json_line(result.stdout)["metrics"]["accuracy"]
    saved_model, int8, float16 = scores.values()
    assert float16 == pytest.approx(saved_model, abs=1 / 64) and int8 == pytest.approx(saved_model, abs=4 / 64)


def test_only_text_classifiers_are_compressed(tmp_path):
    result = run_in_process("app.compress", "--model-dir", str(fake_export(tmp_path / "mnist", "mnist")))
    assert result.returncode == 2 and "only text classifiers" in result.stderr
    result = run_in_process("app.evaluate", "--model-dir", str(tmp_path / "model.tflite"), "--data", str(tmp_path / "model.tflite"))
    assert result.returncode == 2 and "error:" in result.stderr


def test_perturbed_copies_are_reproducible_subsequences_of_their_sentence():
    from data_pipelines.augmentation import perturbed_copies

    texts = np.array(["a gorgeous , witty , seductive movie .", "dull", "the plot is paper-thin and the acting worse"], dtype=object)
    copies = perturbed_copies(texts, copies=20, seed=3)
    assert len(copies) == 60 and list(copies) == list(perturbed_copies(texts, copies=20, seed=3))
    assert list(copies) != list(perturbed_copies(texts, copies=20, seed=4))
    for index, copy in enumerate(copies):
        words, original = copy.split(), iter(texts[index % 3].split())
        assert words and all(word in original for word in words)  # in order, none invented
    assert any(len(copy.split()) <= 5 for copy in copies[::3])  # n-grams sampled

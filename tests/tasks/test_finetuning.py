"""Fine-tuning methods (``--finetune full|lora|frozen``) on the tiny test encoder: what trains, what
the LoRA export and adapter hold, a resumed LoRA run, the epoch kept (``--monitor``), and the flags' errors."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from app.serving.process import start_server
from app.serving.warmup import read_warmup_requests
from app.training.adapters import LoraBackupAndRestore, adapter_settings
from models.lora import LORA_TARGETS
from tests.support.commands import assert_one_line_error, last_json_line, run_in_process
from tests.support.http import post_json

BERT_SIGNATURES = {"serving_default", "classify_token_ids", "word_piece_counts"}


def dev_sentences(small_sst2) -> list[str]:
    return pd.read_csv(small_sst2 / "dev.tsv", sep="\t", quoting=3)["sentence"].tolist()


def parameters(loaded) -> int:
    return sum(int(np.prod(variable.shape)) for variable in loaded.variables)


def test_lora_trains_only_the_updates_and_the_head(trained_bert_lora, tiny_hub):
    summary = trained_bert_lora.summary
    assert summary["finetune"] == "lora" and summary["lora"] == {"rank": 4, "alpha": 4, "targets": ["query", "value"]}
    # By hand: the tiny encoder (width 32, 2 heads of 16, 2 layers); each query/value kernel
    # [32, 2, 16] is factored as the paper's [32, 32] matrix: A [32, 4] @ B [4, 2, 16]; the head is a [32, 2] Dense.
    per_layer = 2 * (32 * 4 + 4 * 2 * 16)
    assert summary["trainable_parameters"] == 2 * per_layer + (32 * 2 + 2)
    assert summary["trainable_parameters"] < 0.01 * summary["total_parameters"]
    assert summary["peak_rss_mb"] > 0
    adapter = Path(summary["adapter"])
    assert adapter.stat().st_size == summary["adapter_bytes"] < 200_000
    assert adapter_settings(adapter)["lora"]["rank"] == 4


def test_the_lora_export_is_merged_and_served_like_a_full_fine_tune(trained_bert_lora, trained_bert, small_sst2, tmp_path):
    export = trained_bert_lora.summary["export_dir"]
    loaded = tf.saved_model.load(export)
    assert not [variable.name for variable in loaded.variables if "lora" in variable.name]
    assert set(loaded.signatures) == BERT_SIGNATURES
    assert {request.model_spec.signature_name for request in read_warmup_requests(Path(export))} == BERT_SIGNATURES
    assert parameters(loaded) == parameters(tf.saved_model.load(trained_bert[0].summary["export_dir"]))

    # The in-memory model: the base encoder plus the run's adapter (factors and head).
    task = dataclasses.replace(trained_bert_lora.task, adapter=trained_bert_lora.summary["adapter"])
    model = task.build_model(trained_bert_lora.data)
    in_memory = np.concatenate([np.argmax(model(features, training=False), axis=1) for features, _ in trained_bert_lora.data.evaluation])
    labels = np.concatenate([labels for _, labels in trained_bert_lora.data.evaluation])
    assert np.mean(in_memory == labels) == pytest.approx(trained_bert_lora.summary["metrics"]["dev_accuracy"], abs=1e-6)

    sentences = dev_sentences(small_sst2)
    exported = loaded.signatures["serving_default"](text=tf.constant(sentences))["class_ids"].numpy()
    # The dev batches are grouped by length: compare the exported answers per sentence by accuracy.
    assert np.mean(exported == pd.read_csv(small_sst2 / "dev.tsv", sep="\t", quoting=3)["label"].to_numpy()) == pytest.approx(
        np.mean(in_memory == labels), abs=1e-6
    )

    base = tmp_path / "models"
    (base / "bert_sst2").mkdir(parents=True)
    (base / "bert_sst2" / "1").symlink_to(Path(export).resolve())
    with start_server(base, "--poll-seconds", "0.5") as server:
        status, answer = post_json(server.rest_url, "/v1/models/bert_sst2:predict", {"instances": sentences[:4]})
    assert status == 200, answer
    assert [row["class_ids"] for row in answer["predictions"]] == exported[:4].tolist()


def test_a_resumed_lora_run_keeps_its_factors(trained_bert_lora, tmp_path):
    """Keras saves a LoRA layer merged and zeroes its factors on load; the backup puts them back."""
    import keras

    task = trained_bert_lora.task
    model = task.build_model(trained_bert_lora.data)
    model.compile(optimizer=keras.optimizers.Adam(), loss=task.loss())
    model.optimizer.build(model.trainable_variables)
    for weight in model.trainable_weights:
        weight.assign(np.random.default_rng(0).normal(size=weight.shape).astype("float32"))
    backup = LoraBackupAndRestore(str(tmp_path / "backup"))
    backup.set_model(model)
    backup.on_epoch_end(0)

    restored = task.build_model(trained_bert_lora.data)
    restored.compile(optimizer=keras.optimizers.Adam(), loss=task.loss())
    resumed = LoraBackupAndRestore(str(tmp_path / "backup"))
    resumed.set_model(restored)
    resumed.on_train_begin()
    for before, after in zip(model.weights, restored.weights):
        np.testing.assert_allclose(after.numpy(), before.numpy(), atol=1e-6, err_msg=before.path)


def test_distill_and_a_from_zero_encoder_fine_tune_with_lora(trained_bert, pretrained_tiny, small_sst2, tmp_path):
    student = pretrained_tiny.summary["export_dir"]
    result = run_in_process(
        "app.distill", "--finetune", "lora", "--lora-rank", "2", "--teacher", trained_bert[0].summary["export_dir"],
        "--student-encoder", f"{student}/encoder", "--student-preprocessor", f"{student}/preprocessor",
        "--train-file", str(small_sst2 / "train.tsv"), "--validation-file", str(small_sst2 / "dev.tsv"), "--max-seq-length", "64",
        "--epochs", "1", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out"), "--runs-dir", str(tmp_path / "runs"), "--quiet",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = last_json_line(result.stdout)
    assert summary["finetune"] == "lora" and Path(summary["adapter"]).is_file()
    assert not [variable for variable in tf.saved_model.load(summary["export_dir"]).variables if "lora" in variable.name]


def bert_flags(hub: Path, small_sst2: Path, tmp_path: Path) -> list[str]:
    return [
        "bert", "--encoder", str(hub / "encoder"), "--preprocessor", str(hub / "preprocessor"), "--train-file", str(small_sst2 / "train.tsv"),
        "--validation-file", str(small_sst2 / "dev.tsv"), "--epochs", "1", "--out", str(tmp_path / "out"), "--runs-dir", str(tmp_path / "runs"),
    ]


@pytest.fixture(scope="module")
def plain_hub(tiny_hub, tmp_path_factory) -> Path:
    """The tiny handles as a plain TF-Hub encoder would be: without the Keras config this project adds."""
    copy = tmp_path_factory.mktemp("plain") / "hub"
    shutil.copytree(tiny_hub, copy)
    (copy / "encoder" / "assets" / "keras_backbone.json").unlink()
    return copy


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--finetune", "lora", "--lora-rank", "0"], ["--lora-rank", "0"]),
        (["--finetune", "lora", "--lora-rank", "33"], ["rank 33 is above the width 32 of layer"]),
        (["--finetune", "lora", "--lora-targets", "query,keys"], ["unknown layer keys", "attention_output"]),
        (["--adapter", "ADAPTER"], ["--adapter", "--finetune lora"]),
        (["--finetune", "lora", "--lora-rank", "2", "--adapter", "ADAPTER"], ["--adapter", "another model", "lora_kernel"]),
        (["--finetune", "lora", "--adapter", "missing.lora.h5"], ["missing.lora.h5 does not exist"]),
        (["--monitor", "val_f1"], ["--monitor", "invalid choice", "val_accuracy"]),
    ],
)
def test_bad_finetuning_flags_are_one_error_line_and_write_nothing(flags, expected, tiny_hub, small_sst2, trained_bert_lora, tmp_path):
    flags = [trained_bert_lora.summary["adapter"] if flag == "ADAPTER" else flag for flag in flags]
    result = run_in_process("app.train", *bert_flags(tiny_hub, small_sst2, tmp_path), *flags)
    assert_one_line_error(result, *expected)
    assert not (tmp_path / "out").exists() and not list((tmp_path / "runs").glob("bert/*"))


def test_lora_needs_a_keras_form_and_frozen_trains_the_head_alone(plain_hub, small_sst2, tmp_path):
    result = run_in_process("app.train", *bert_flags(plain_hub, small_sst2, tmp_path), "--finetune", "lora")
    assert_one_line_error(result, "plain TF-Hub SavedModel", "python -m app.export_hub", "--finetune full or frozen")

    frozen = run_in_process("app.train", *bert_flags(plain_hub, small_sst2, tmp_path), "--finetune", "frozen", "--quiet")
    assert frozen.returncode == 0, frozen.stderr[-3000:]
    summary = last_json_line(frozen.stdout)
    assert summary["finetune"] == "frozen" and summary["trainable_parameters"] == 32 * 2 + 2  # the [32, 2] head
    assert "adapter" not in summary
    exported = {variable.name: variable.numpy() for variable in tf.saved_model.load(summary["export_dir"]).variables}
    for variable in tf.saved_model.load(str(plain_hub / "encoder")).variables:
        np.testing.assert_array_equal(exported[variable.name], variable.numpy(), err_msg=variable.name)


def test_monitor_val_accuracy_keeps_and_exports_the_most_accurate_epoch(tiny_hub, small_sst2, tmp_path):
    # With this seed and rate the dev loss falls every epoch while the accuracy never beats the first
    # epoch's: monitoring the loss would keep the last epoch, monitoring the accuracy keeps the first.
    flags = [*bert_flags(tiny_hub, small_sst2, tmp_path), "--epochs", "3", "--patience", "3", "--learning-rate", "3e-3", "--seed", "1"]
    result = run_in_process("app.train", *flags, "--batch-size", "32", "--monitor", "val_accuracy", "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = last_json_line(result.stdout)
    curves = summary["validation_curves"]
    accuracy, best = curves["val_accuracy"], int(np.argmax(curves["val_accuracy"]))  # the first of equals: Keras keeps it
    assert summary["monitor"] == "val_accuracy" and len(accuracy) == 3
    assert summary["metrics"]["dev_accuracy"] == pytest.approx(accuracy[best], abs=1e-4)
    assert summary["metrics"]["dev_loss"] == pytest.approx(curves["val_loss"][best], abs=1e-3)
    dev = pd.read_csv(small_sst2 / "dev.tsv", sep="\t", quoting=3)
    served = tf.saved_model.load(summary["export_dir"]).signatures["serving_default"](text=tf.constant(dev["sentence"].tolist()))
    # Served sentences are padded unlike training's batches: a near tie may flip, hence one sentence's margin.
    assert np.mean(served["class_ids"].numpy() == dev["label"].to_numpy()) == pytest.approx(max(accuracy), abs=1.01 / len(dev))


# ---- a GPT adapted to a new text (--init-from) -----------------------------------------------------


@pytest.fixture(scope="module")
def review_text(small_sst2, tmp_path_factory) -> Path:
    """Film reviews as one text, with characters Shakespeare's vocabulary lacks (digits, '*', '/')."""
    sentences = pd.read_csv(small_sst2 / "train.tsv", sep="\t", quoting=3)["sentence"].tolist()
    path = tmp_path_factory.mktemp("reviews") / "reviews.txt"
    path.write_text("\n".join(sentences * 3 + ["a 10/10 film * 2 stars"] * 20) + "\n", encoding="utf-8")
    return path


def gpt_flags(review_text: Path, tmp_path: Path, *flags: str) -> list[str]:
    return ["gpt", "--text-file", str(review_text), "--epochs", "1", "--out", str(tmp_path / "out"), "--runs-dir", str(tmp_path / "runs"), *flags]


def test_a_gpt_starts_from_its_export_on_a_new_text(trained_gpt, review_text):
    from app.tasks import GptTask

    export = trained_gpt.export_dir
    task = GptTask(init_from=export, text_file=str(review_text))
    data = task.load_data(None, 8, 0, None)
    assert data.tokenizer.tokens_by_id == json.loads((Path(export) / "assets.extra" / "vocabulary.json").read_text())
    assert 0 < data.out_of_vocabulary < 0.05 and "outside the given vocabulary" in data.description
    model = task.build_model(data)
    token_ids = np.array([[5, 9, 2, 7, 1, 3]], np.int32)
    served = tf.saved_model.load(export).signatures["serving_default"](token_ids=tf.constant(token_ids))["logits"].numpy()
    np.testing.assert_allclose(model(token_ids).numpy(), served, atol=1e-5)


def test_app_train_gpt_init_from_adapts_with_lora_and_exports(trained_gpt, review_text, tmp_path):
    """(--finetune full differs only in what trains: `test_a_gpt_starts_from_its_export_on_a_new_text`.)"""
    result = run_in_process("app.train", *gpt_flags(review_text, tmp_path, "--init-from", trained_gpt.export_dir, "--finetune", "lora", "--quiet"))
    assert result.returncode == 0, result.stderr[-3000:]
    summary = last_json_line(result.stdout)
    assert summary["init_from"] == str(Path(trained_gpt.export_dir)) and summary["finetune"] == "lora"
    assert summary["metrics"]["out_of_vocabulary_share"] > 0
    base = json.loads((Path(trained_gpt.export_dir) / "assets.extra" / "fromzero.json").read_text())["gpt_config"]
    exported = json.loads((Path(summary["export_dir"]) / "assets.extra" / "fromzero.json").read_text())
    assert exported["gpt_config"] == base and exported["init_from"] == summary["init_from"]
    # tiny GPT: 2 blocks, width 32, feed-forward 128; rank 8 on every projection (the GPT's default
    # targets): query, key, value, attention_output [32 x 32] and the feed-forward [32 x 128], [128 x 32].
    assert summary["lora"]["targets"] == list(LORA_TARGETS)
    assert summary["trainable_parameters"] == 2 * (4 * 8 * (32 + 32) + 2 * 8 * (32 + 128))
    assert Path(summary["adapter"]).is_file()
    assert not [variable for variable in tf.saved_model.load(summary["export_dir"]).variables if "lora" in variable.name]


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--finetune", "lora"], ["--finetune lora adapts a trained GPT", "--init-from"]),
        (["--init-from", "BERT"], ["is not a GPT export of this project"]),
        (["--init-from", "missing/gpt"], ["missing/gpt is not a GPT export"]),
        (["--init-from", "GPT", "--seq-len", "64"], ["--seq-len 64 is longer than the 32 tokens"]),
    ],
)
def test_bad_gpt_adaptation_flags_are_one_error_line(flags, expected, trained_gpt, trained_bert, review_text, tmp_path):
    exports = {"BERT": trained_bert[0].export_dir, "GPT": trained_gpt.export_dir}
    result = run_in_process("app.train", *gpt_flags(review_text, tmp_path, *[exports.get(flag, flag) for flag in flags]))
    assert_one_line_error(result, *expected)
    assert not (tmp_path / "out").exists() and not list((tmp_path / "runs").glob("gpt/*"))

"""Sentence-pair classification (``app.train bert --second-text-column``): pairs are packed with
segment ids, the export answers two strings, app.evaluate scores a pair file, and the commands that
only handle single sentences (LiteRT, distillation) refuse a pair export clearly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import tensorflow as tf

from app.exports.savedmodel import read_metadata, resolve_version
from tests.support.commands import assert_one_line_error, last_json_line, run_in_process


def pair_file(small_sst2, split: str, path):
    """Each sentence with the next one, labelled 1 when both have the same sentiment."""
    frame = pd.read_csv(small_sst2 / f"{split}.tsv", sep="\t", quoting=3)
    second = frame.iloc[np.roll(np.arange(len(frame)), -1)].reset_index(drop=True)
    pairs = pd.DataFrame({"first": frame["sentence"], "second": second["sentence"], "label": (frame["label"] == second["label"]).astype(int)})
    pairs.to_csv(path, sep="\t", index=False)
    return path


def test_sentence_pairs_train_export_and_evaluate_as_pairs(tiny_hub, small_sst2, tmp_path):
    from app.tasks import BertTask
    from app.training.trainer import TrainConfig, train

    train_file, dev_file = pair_file(small_sst2, "train", tmp_path / "train.tsv"), pair_file(small_sst2, "dev", tmp_path / "dev.tsv")
    task = BertTask(
        encoder=str(tiny_hub / "encoder"), preprocessor=str(tiny_hub / "preprocessor"), train_file=str(train_file),
        validation_file=str(dev_file), text_column="first", second_text_column="second", label_names=("different", "same"),
    )
    inputs, _ = next(iter(task.load_data(None, 16, 0, None).train))
    assert int(tf.reduce_max(inputs["input_type_ids"])) == 1  # segment B is marked

    result = train(task, TrainConfig(epochs=1, batch_size=16, learning_rate=1e-3, out=str(tmp_path / "saved"), runs_dir=str(tmp_path / "runs"), quiet=True))
    export_dir = resolve_version(result.summary["export_dir"])
    assert read_metadata(export_dir)["second_text_column"] == "second"
    serve = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    answer = serve(text=tf.constant(["a gorgeous film", "dull"]), second_text=tf.constant(["a witty film", "a witty film"]))
    assert answer["probabilities"].shape == (2, 2) and set(answer["labels"].numpy()) <= {b"different", b"same"}

    scored = run_in_process("app.evaluate", "--model-dir", str(export_dir), "--data", str(dev_file), "--text-column", "first",
                            "--out-dir", str(tmp_path / "plots"))
    assert scored.returncode == 0, scored.stderr
    assert last_json_line(scored.stdout)["metrics"]["accuracy"] == result.summary["metrics"]["dev_accuracy"]
    assert_one_line_error(run_in_process("app.compress", "--model-dir", str(export_dir)), "classifies sentence pairs")
    student = ["--student-encoder", str(tiny_hub / "encoder"), "--student-preprocessor", str(tiny_hub / "preprocessor")]
    distilled = run_in_process("app.distill", "--teacher", str(export_dir), *student, "--out", str(tmp_path / "out"))
    assert_one_line_error(distilled, "classifies sentence pairs")

"""Pretraining from zero: a vocabulary learned from a corpus, masked-LM training through the one
trainer, TF-Hub handles with ``encoder.mlm``, fine-tuned like any handle; and bad input refused."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from data_pipelines.errors import DataError
from tests.support.builds import VOCAB_SIZE
from tests.support.commands import run_in_process

def test_vocabulary_starts_with_the_special_tokens_and_covers_held_out_text(small_vocab):
    out, report = small_vocab
    vocabulary = (out / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert vocabulary[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert VOCAB_SIZE * 0.7 < len(vocabulary) <= VOCAB_SIZE and report["vocab_size"] == len(vocabulary)
    assert "the" in vocabulary and all(token == token.lower() for token in vocabulary[5:])
    assert report["held_out_lines"] == (report["train_lines"] + report["held_out_lines"]) // 50 and 0 <= report["unk_rate_word_pieces"] < 0.02
    assert report["word_pieces_per_word"] > 1  # a small vocabulary splits words into pieces


def test_masked_lm_pretraining_learns_and_reports_held_out_accuracy(pretrained_tiny):
    summary = pretrained_tiny.summary
    accuracy = summary["validation_curves"]["val_accuracy"]
    assert len(accuracy) == 3 and summary["metrics"]["heldout_masked_accuracy"] == pytest.approx(accuracy[-1], abs=1e-3)
    # 170 steps of a toy model learn little more than which word pieces are common (the real run is in
    # bench/pretraining_value.py): its held-out loss ends well below a uniform guess over the vocabulary,
    # and its training loss falls (the held-out set, 36 lines, is too small to rank epochs by).
    assert summary["validation_curves"]["val_loss"][-1] < np.log(VOCAB_SIZE) - 0.5
    training_loss = pd.read_csv(f"{summary['run_dir']}/history.csv")["loss"].tolist()
    assert training_loss[-1] < training_loss[0], training_loss


def test_masked_batches_hide_fifteen_percent_and_never_the_special_tokens(small_vocab, small_corpus):
    from models.bert.preprocessor import build_preprocessor
    from data_pipelines.masked_lm import MaskingConfig, masked_lm_batches

    vocabulary = (small_vocab[0] / "vocab.txt").read_text(encoding="utf-8").splitlines()
    lines = small_corpus.read_text(encoding="utf-8").splitlines()[:640]
    config = MaskingConfig(len(vocabulary), mask_id=4, padding_id=0, special_ids=(0, 2, 3), max_length=64, batch_size=64)
    batches = masked_lm_batches(lines, build_preprocessor(small_vocab[0] / "vocab.txt", True, 64), config, shuffle_seed=0)
    real = masked = replaced_by_mask = 0
    for inputs, labels, weights in batches:
        selected = tf.gather(inputs["token_ids"], inputs["mask_positions"], batch_dims=1).numpy()[weights.numpy() > 0]
        assert set(labels.numpy()[weights.numpy() > 0]).isdisjoint({0, 2, 3})
        real += int(tf.reduce_sum(tf.cast(inputs["padding_mask"], tf.int32))) - 2 * len(labels)
        masked += int(weights.numpy().sum())
        replaced_by_mask += int((selected == 4).sum())
    assert 0.12 < masked / real < 0.22  # 15 %: at least one per line, at most 8
    assert 0.7 < replaced_by_mask / masked < 0.9  # 80 % of them become [MASK]


def test_exported_handles_fill_a_mask_and_fine_tune_like_any_handle(pretrained_tiny, small_sst2, tmp_path):
    from app.common.errors import UsageError
    from app.exports.predictions import fill_mask
    from app.tasks import BertTask
    from app.tasks.mlm import FINE_TUNING
    from app.training.trainer import TrainConfig, train

    hub = pretrained_tiny.summary["export_dir"]
    encoder, preprocessor = (tf.saved_model.load(f"{hub}/{name}") for name in ("encoder", "preprocessor"))
    [[candidates]] = fill_mask(encoder, preprocessor, ["to be or not to [MASK]"])
    assert len(candidates) == 5 and all(0 <= probability <= 1 for _, probability in candidates)

    task = BertTask(
        encoder=f"{hub}/encoder", preprocessor=f"{hub}/preprocessor",
        train_file=str(small_sst2 / "train.tsv"), validation_file=str(small_sst2 / "dev.tsv"), max_seq_length=64,
    )
    # No --learning-rate and no --train-word-embeddings: the encoder's recommendations apply, and the run says so.
    config = TrainConfig(epochs=1, batch_size=16, out=str(tmp_path / "saved"), runs_dir=str(tmp_path / "runs"), quiet=True)
    result = train(task, config)
    assert result.summary["encoder_recommends"] == {"learning_rate": FINE_TUNING["learning_rate"], "freeze_word_embeddings": False}
    assert result.summary["learning_rate"] == FINE_TUNING["learning_rate"] and result.summary["word_embeddings"] == "trained"
    assert any("token_embedding" in weight.path for weight in result.model.trainable_weights)
    # A flag the user gives wins; an encoder without recommendations keeps the BERT defaults.
    assert dataclasses.replace(task, freeze_word_embeddings=True).word_embeddings_frozen()
    assert BertTask().defaults.learning_rate == 5e-5 and BertTask().word_embeddings_frozen()
    # The encoder's learning rate is for full fine-tuning; LoRA and a frozen encoder train small matrices
    # from zero and keep their own (measured) defaults, here and for any encoder.
    for method, rate in (("lora", 3e-3), ("frozen", 1e-2)):
        assert dataclasses.replace(task, finetune=method).defaults.learning_rate == rate == BertTask(finetune=method).defaults.learning_rate
    # The encoder was pretrained on 64 word pieces: a longer --max-seq-length is refused up front.
    with pytest.raises(UsageError, match="--max-seq-length 128 is longer than the 64 word pieces"):
        dataclasses.replace(task, max_seq_length=128).build_model(SimpleNamespace(num_classes=2))
    assert 0 <= result.summary["metrics"]["dev_accuracy"] <= 1
    loaded = tf.saved_model.load(result.summary["export_dir"])
    assert loaded.signatures["serving_default"](text=tf.constant(["a fine film"]))["probabilities"].shape == (1, 2)


def test_bad_pretraining_input_is_one_clear_error(small_corpus, small_vocab, tiny_hub, tmp_path):
    from app.common.errors import UsageError
    from app.pretrain import main
    from app.tasks import MaskedLmTask

    empty, latin1 = tmp_path / "empty.txt", tmp_path / "latin1.txt"
    empty.write_text("\n  \n")
    latin1.write_bytes("café crème\n".encode("latin-1"))
    out = tmp_path / "vocab"
    for argv, error, message in [
        (["--corpus", str(empty)], DataError, "no text"),
        (["--corpus", str(latin1)], DataError, "not UTF-8"),
        (["--corpus", str(tmp_path / "missing.txt")], DataError, "not found"),
        (["--corpus", str(small_corpus), "--vocab-size", "4"], UsageError, "special tokens"),
        (["--data-dir", "/nonexistent/place"], DataError, "/nonexistent/place does not exist"),
    ]:
        with pytest.raises(error, match=message):
            main(["vocab", *argv, "--out", str(out)])
    assert not out.exists() or not any(out.iterdir())

    with pytest.raises(UsageError, match="no vocab.txt"):
        MaskedLmTask(vocab=str(tmp_path)).load_data(None, 8, 0, None)
    with pytest.raises(UsageError, match="no masked-LM head"):
        main(["fill-mask", "--encoder", str(tiny_hub / "encoder"), "--preprocessor", str(tiny_hub / "preprocessor"), "a [MASK]"])


def test_vocab_command_exits_2_with_one_line(tmp_path):
    result = run_in_process("app.pretrain", "vocab", "--corpus", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "v"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"error: corpus file not found: {tmp_path / 'missing.txt'}"
    assert not (tmp_path / "v").exists()

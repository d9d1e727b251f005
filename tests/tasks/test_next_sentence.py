"""``app.train mlm --objective mlm+nsp``: segment pairs half consecutive and half random, packed with
segment ids 0/1; a tiny run reports held-out masked and NSP accuracy and exports the pooler the NSP
head trained; bad input is one error line."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

from tests.support.commands import last_json_line, run_in_process

NUMBERED_LINES = 203


@pytest.fixture
def numbered_corpus(tmp_path):
    """One text file (one document) of lines ``line 0`` ... ``line 202``, and an SST-2-style TSV, whose
    sentences are documents of one line each and give no pairs."""
    text, tsv = tmp_path / "numbered.txt", tmp_path / "independent.tsv"
    text.write_text("".join(f"line {index}\n" for index in range(NUMBERED_LINES)))
    tsv.write_text("sentence\tlabel\na film\t1\nanother film\t0\n")
    return [str(text), str(tsv)]


def line_number(text: str) -> int:
    return int(text.split()[1])


def check_pairs(pairs, starts_held_out: bool, held_out: set[int], lines_per_segment: int = 1, lines: int = NUMBERED_LINES) -> None:
    """Exactly half consecutive, the others far in the same document; held-out lines only where allowed."""
    first, second = map(np.array, ([line_number(text) for text in pairs.first], [line_number(text) for text in pairs.second]))
    labels = np.array(pairs.is_next)
    assert labels.sum() == len(pairs) // 2 and len(pairs) > 0  # exactly half consecutive
    assert (second[labels == 1] == first[labels == 1] + lines_per_segment).all()
    assert (np.abs(second[labels == 0] - first[labels == 0]) >= lines // 4).all()  # far in the same document
    assert all((index in held_out) == starts_held_out for index in first)
    segments = [range(start, start + lines_per_segment) for start in second]
    assert not held_out & {line for segment in segments for line in segment}  # every B is training text
    if not starts_held_out:
        assert not held_out & {line for start in first for line in range(start, start + lines_per_segment)}


def test_pairs_are_half_consecutive_half_far_and_never_mix_held_out_lines(numbered_corpus):
    from data_pipelines.corpus import held_out_indices, load_corpus
    from data_pipelines.next_sentence import next_sentence_pairs

    corpus = load_corpus(numbered_corpus)
    assert [len(document) for document in corpus.documents] == [NUMBERED_LINES, 1, 1]
    held_out = held_out_indices(NUMBERED_LINES + 2)
    candidates, heldout = next_sentence_pairs(corpus, seed=0)
    first_epoch, second_epoch = (candidates.draw(np.random.default_rng(0)) for _ in range(2))
    for pairs, starts_held_out in ((first_epoch, False), (heldout, True)):
        check_pairs(pairs, starts_held_out, held_out)
    assert len(candidates) == NUMBERED_LINES - 1 - 2 * len(heldout)  # every A with a training next line, but the held-out ones
    # Each epoch draws again: the same As, other Bs; the held-out pairs depend on the seed only.
    third_epoch = candidates.draw(np.random.default_rng(1))
    assert first_epoch == second_epoch and third_epoch.first == first_epoch.first and third_epoch.is_next != first_epoch.is_next
    assert next_sentence_pairs(corpus, seed=0)[1] == heldout != next_sentence_pairs(corpus, seed=1)[1]


def test_segments_join_consecutive_lines_up_to_the_word_count(numbered_corpus):
    from data_pipelines.corpus import held_out_indices, load_corpus
    from data_pipelines.next_sentence import next_sentence_pairs

    held_out = held_out_indices(NUMBERED_LINES + 2)
    candidates, heldout = next_sentence_pairs(load_corpus(numbered_corpus), seed=0, segment_words=5)  # "line k": 2 words a line
    pairs = candidates.draw(np.random.default_rng(0))
    assert all(text == " ".join(f"line {line_number(text) + offset}" for offset in range(3)) for text in pairs.first + pairs.second)
    for drawn, starts_held_out in ((pairs, False), (heldout, True)):
        check_pairs(drawn, starts_held_out, held_out, lines_per_segment=3)


def test_a_short_document_gives_training_pairs_without_held_out_ones(tmp_path):
    from data_pipelines.corpus import load_corpus
    from data_pipelines.next_sentence import next_sentence_pairs

    short = tmp_path / "short.txt"
    short.write_text("".join(f"line {index}\n" for index in range(20)))  # held out: line 19 only, which has no next line
    candidates, heldout = next_sentence_pairs(load_corpus([str(short)]), seed=0, segment_words=2)
    assert len(candidates) == 18 and len(heldout) == 0
    check_pairs(candidates.draw(np.random.default_rng(0)), False, {19}, lines=20)


def test_pairs_are_packed_with_segment_ids_and_masked_with_their_labels(numbered_corpus, small_vocab):
    from data_pipelines.corpus import load_corpus
    from data_pipelines.masked_lm import MaskingConfig, masked_pair_batches, packed_pairs
    from data_pipelines.next_sentence import next_sentence_pairs
    from models.bert.preprocessor import build_preprocessor

    preprocessor = build_preprocessor(small_vocab[0] / "vocab.txt", True, 64)
    candidates = next_sentence_pairs(load_corpus(numbered_corpus), seed=0)[0].sample(range(64))
    pairs = candidates.draw(np.random.default_rng(0))
    special = preprocessor.get_special_tokens_dict()
    cls, sep = int(special["start_of_sequence_id"]), int(special["end_of_segment_id"])
    for (word_ids, segment_ids, is_next), label in zip(packed_pairs(pairs, preprocessor, 64).take(20), pairs.is_next):
        word_ids, segment_ids = word_ids.numpy(), segment_ids.numpy()
        first_sep = int(np.flatnonzero(word_ids == sep)[0])
        assert word_ids[0] == cls and word_ids[-1] == sep and (word_ids == sep).sum() == 2
        assert (segment_ids[: first_sep + 1] == 0).all() and (segment_ids[first_sep + 1 :] == 1).all() and int(is_next) == label

    config = MaskingConfig(400, mask_id=4, padding_id=0, special_ids=(0, 2, 3), max_length=64, batch_size=32)
    labels = []
    for inputs, targets, weights in masked_pair_batches(pairs, preprocessor, config, shuffle_seed=0):
        assert set(inputs) == {"token_ids", "segment_ids", "padding_mask", "mask_positions"}
        assert targets["mlm"].shape == weights["mlm"].shape == inputs["mask_positions"].shape
        assert (weights["nsp"].numpy() == 1).all() and int(tf.reduce_max(inputs["segment_ids"])) == 1
        labels += targets["nsp"].numpy().tolist()
    assert sorted(labels) == sorted(pairs.is_next)  # every pair once, with its own label

    # From the candidates (training): every A once per epoch, half of them consecutive, other Bs each epoch.
    epochs = [[(ids.numpy().tolist(), int(is_next)) for ids, _, is_next in epoch] for epoch in [packed_pairs(candidates, preprocessor, 64)] * 2]
    assert [sum(is_next for _, is_next in epoch) for epoch in epochs] == [32, 32] and epochs[0] != epochs[1]
    first_segments = [[ids[: ids.index(sep) + 1] for ids, _ in epoch] for epoch in epochs]
    assert first_segments[0] == first_segments[1]
    masked = [int(batch[1]["nsp"].numpy().sum()) for batch in masked_pair_batches(candidates, preprocessor, config, shuffle_seed=0)]
    assert sum(masked) == 32 and len(masked) == 2


def test_mlm_nsp_run_reports_both_accuracies_and_exports_the_trained_pooler(small_vocab, small_corpus, tmp_path):
    import keras

    from app.tasks import MaskedLmTask

    flags = dict(epochs=1, batch_size=32, learning_rate=2e-3, max_train_samples=320, mixed_precision="off")
    result = run_in_process(
        "app.train", "mlm", "--objective", "mlm+nsp", "--nsp-weight", "0.6", "--vocab", str(small_vocab[0]), "--corpus", str(small_corpus),
        "--num-layers", "1", "--hidden-dim", "32", "--max-length", "64", "--out", str(tmp_path / "saved"),
        "--runs-dir", str(tmp_path / "runs"), *(f"--{name.replace('_', '-')}={value}" for name, value in flags.items()),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = last_json_line(result.stdout)
    assert summary["objective"] == "mlm+nsp" and summary["nsp_weight"] == 0.6
    metrics = summary["metrics"]
    assert 0 <= metrics["heldout_masked_accuracy"] <= 1 and 0 <= metrics["heldout_nsp_accuracy"] <= 1
    # alpha = 0.6 (0.5 or 1 would give a total several per cent away); to 1 %: Keras averages the total and each
    # term over the batches separately.
    assert metrics["heldout_loss"] == pytest.approx(0.6 * metrics["heldout_masked_loss"] + 0.4 * metrics["heldout_nsp_loss"], rel=1e-2)
    assert {"val_mlm_accuracy", "val_nsp_accuracy", "val_mlm_loss", "val_nsp_loss"} <= set(summary["validation_curves"])

    task = MaskedLmTask(
        vocab=str(small_vocab[0]), corpus=(str(small_corpus),), num_layers=1, hidden_dim=32, max_length=64, objective="mlm+nsp", nsp_weight=0.6
    )
    vocab = SimpleNamespace(vocab_size=len((small_vocab[0] / "vocab.txt").read_text(encoding="utf-8").splitlines()))
    keras.utils.set_random_seed(0)  # the weights the run started from
    initial, model = task.build_model(vocab), task.build_model(vocab)
    model.load_weights(f"{summary['run_dir']}/checkpoints/best.keras")  # the trained ones
    encoder = tf.saved_model.load(f"{summary['export_dir']}/encoder")
    preprocessor = tf.saved_model.load(f"{summary['export_dir']}/preprocessor")
    inputs = preprocessor(tf.constant(["to be or not to be", "a fine film"]))
    outputs = encoder(inputs)
    assert set(outputs) == {"pooled_output", "default", "sequence_output", "encoder_outputs"} and hasattr(encoder, "mlm")
    keras_names = {"token_ids": "input_word_ids", "segment_ids": "input_type_ids", "padding_mask": "input_mask"}
    in_memory = model.backbone({name: inputs[hub_name] for name, hub_name in keras_names.items()})
    np.testing.assert_allclose(outputs["pooled_output"].numpy(), keras.ops.convert_to_numpy(in_memory["pooled_output"]), atol=1e-5)
    assert model.backbone.pooled_dense.trainable and "training on 320 segment pairs" in result.stdout
    assert not np.allclose(initial.backbone.pooled_dense.kernel.numpy(), model.backbone.pooled_dense.kernel.numpy())


def test_bad_nsp_input_is_one_error_line(small_vocab, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("first line\nsecond line\nthird line\n")
    common = ("--vocab", str(small_vocab[0]), "--out", str(tmp_path / "saved"), "--runs-dir", str(tmp_path / "runs"))
    for argv, message in [
        (("--objective", "nsp"), "argument --objective: invalid choice: 'nsp' (choose from 'mlm', 'mlm+nsp')"),
        (("--objective", "mlm+nsp", "--nsp-weight", "1.5"), "argument --nsp-weight: a weight in [0, 1], not 1.5"),
        (("--objective", "mlm+nsp", "--segment-words", "0"), "argument --segment-words: must be a positive integer, not 0"),
        (("--objective", "mlm+nsp", "--corpus", str(short)), "next-sentence prediction needs documents of at least 4 lines"),
    ]:
        result = run_in_process("app.train", "mlm", *argv, *common)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert lines[-1].startswith("error: ") and message in lines[-1], lines
    assert not (tmp_path / "runs").exists() and not (tmp_path / "saved").exists()

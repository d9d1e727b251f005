"""Data: where files are found, what the pipelines yield, and clear errors for bad data."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import tensorflow as tf

from data_pipelines import sources
from data_pipelines.batching import group_by_length
from data_pipelines.errors import DataError
from data_pipelines.mnist import MnistConfig, load_mnist
from data_pipelines.text import TextConfig, Tokenizer, load_text


def test_resolver_prefers_data_dir_then_env_then_shared(tmp_path, monkeypatch):
    explicit, from_env = tmp_path / "explicit", tmp_path / "env"
    for folder in (explicit, from_env):
        (folder / "set").mkdir(parents=True)
        (folder / "set" / "file.txt").write_text(folder.name)
    monkeypatch.setenv("FROMZERO_DATA", str(from_env))
    assert sources.resolve_data_file("set/file.txt", explicit).read_text() == "explicit"
    assert sources.resolve_data_file("set/file.txt").read_text() == "env"
    monkeypatch.delenv("FROMZERO_DATA")
    assert sources.resolve_data_file("mnist/mnist.npz") == sources.SHARED_DATA_DIR / "mnist" / "mnist.npz"


def test_resolver_names_every_place_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("FROMZERO_DATA", str(tmp_path / "env"))
    online = sources.OnlineSource("https://example.invalid/data.npz", fetch=lambda: 1 / 0)
    with pytest.raises(DataError) as error:
        sources.resolve_data_file("nothing/here.npz", online=online)
    message = str(error.value)
    for place in (str(tmp_path / "env"), str(sources.SHARED_DATA_DIR), "example.invalid"):
        assert place in message
    assert "FROMZERO_OFFLINE=1" in message


def test_an_explicit_data_dir_is_never_replaced_by_another_place(tmp_path):
    """The shared data has mnist/mnist.npz, yet a --data-dir without it (or missing) is an error naming it."""
    with pytest.raises(DataError, match="--data-dir /nonexistent/place does not exist"):
        sources.resolve_data_file("mnist/mnist.npz", "/nonexistent/place")
    with pytest.raises(DataError, match=f"not found in --data-dir {tmp_path}"):
        sources.resolve_data_file("mnist/mnist.npz", tmp_path)


def test_resolver_falls_back_to_online_source(tmp_path, monkeypatch):
    monkeypatch.delenv("FROMZERO_OFFLINE")
    downloaded = tmp_path / "downloaded.npz"
    downloaded.write_text("x")
    online = sources.OnlineSource("test source", fetch=lambda: downloaded)
    assert sources.resolve_data_file("nothing/here.npz", online=online) == downloaded


def test_mnist_splits_shapes_and_shuffling():
    data = load_mnist(MnistConfig(batch_size=64))
    assert data.counts == {"train": 4500, "validation": 500, "test": 10000}
    images, labels = next(iter(data.train))
    assert images.shape == (64, 784) and images.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 1.0
    assert labels.dtype == tf.int32
    # The shared training subset is sorted by class; a shuffled batch must mix classes.
    assert len(set(labels.numpy().tolist())) >= 5
    assert sum(int(batch[1].shape[0]) for batch in data.test) == 10000
    assert "mnist.npz" in data.describe() and "test 10,000" in data.describe()


def test_mnist_validation_is_carved_from_training_images():
    data = load_mnist(MnistConfig(batch_size=500, max_train_samples=1000))
    train = np.concatenate([x.numpy() for x, _ in data.train])
    validation = np.concatenate([x.numpy() for x, _ in data.validation])
    assert len(train) == 1000 and len(validation) == 500
    train_rows = {row.tobytes() for row in train}
    assert not any(row.tobytes() in train_rows for row in validation)


def test_mnist_rejects_a_file_of_the_wrong_layout(tmp_path):
    (tmp_path / "mnist").mkdir()
    np.savez(tmp_path / "mnist" / "mnist.npz", images=np.zeros((2, 28, 28)))
    with pytest.raises(DataError, match="not an mnist.npz"):
        load_mnist(MnistConfig(data_dir=str(tmp_path)))


@pytest.mark.parametrize("level", ["char", "word"])
def test_tokenizer_round_trip(level):
    text = "ROMEO:\nBut, soft! what light through yonder window breaks?\n'Tis the east."
    tokenizer = Tokenizer.fit(text, level, max_vocab_size=100)
    ids = tokenizer.encode(tf.constant(text))
    assert ids.dtype == tf.int32 and int(tf.reduce_min(ids)) >= 1
    assert tokenizer.decode(ids).numpy().decode() == text


def test_word_tokenizer_keeps_the_most_frequent_words_and_maps_others_to_unknown():
    tokenizer = Tokenizer.fit("a a a b b c", "word", max_vocab_size=3)
    assert tokenizer.vocabulary == ["a", "b"] and tokenizer.vocab_size == 3
    assert tokenizer.encode(tf.constant("a c b")).numpy().tolist() == [1, 0, 2]


def test_text_windows_are_shifted_by_one_and_validation_is_the_end(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(chr(ord("a") + i % 26) for i in range(2000)))
    data = load_text(TextConfig(text_file=str(corpus), seq_len=10, batch_size=4))
    inputs, targets = next(iter(data.train))
    assert inputs.shape == targets.shape == (4, 10)
    np.testing.assert_array_equal(inputs.numpy()[:, 1:], targets.numpy()[:, :-1])
    assert data.counts == {"train tokens": 1800, "validation tokens": 200}
    first_validation = next(iter(data.validation))[0].numpy()[0]
    expected = data.tokenizer.encode(tf.constant(corpus.read_text()[1800:1810])).numpy()
    np.testing.assert_array_equal(first_validation, expected)


def test_empty_or_too_short_text_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    with pytest.raises(DataError, match="is empty"):
        load_text(TextConfig(text_file=str(empty)))
    short = tmp_path / "short.txt"
    short.write_text("to be or not to be")
    with pytest.raises(DataError, match="fewer than --seq-len"):
        load_text(TextConfig(text_file=str(short), seq_len=100))


def _variable_length_examples(count=600, seed=0):
    rng = np.random.default_rng(seed)
    sequences = [
        np.concatenate([[index + 1], rng.integers(1, 50, size=rng.integers(0, 40))]).astype("int32")
        for index in range(count)
    ]
    dataset = tf.data.Dataset.from_generator(
        lambda: ((sequence, np.int32(index % 2)) for index, sequence in enumerate(sequences)),
        output_signature=(tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int32)),
    )
    return sequences, dataset


def test_length_grouping_pads_each_batch_to_its_longest_and_never_drops_or_duplicates():
    sequences, dataset = _variable_length_examples()
    batches = group_by_length(
        dataset, batch_size=16, length_fn=lambda tokens, label: tf.shape(tokens)[0], shuffle_seed=0, window_batches=4, pad_value=-1
    )
    epochs = []
    for _ in range(2):
        seen, padded_tokens, first_rows = collections.Counter(), 0, []
        for tokens, labels in batches:
            tokens = tokens.numpy()
            lengths = [len(sequences[row[0] - 1]) for row in tokens]
            assert tokens.shape[0] <= 16 and tokens.shape[1] == max(lengths)
            for row, label, length in zip(tokens, labels.numpy(), lengths):
                np.testing.assert_array_equal(row[:length], sequences[row[0] - 1])
                assert (row[length:] == -1).all() and label == (row[0] - 1) % 2
                seen[int(row[0])] += 1
            padded_tokens += tokens.size
            first_rows.append(int(tokens[0, 0]))
        assert seen == collections.Counter(range(1, len(sequences) + 1))
        epochs.append(first_rows)
        # Far less padding than batches in arrival order, each padded to its longest sentence.
        unsorted = sum(16 * max(len(s) for s in sequences[i : i + 16]) for i in range(0, len(sequences), 16))
        assert padded_tokens < 0.8 * unsorted
    assert epochs[0] != epochs[1], "training batches must be reshuffled every epoch"


def test_length_sorted_groups_cover_every_text_once_in_length_order():
    from data_pipelines.text_classification import length_sorted_groups

    texts = ["a much longer sentence than the rest", "short", "mid-sized one", "x", "another fairly long sentence"]
    groups = length_sorted_groups([len(text) for text in texts], batch_size=2)
    assert [len(group) for group in groups] == [2, 2, 1]
    positions = np.concatenate(groups)
    assert sorted(positions.tolist()) == list(range(len(texts)))
    assert [len(texts[i]) for i in positions] == sorted(len(text) for text in texts)


def test_shifting_windows_start_elsewhere_every_epoch_with_a_fixed_count():
    from data_pipelines.text import make_shifting_windows

    ids = np.arange(1000, dtype=np.int32)
    windows = make_shifting_windows(ids, seq_len=10, seed=0)
    assert int(windows.cardinality()) == 98
    starts = set()
    for _ in range(4):
        epoch = [(inputs.numpy(), targets.numpy()) for inputs, targets in windows]
        assert len(epoch) == 98
        np.testing.assert_array_equal(epoch[0][1], epoch[0][0] + 1)  # targets are the inputs shifted by one
        starts.add(int(epoch[0][0][0]))
    assert len(starts) > 1 and all(0 <= start < 10 for start in starts)

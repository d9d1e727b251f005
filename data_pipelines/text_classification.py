"""Labelled sentences (SST-2 or any TSV/CSV) as length-bucketed batches of BERT token ids.

Sentences are tokenized once with a TF-Hub BERT preprocessor (its ``tokenize`` and
``bert_pack_inputs``), trimmed to their own length, cached, then grouped into batches of similar
length and padded only to their bucket's length: SST-2 sentences average ~14 word pieces, so padding
everything to 128 would spend most of the compute on padding.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from data_pipelines.batching import bucket_by_length
from data_pipelines.errors import DataError
from data_pipelines.sources import resolve_data_file

SST2_TRAIN, SST2_DEV = "sst2/train.tsv", "sst2/dev.tsv"
TOKENIZE_BATCH = 256


@dataclass(frozen=True)
class TextClassificationConfig:
    """Which files and columns, how many sentences, and how to batch them."""

    data_dir: str | None = None
    train_file: str | None = None
    validation_file: str | None = None
    text_column: str = "sentence"
    label_column: str = "label"
    max_train_samples: int | None = None
    max_seq_length: int = 128
    batch_size: int = 32
    seed: int = 0


@dataclass(frozen=True)
class LabelledText:
    """Sentences and their integer labels, as read from ``source``."""

    texts: np.ndarray
    labels: np.ndarray
    source: Path


def read_labelled_text(path: Path, text_column: str, label_column: str) -> LabelledText:
    """Read a TSV (``.tsv``) or CSV file with a text and an integer label column."""
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    frame = pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",", quoting=3, keep_default_na=False)
    missing = [column for column in (text_column, label_column) if column not in frame.columns]
    if missing:
        raise DataError(f"{path} has no column {missing}; its columns are {list(frame.columns)}")
    if frame.empty:
        raise DataError(f"{path} holds no rows")
    labels = pd.to_numeric(frame[label_column], errors="coerce")
    if labels.isna().any() or (labels < 0).any() or (labels % 1 != 0).any():
        raise DataError(f"{path}: column {label_column!r} must hold class numbers 0, 1, ...")
    return LabelledText(frame[text_column].astype(str).to_numpy(), labels.astype("int32").to_numpy(), path)


def bucket_lengths(max_seq_length: int) -> tuple[int, ...]:
    """Padding lengths 16, 32, 64, ... up to and including ``max_seq_length``."""
    lengths, length = [], 16
    while length < max_seq_length:
        lengths.append(length)
        length *= 2
    return (*lengths, max_seq_length)


def tokenized(data: LabelledText, preprocessor, max_seq_length: int) -> tf.data.Dataset:
    """(token dict at each sentence's own length, label) pairs, tokenized in large batches."""

    def pack(texts, labels):
        inputs = preprocessor.bert_pack_inputs([preprocessor.tokenize(texts)], seq_length=max_seq_length)
        lengths = tf.reduce_sum(inputs["input_mask"], axis=1)
        return {name: tf.RaggedTensor.from_tensor(tensor, lengths=lengths) for name, tensor in inputs.items()}, labels

    def as_dense(features, label):
        # An unbatched ragged row is typed as a (rank-0 ragged) RaggedTensorSpec, but inside a map it is
        # a plain tensor: passing it through turns the spec into the TensorSpec that padding needs.
        return dict(features), label

    dataset = tf.data.Dataset.from_tensor_slices((data.texts, data.labels)).batch(TOKENIZE_BATCH).map(pack)
    return dataset.unbatch().map(as_dense).cache()


def batches(examples: tf.data.Dataset, config: TextClassificationConfig, shuffle: bool) -> tf.data.Dataset:
    """Shuffle (training only), group into length buckets, and tell Keras how many batches an epoch has."""
    if shuffle:
        examples = examples.shuffle(10_000, seed=config.seed, reshuffle_each_iteration=True)
    batched = bucket_by_length(
        examples,
        bucket_lengths(config.max_seq_length),
        config.batch_size,
        length_fn=lambda features, label: tf.shape(features["input_word_ids"])[0],
    )
    # Each bucket yields ceil(its size / batch size) batches whatever the order, so one counting pass
    # (which also fills the token cache) gives Keras the epoch length for its progress bar.
    batch_count = int(batched.reduce(0, lambda count, _: count + 1))
    return batched.apply(tf.data.experimental.assert_cardinality(batch_count)).prefetch(tf.data.AUTOTUNE)


def load_split(relative_or_path: str | None, default: str, config: TextClassificationConfig) -> LabelledText:
    """A file the user named, else the default SST-2 split found by the data resolver."""
    path = Path(relative_or_path) if relative_or_path else resolve_data_file(default, config.data_dir)
    return read_labelled_text(path, config.text_column, config.label_column)


def load_text_classification(config: TextClassificationConfig, preprocessor):
    """Training and validation batches (SST-2 train/dev by default) and the raw splits."""
    train = load_split(config.train_file, SST2_TRAIN, config)
    validation = load_split(config.validation_file, SST2_DEV, config)
    order = np.random.default_rng(config.seed).permutation(len(train.texts))[: config.max_train_samples]
    train = LabelledText(train.texts[order], train.labels[order], train.source)
    return (
        batches(tokenized(train, preprocessor, config.max_seq_length), config, shuffle=True),
        batches(tokenized(validation, preprocessor, config.max_seq_length), config, shuffle=False),
        train,
        validation,
    )

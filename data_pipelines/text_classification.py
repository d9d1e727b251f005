"""Labelled sentences (SST-2 or any TSV/CSV) as length-grouped batches of BERT token ids; with a second
text column, labelled sentence pairs, packed ``[CLS] A [SEP] B [SEP]`` with segment ids 0 and 1.

Sentences are tokenized once with a TF-Hub BERT preprocessor (its ``tokenize`` and
``bert_pack_inputs``), trimmed to their own length, cached, then grouped into batches of similar
length, each padded only to its longest sentence: SST-2 training sentences average ~13 word pieces,
so padding everything to 128 would spend most of the compute on padding. Inference does the same
with `length_sorted_groups`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from data_pipelines.batching import as_dense, group_by_length, with_counted_length
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
    second_text_column: str | None = None  # sentence pairs: segment B
    max_train_samples: int | None = None
    max_seq_length: int = 128
    batch_size: int = 32
    seed: int = 0


@dataclass(frozen=True)
class LabelledText:
    """Sentences ([N], or [N, 2] for pairs) and their integer labels, as read from ``source``."""

    texts: np.ndarray
    labels: np.ndarray
    source: Path


def read_labelled_text(path: Path, text_column: str, label_column: str, second_text_column: str | None = None) -> LabelledText:
    """Read a TSV (``.tsv``) or CSV file with a text (or two: ``second_text_column``) and an integer label column."""
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    frame = pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",", quoting=3, keep_default_na=False)
    missing = [column for column in (text_column, label_column, second_text_column) if column and column not in frame.columns]
    if missing:
        raise DataError(f"{path} has no column {missing}; its columns are {list(frame.columns)}")
    if frame.empty:
        raise DataError(f"{path} holds no rows")
    labels = pd.to_numeric(frame[label_column], errors="coerce")
    if labels.isna().any() or (labels < 0).any() or (labels % 1 != 0).any():
        raise DataError(f"{path}: column {label_column!r} must hold class numbers 0, 1, ...")
    texts = frame[[text_column, second_text_column] if second_text_column else text_column].astype(str).to_numpy()
    return LabelledText(texts, labels.astype("int32").to_numpy(), path)


def length_sorted_groups(lengths, batch_size: int) -> list[np.ndarray]:
    """Indices of the examples in batches of similar ``lengths`` (word pieces, or characters as a
    cheaper stand-in), so each inference batch is padded to little more than its sentences.
    Reassemble the answers in input order with ``np.concatenate(groups)`` as the positions."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def tokenized(data: LabelledText, preprocessor, max_seq_length: int) -> tf.data.Dataset:
    """(token dict at each example's own length, label) pairs, tokenized in large batches."""

    def pack(texts, labels):
        segments = tf.unstack(texts, axis=1) if texts.shape.rank == 2 else [texts]
        inputs = preprocessor.bert_pack_inputs([preprocessor.tokenize(segment) for segment in segments], seq_length=max_seq_length)
        lengths = tf.reduce_sum(inputs["input_mask"], axis=1)
        return {name: tf.RaggedTensor.from_tensor(tensor, lengths=lengths) for name, tensor in inputs.items()}, labels

    dataset = tf.data.Dataset.from_tensor_slices((data.texts, data.labels)).batch(TOKENIZE_BATCH).map(pack)
    return dataset.unbatch().map(as_dense).cache()


def batches(examples: tf.data.Dataset, config: TextClassificationConfig, shuffle: bool) -> tf.data.Dataset:
    """Group into batches of similar length (reshuffled each epoch for training), and tell Keras how
    many batches an epoch has."""
    batched = group_by_length(
        examples,
        config.batch_size,
        length_fn=lambda features, label: tf.shape(features["input_word_ids"])[0],
        shuffle_seed=config.seed if shuffle else None,
    )
    return with_counted_length(batched)


def load_split(relative_or_path: str | None, default: str, config: TextClassificationConfig) -> LabelledText:
    """A file the user named, else the default SST-2 split found by the data resolver."""
    path = Path(relative_or_path) if relative_or_path else resolve_data_file(default, config.data_dir)
    return read_labelled_text(path, config.text_column, config.label_column, config.second_text_column)


def read_splits(config: TextClassificationConfig) -> tuple[LabelledText, LabelledText]:
    """The training sentences (shuffled once by the seed, cut to ``max_train_samples``) and the
    validation sentences, as read (SST-2 train/dev by default)."""
    train = load_split(config.train_file, SST2_TRAIN, config)
    validation = load_split(config.validation_file, SST2_DEV, config)
    order = np.random.default_rng(config.seed).permutation(len(train.texts))[: config.max_train_samples]
    return LabelledText(train.texts[order], train.labels[order], train.source), validation


def load_text_classification(config: TextClassificationConfig, preprocessor, splits=None):
    """Training and validation batches and the raw splits (``splits`` from `read_splits`, read here if
    not given; their ``labels`` may be rows of targets, e.g. a label and a teacher's logits)."""
    train, validation = splits or read_splits(config)
    return (
        batches(tokenized(train, preprocessor, config.max_seq_length), config, shuffle=True),
        batches(tokenized(validation, preprocessor, config.max_seq_length), config, shuffle=False),
        train,
        validation,
    )

"""Tiny Shakespeare (or any text file) as next-token prediction windows for a language model.

The text is split into tokens (characters by default, or words), mapped to integer ids with a
vocabulary built from the training part only, and cut into windows of ``seq_len`` inputs whose
targets are the same tokens shifted by one. The last 10 % of the text is the validation split.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from data_pipelines.batching import batch_for_training
from data_pipelines.errors import DataError
from data_pipelines.sources import OnlineSource, resolve_data_file

SHAKESPEARE_FILE = "tinyshakespeare/input.txt"
SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
OOV_TOKEN = "[UNK]"
TOKENIZERS = ("char", "word")

# Word level: punctuation marks and line breaks become tokens of their own; letters, digits and
# apostrophes ("'tis", "o'er") stay inside words.
_PUNCTUATION = r"([^\w\s']|\n)"


def _download_shakespeare() -> str:
    return keras.utils.get_file("tinyshakespeare.txt", origin=SHAKESPEARE_URL)


ONLINE_SHAKESPEARE = OnlineSource(SHAKESPEARE_URL, _download_shakespeare)


class Tokenizer:
    """Text <-> token ids with a fixed vocabulary; id 0 is the out-of-vocabulary token.

    The same object encodes the training data and is exported with the model, so the served
    model and the training pipeline cannot disagree about the vocabulary.
    """

    def __init__(self, level: str, vocabulary: list[str]):
        if level not in TOKENIZERS:
            raise ValueError(f"tokenizer must be one of {TOKENIZERS}, not {level!r}")
        self.level = level
        self.vocabulary = list(vocabulary)
        self.to_ids = keras.layers.StringLookup(vocabulary=self.vocabulary, oov_token=OOV_TOKEN, mask_token=None)
        self.to_tokens = keras.layers.StringLookup(
            vocabulary=self.vocabulary, oov_token=OOV_TOKEN, mask_token=None, invert=True
        )
        self.to_ids(tf.constant([""]))
        self.to_tokens(tf.constant([0]))

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary) + 1

    @property
    def tokens_by_id(self) -> list[str]:
        """The token of each id, id 0 (out of vocabulary) first."""
        return [OOV_TOKEN, *self.vocabulary]

    @property
    def separator(self) -> str:
        return "" if self.level == "char" else " "

    def split(self, text: tf.Tensor) -> tf.Tensor:
        """A scalar string -> a 1-D tensor of token strings; a batch [B] -> a ragged [B, (tokens)]."""
        if self.level == "char":
            return tf.strings.unicode_split(text, "UTF-8")
        spaced = tf.strings.regex_replace(text, _PUNCTUATION, r" \1 ")
        pieces = tf.strings.split(spaced, sep=" ")
        return tf.ragged.boolean_mask(pieces, tf.strings.length(pieces) > 0)

    def encode(self, text: tf.Tensor) -> tf.Tensor:
        """A scalar string -> int32 token ids; a batch [B] -> ragged [B, (ids)]."""
        return tf.cast(self.to_ids(self.split(text)), tf.int32)

    def decode(self, token_ids: tf.Tensor) -> tf.Tensor:
        """1-D token ids -> a scalar string; [B, length] -> [B] strings."""
        text = tf.strings.reduce_join(self.to_tokens(token_ids), axis=-1, separator=self.separator)
        if self.level == "word":
            text = tf.strings.regex_replace(text, r" ?\n ?", "\n")
            text = tf.strings.regex_replace(text, r" ([^\w\s'\n])", r"\1")
        return text

    @classmethod
    def fit(cls, text: str, level: str, max_vocab_size: int) -> "Tokenizer":
        """Build the vocabulary of ``text``: every character, or the most frequent words."""
        probe = cls(level, ["a"])
        tokens = [token.decode("utf-8") for token in probe.split(tf.constant(text)).numpy()]
        counts = collections.Counter(tokens)
        if level == "char":
            vocabulary = sorted(counts)
        else:
            vocabulary = sorted(counts, key=lambda token: (-counts[token], token))[: max_vocab_size - 1]
        return cls(level, vocabulary)


@dataclass(frozen=True)
class TextConfig:
    """Which text, how to tokenize it, and how to window and batch it."""

    data_dir: str | None = None
    text_file: str | None = None
    tokenizer: str = "char"
    max_vocab_size: int = 10_000
    seq_len: int = 100
    batch_size: int = 64
    validation_fraction: float = 0.1
    max_train_samples: int | None = None
    seed: int = 0
    # Training windows start at a new random offset every epoch instead of always at 0, seq_len, ...
    random_offsets: bool = False
    # A trained model's vocabulary (without the out-of-vocabulary token) instead of one built from
    # this text: tokens outside it become the out-of-vocabulary id 0.
    vocabulary: tuple[str, ...] | None = None


@dataclass(frozen=True)
class TextData:
    """Batched (inputs, targets) windows for training and validation, and the tokenizer."""

    train: tf.data.Dataset
    validation: tf.data.Dataset
    tokenizer: Tokenizer
    source: Path
    counts: dict
    out_of_vocabulary: float | None = None  # share of tokens outside a given vocabulary

    def describe(self) -> str:
        counts = ", ".join(f"{split} {count:,}" for split, count in self.counts.items())
        unknown = "" if self.out_of_vocabulary is None else f"; {self.out_of_vocabulary:.3%} outside the given vocabulary"
        return f"text from {self.source} ({self.tokenizer.level} tokens, vocabulary {self.tokenizer.vocab_size:,}): {counts}{unknown}"


def read_text(config: TextConfig) -> tuple[str, Path]:
    """The raw text and its path: ``--text-file`` if given, else Tiny Shakespeare via the resolver."""
    if config.text_file:
        path = Path(config.text_file)
        if not path.is_file():
            raise DataError(f"text file not found: {path}")
    else:
        path = resolve_data_file(SHAKESPEARE_FILE, config.data_dir, ONLINE_SHAKESPEARE)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text") from None
    if not text.strip():
        raise DataError(f"{path} is empty: a language model needs text to learn from")
    return text, path


def make_windows(token_ids: np.ndarray, seq_len: int) -> tf.data.Dataset:
    """Cut ids into non-overlapping windows: inputs ids[i:i+L], targets ids[i+1:i+L+1]."""
    count = (len(token_ids) - 1) // seq_len
    inputs = token_ids[: count * seq_len].reshape(count, seq_len)
    targets = token_ids[1 : count * seq_len + 1].reshape(count, seq_len)
    return tf.data.Dataset.from_tensor_slices((inputs, targets))


def make_shifting_windows(token_ids: np.ndarray, seq_len: int, seed: int) -> tf.data.Dataset:
    """Like `make_windows`, but every pass over the dataset starts the windows at a new random
    offset in [0, seq_len): each epoch shows the model other contexts. One window fewer, so every
    epoch has the same number of windows (a known epoch length)."""
    count = (len(token_ids) - 1) // seq_len - 1
    ids = tf.constant(token_ids, tf.int32)

    def windows_from(offset):
        start = tf.cast(offset % seq_len, tf.int32)
        inputs = tf.reshape(ids[start : start + count * seq_len], [count, seq_len])
        targets = tf.reshape(ids[start + 1 : start + count * seq_len + 1], [count, seq_len])
        return tf.data.Dataset.from_tensor_slices((inputs, targets))

    offsets = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
    return offsets.flat_map(windows_from).apply(tf.data.experimental.assert_cardinality(count))


def load_text(config: TextConfig = TextConfig()) -> TextData:
    """Read, tokenize, split (last part = validation), window and batch a text corpus."""
    text, path = read_text(config)
    split_at = int(len(text) * (1 - config.validation_fraction))
    train_text, validation_text = text[:split_at], text[split_at:]

    if config.vocabulary:
        tokenizer = Tokenizer(config.tokenizer, list(config.vocabulary))
    else:
        tokenizer = Tokenizer.fit(train_text, config.tokenizer, config.max_vocab_size)
    train_ids = tokenizer.encode(tf.constant(train_text)).numpy()
    validation_ids = tokenizer.encode(tf.constant(validation_text)).numpy()
    out_of_vocabulary = float(np.mean(np.concatenate([train_ids, validation_ids]) == 0)) if config.vocabulary else None
    if config.max_train_samples:
        train_ids = train_ids[: config.max_train_samples]
    shifting = 2 if config.random_offsets else 1  # shifted windows need one spare window
    for split, ids, needed in (("training", train_ids, config.seq_len * shifting), ("validation", validation_ids, config.seq_len)):
        if len(ids) <= needed:
            raise DataError(
                f"{path}: the {split} part has {len(ids)} {config.tokenizer} tokens, fewer than --seq-len "
                f"{config.seq_len}" + (" x 2" if needed > config.seq_len else "") + " + 1; use a longer text or a smaller --seq-len"
            )

    if config.random_offsets:
        train_windows = make_shifting_windows(train_ids, config.seq_len, config.seed)
    else:
        train_windows = make_windows(train_ids, config.seq_len)
    return TextData(
        train=batch_for_training(
            train_windows, config.batch_size, shuffle_seed=config.seed, drop_remainder=True, cache=not config.random_offsets
        ),
        validation=batch_for_training(make_windows(validation_ids, config.seq_len), config.batch_size),
        tokenizer=tokenizer,
        source=path,
        counts={"train tokens": len(train_ids), "validation tokens": len(validation_ids)},
        out_of_vocabulary=out_of_vocabulary,
    )

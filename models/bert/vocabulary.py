"""BERT's WordPiece vocabulary: read a checkpoint's, or learn one from text (the first step of
pretraining from zero), and measure how well it covers held-out text."""

from __future__ import annotations

import json
from pathlib import Path

from data_pipelines.errors import DataError

# BERT's special tokens, first in a learned vocabulary: [PAD] = 0 is what padding and masking assume.
RESERVED_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB_FILE = "vocab.txt"


def read_vocabulary(checkpoint: Path) -> tuple[Path, bool]:
    """The checkpoint's WordPiece vocabulary file and whether its tokenizer lower-cases.

    Reads a Hugging Face BERT folder (``vocab.txt``, ``tokenizer_config.json``) or a keras-hub preset
    (``assets/tokenizer/vocabulary.txt``, ``tokenizer.json``).
    """
    huggingface_vocab, keras_hub_vocab = checkpoint / "vocab.txt", checkpoint / "assets" / "tokenizer" / "vocabulary.txt"
    if huggingface_vocab.is_file():
        config_path = checkpoint / "tokenizer_config.json"
        config = json.loads(config_path.read_text()) if config_path.is_file() else {}
        return huggingface_vocab, bool(config.get("do_lower_case", True))
    if keras_hub_vocab.is_file():
        config = json.loads((checkpoint / "tokenizer.json").read_text()).get("config", {})
        return keras_hub_vocab, bool(config.get("lowercase", True))
    raise DataError(f"no WordPiece vocabulary in {checkpoint}: looked for {huggingface_vocab} and {keras_hub_vocab}")


def learn_vocabulary(lines: list[str], vocab_size: int) -> list[str]:
    """A WordPiece vocabulary of at most ``vocab_size`` entries, special tokens first.

    The text is lower-cased and stripped of accents exactly as the preprocessor does it
    (`models.bert.preprocessor.uncased`), so every word piece learned here is one the tokenizer can produce.
    """
    import keras_hub
    import tensorflow as tf

    from models.bert.preprocessor import uncased

    text = tf.data.Dataset.from_tensor_slices(lines).batch(1024).map(uncased)
    return keras_hub.tokenizers.compute_word_piece_vocabulary(
        text, vocab_size, lowercase=False, strip_accents=False, reserved_tokens=RESERVED_TOKENS
    )


def unknown_rate(vocab_file: Path, lines: list[str]) -> dict:
    """How well the vocabulary covers ``lines``: the share of word pieces and of words that are [UNK]."""
    import tensorflow as tf

    from models.bert.preprocessor import build_preprocessor

    pieces = build_preprocessor(vocab_file, lower_case=True).tokenize(tf.constant(lines))
    unk_id = RESERVED_TOKENS.index("[UNK]")
    is_unknown = tf.equal(pieces.flat_values, unk_id)
    words = pieces.merge_dims(0, 1)
    return {
        "held_out_lines": len(lines),
        "unk_rate_word_pieces": round(float(tf.reduce_mean(tf.cast(is_unknown, tf.float32))), 5),
        "unk_rate_words": round(float(tf.reduce_mean(tf.cast(tf.reduce_any(tf.equal(words, unk_id), axis=1), tf.float32))), 5),
        "word_pieces_per_word": round(int(tf.size(pieces.flat_values)) / max(1, int(words.nrows())), 3),
    }

"""The first half of the large-model recipe, from zero: a vocabulary, then (with ``app.train mlm``) a
pretrained encoder, then a look at what it learned.

``python -m app.pretrain vocab [--corpus FILE...] [--vocab-size 8000] [--out DIR]``
    learns a lower-cased WordPiece vocabulary with keras-hub's trainer and reports its [UNK] rate on
    held-out lines of the corpus.
``python -m app.pretrain fill-mask --encoder DIR --preprocessor DIR "a [MASK] film"``
    the encoder's top-5 word pieces for each ``[MASK]``, through the export's ``encoder.mlm``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Sequence

from app.cli import ArgumentParser, UsageError, positive_int, run_command

# BERT's special tokens, first in the vocabulary: [PAD] = 0 is what padding and masking assume.
RESERVED_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
DEFAULT_VOCAB_DIR = Path("saved_models") / "pretrain" / "vocab"
VOCAB_FILE, REPORT_FILE = "vocab.txt", "vocab_report.json"
TOP_K = 5


def learn_vocabulary(lines: list[str], vocab_size: int) -> list[str]:
    """A WordPiece vocabulary of at most ``vocab_size`` entries, special tokens first.

    The text is lower-cased and stripped of accents exactly as the exported preprocessor does it
    (``app.export_hub.uncased``), so every word piece learned here is one the tokenizer can produce.
    """
    import keras_hub
    import tensorflow as tf

    from app.export_hub import uncased

    text = tf.data.Dataset.from_tensor_slices(lines).batch(1024).map(uncased)
    return keras_hub.tokenizers.compute_word_piece_vocabulary(
        text, vocab_size, lowercase=False, strip_accents=False, reserved_tokens=RESERVED_TOKENS
    )


def unknown_rate(vocab_file: Path, lines: list[str]) -> dict:
    """How well the vocabulary covers ``lines``: the share of word pieces and of words that are [UNK]."""
    import tensorflow as tf

    from app.export_hub import build_preprocessor

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


def vocab_command(corpus_files: list[str] | None, vocab_size: int, out: Path, data_dir: str | None, max_lines: int | None) -> dict:
    from data_pipelines.corpus import load_corpus

    if vocab_size <= len(RESERVED_TOKENS):
        raise UsageError(f"--vocab-size {vocab_size} leaves no room beside the {len(RESERVED_TOKENS)} special tokens {RESERVED_TOKENS}")
    corpus = load_corpus(corpus_files, data_dir, max_lines)
    print(f"{corpus.description}; learning a vocabulary of up to {vocab_size:,} word pieces ...", flush=True)
    start = time.perf_counter()
    vocabulary = learn_vocabulary(corpus.train, vocab_size)
    seconds = time.perf_counter() - start

    out.mkdir(parents=True, exist_ok=True)
    staging = out / f".{VOCAB_FILE}.{os.getpid()}"
    staging.write_text("".join(f"{token}\n" for token in vocabulary), encoding="utf-8")
    coverage = unknown_rate(staging, corpus.held_out)
    staging.replace(out / VOCAB_FILE)  # complete or absent, never half-written
    report = {
        "vocab_file": str(out / VOCAB_FILE), "vocab_size": len(vocabulary), "lower_case": True,
        "corpus": corpus.sources, "train_lines": len(corpus.train), "seconds": round(seconds, 1), **coverage,
    }
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2))
    print(
        f"wrote {len(vocabulary):,} word pieces to {out / VOCAB_FILE} in {seconds:.0f} s; on held-out lines "
        f"{coverage['unk_rate_word_pieces']:.2%} of word pieces are [UNK], {coverage['word_pieces_per_word']} pieces per word"
    )
    return report


def fill_mask(encoder, preprocessor, texts: list[str], top_k: int = TOP_K) -> list[list[list[tuple[str, float]]]]:
    """For each text, for each ``[MASK]`` in it, the ``top_k`` (word piece, probability) of ``encoder.mlm``.

    ``encoder`` and ``preprocessor`` are loaded TF-Hub objects (``tf.saved_model.load``).
    """
    import numpy as np
    import tensorflow as tf

    special = {name: int(value) for name, value in preprocessor.get_special_tokens_dict().items()}
    vocabulary = Path(encoder.vocab_file.asset_path.numpy().decode()).read_text(encoding="utf-8").splitlines()
    rows = []
    for text in texts:
        parts = preprocessor.tokenize(tf.constant(text.split("[MASK]"))).merge_dims(-2, -1).to_list()
        ids = [special["start_of_sequence_id"]]
        for index, part in enumerate(parts):
            ids += ([special["mask_id"]] if index else []) + part
        rows.append(ids + [special["end_of_segment_id"]])
    length = max(map(len, rows))
    word_ids = np.full((len(rows), length), special["padding_id"], np.int32)
    for row, ids in zip(word_ids, rows):
        row[: len(ids)] = ids
    positions = [np.flatnonzero(row == special["mask_id"]) for row in word_ids]
    padded_positions = np.zeros((len(rows), max(1, max(map(len, positions)))), np.int32)
    for row, found in zip(padded_positions, positions):
        row[: len(found)] = found
    logits = encoder.mlm({
        "input_word_ids": tf.constant(word_ids), "input_mask": tf.constant((word_ids != special["padding_id"]).astype(np.int32)),
        "input_type_ids": tf.zeros_like(word_ids), "masked_lm_positions": tf.constant(padded_positions),
    })["mlm_logits"]
    probabilities = tf.nn.softmax(logits, axis=-1).numpy()
    results = []
    for text_index, found in enumerate(positions):
        results.append([
            [(vocabulary[i], round(float(probabilities[text_index, slot, i]), 4)) for i in np.argsort(-probabilities[text_index, slot])[:top_k]]
            for slot in range(len(found))
        ])
    return results


def fill_mask_command(encoder_handle: str, preprocessor_handle: str, texts: list[str], top_k: int) -> dict:
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the preprocessor is made of TF Text ops)

    from models.hub_layer import resolve_handle

    if not all("[MASK]" in text for text in texts):
        raise UsageError('every text needs at least one [MASK], e.g. "a [MASK] film"')
    for handle in (encoder_handle, preprocessor_handle):
        if not handle.startswith(("http://", "https://")) and not Path(handle).is_dir():
            raise UsageError(f"handle not found: {handle}")
    encoder = tf.saved_model.load(resolve_handle(encoder_handle))
    if not hasattr(encoder, "mlm"):
        raise UsageError(f"{encoder_handle} has no masked-LM head (encoder.mlm); export one pretrained with python -m app.train mlm")
    predictions = fill_mask(encoder, tf.saved_model.load(resolve_handle(preprocessor_handle)), texts, top_k)
    for text, per_mask in zip(texts, predictions):
        print(text)
        for index, candidates in enumerate(per_mask, 1):
            print(f"  [MASK] {index}: " + ", ".join(f"{token} {probability:.3f}" for token, probability in candidates))
    return {"encoder": encoder_handle, "predictions": [{"text": t, "masks": p} for t, p in zip(texts, predictions)]}


def main(argv: Sequence[str] | None = None) -> dict:
    parser = ArgumentParser(prog="python -m app.pretrain", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    vocab = commands.add_parser("vocab", help="learn a lower-cased WordPiece vocabulary from text files")
    vocab.add_argument("--corpus", nargs="+", help="UTF-8 text files, one sentence or paragraph per line (default: SST-2 train sentences + Tiny Shakespeare)")
    vocab.add_argument("--vocab-size", type=positive_int, default=8000, help="word pieces, special tokens included (default 8000)")
    vocab.add_argument("--out", type=Path, default=DEFAULT_VOCAB_DIR, help=f"folder for vocab.txt (default {DEFAULT_VOCAB_DIR})")
    vocab.add_argument("--data-dir", help="folder holding the default corpus's data sets")
    vocab.add_argument("--max-lines", type=positive_int, help="read only the first lines of each corpus file (quick runs)")
    fill = commands.add_parser("fill-mask", help="an encoder's top guesses for [MASK] (needs a handle with encoder.mlm)")
    fill.add_argument("texts", nargs="+", help='texts with [MASK], e.g. "a [MASK] film"')
    fill.add_argument("--encoder", required=True, help="TF-Hub encoder handle with a masked-LM head")
    fill.add_argument("--preprocessor", required=True, help="its TF-Hub preprocessor handle")
    fill.add_argument("--top-k", type=positive_int, default=TOP_K)
    args = parser.parse_args(argv)
    if args.command == "vocab":
        from data_pipelines.sources import require_data_dir

        require_data_dir(args.data_dir)
        return vocab_command(args.corpus, args.vocab_size, args.out, args.data_dir, args.max_lines)
    return fill_mask_command(args.encoder, args.preprocessor, args.texts, args.top_k)


if __name__ == "__main__":
    run_command(main)

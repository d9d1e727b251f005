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

from app.common import paths
from app.common.cli import ArgumentParser, UsageError, positive_int, run_command

REPORT_FILE = "vocab_report.json"
TOP_K = 5  # guesses shown per [MASK]


def vocab_command(corpus_files: list[str] | None, vocab_size: int, out: Path, data_dir: str | None, max_lines: int | None) -> dict:
    from data_pipelines.corpus import load_corpus
    from models.bert.vocabulary import RESERVED_TOKENS, VOCAB_FILE, learn_vocabulary, unknown_rate

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


def fill_mask_command(encoder_handle: str, preprocessor_handle: str, texts: list[str], top_k: int) -> dict:
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the preprocessor is made of TF Text ops)

    from app.exports.predictions import fill_mask
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


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m app.pretrain", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    vocab = commands.add_parser("vocab", help="learn a lower-cased WordPiece vocabulary from text files")
    vocab.add_argument("--corpus", nargs="+", help="UTF-8 text files, one sentence or paragraph per line (default: SST-2 train sentences + Tiny Shakespeare)")
    vocab.add_argument("--vocab-size", type=positive_int, default=8000, help="word pieces, special tokens included")
    vocab.add_argument("--out", type=Path, default=paths.VOCABULARY, help="folder for vocab.txt")
    vocab.add_argument("--data-dir", help="folder holding the default corpus's data sets")
    vocab.add_argument("--max-lines", type=positive_int, help="read only the first lines of each corpus file (quick runs)")
    fill = commands.add_parser("fill-mask", help="an encoder's top guesses for [MASK] (needs a handle with encoder.mlm)")
    fill.add_argument("texts", nargs="+", help='texts with [MASK], e.g. "a [MASK] film"')
    fill.add_argument("--encoder", required=True, help="TF-Hub encoder handle with a masked-LM head")
    fill.add_argument("--preprocessor", required=True, help="its TF-Hub preprocessor handle")
    fill.add_argument("--top-k", type=positive_int, default=TOP_K, help="guesses per [MASK]")
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    if args.command == "vocab":
        from data_pipelines.sources import require_data_dir

        require_data_dir(args.data_dir)
        return vocab_command(args.corpus, args.vocab_size, args.out, args.data_dir, args.max_lines)
    return fill_mask_command(args.encoder, args.preprocessor, args.texts, args.top_k)


if __name__ == "__main__":
    run_command(main)

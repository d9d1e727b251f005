"""Unlabelled text for pretraining: the lines of UTF-8 files, split into training and held-out lines.

A *document* is text whose lines follow one another (what next-sentence pairs are drawn from): a
plain text file is one document, its non-empty lines in order; an SST-2-style TSV holds independent
sentences (shuffled phrases of different reviews), so each of its sentences is a document of one line.

The default corpus is the sentences of SST-2 ``train.tsv`` without their labels plus Tiny
Shakespeare; SST-2's ``dev.tsv`` and ``test.tsv`` are never part of it (they score the fine-tuning).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from data_pipelines.errors import DataError
from data_pipelines.sources import resolve_data_file
from data_pipelines.text import ONLINE_SHAKESPEARE, SHAKESPEARE_FILE
from data_pipelines.text_classification import SST2_TRAIN

# Every HELD_OUT_EVERY-th line is held out (a fixed, spread-out sample of the corpus).
HELD_OUT_EVERY = 50


@dataclass(frozen=True)
class Corpus:
    """Training and held-out lines, and where they came from."""

    train: list[str]
    held_out: list[str]
    sources: list[str]
    # Every line in its document, in the files' order: ``documents`` flattened are the corpus lines,
    # of which the `held_out_indices` are held out.
    documents: list[list[str]]

    @property
    def description(self) -> str:
        return f"corpus {', '.join(self.sources)}: {len(self.train):,} training and {len(self.held_out):,} held-out lines"


def read_documents(path: Path, max_lines: int | None = None) -> list[list[str]]:
    """The first ``max_lines`` non-empty lines of a UTF-8 text file, as one document; an SST-2-style
    TSV gives its ``sentence`` column only, each sentence a document of its own."""
    if not path.is_file():
        raise DataError(f"corpus file not found: {path}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"corpus file {path} is not UTF-8 text (byte {raw[error.start]:#04x} at offset {error.start})") from None
    independent = path.suffix == ".tsv" and text.startswith("sentence\t")
    if independent:
        lines = pd.read_csv(path, sep="\t", quoting=3, keep_default_na=False)["sentence"].astype(str).tolist()
    else:
        lines = text.splitlines()
    lines = [line.strip() for line in lines if line.strip()][:max_lines]
    return [[line] for line in lines] if independent else [lines]


def default_corpus_files(data_dir: str | None) -> list[Path]:
    return [resolve_data_file(SST2_TRAIN, data_dir), resolve_data_file(SHAKESPEARE_FILE, data_dir, ONLINE_SHAKESPEARE)]


def load_corpus(files: list[str] | None = None, data_dir: str | None = None, max_lines: int | None = None) -> Corpus:
    """Read ``files`` (default: SST-2 train sentences + Tiny Shakespeare) and hold out every 50th line.

    ``max_lines`` keeps the first lines of each file in turn (for quick runs and tests).
    """
    paths = [Path(file) for file in files] if files else default_corpus_files(data_dir)
    documents = [document for path in paths for document in read_documents(path, max_lines) if document]
    lines = [line for document in documents for line in document]
    if len(lines) < 2:
        raise DataError(f"the corpus has no text to learn from ({len(lines)} non-empty lines in {', '.join(map(str, paths))})")
    held_out = held_out_indices(len(lines))
    train = [line for index, line in enumerate(lines) if index not in held_out]
    return Corpus(train, [lines[index] for index in sorted(held_out)], [str(path) for path in paths], documents)


def held_out_indices(line_count: int) -> set[int]:
    """Which of the corpus lines are held out: every 50th (at least the last one)."""
    return set(range(HELD_OUT_EVERY - 1, line_count, HELD_OUT_EVERY)) or {line_count - 1}

"""Unlabelled text for pretraining: the lines of UTF-8 files, split into training and held-out lines.

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

    @property
    def description(self) -> str:
        return f"corpus {', '.join(self.sources)}: {len(self.train):,} training and {len(self.held_out):,} held-out lines"


def read_lines(path: Path) -> list[str]:
    """The non-empty lines of a UTF-8 text file; SST-2-style TSVs give their ``sentence`` column only."""
    if not path.is_file():
        raise DataError(f"corpus file not found: {path}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"corpus file {path} is not UTF-8 text (byte {raw[error.start]:#04x} at offset {error.start})") from None
    if path.suffix == ".tsv" and text.startswith("sentence\t"):
        lines = pd.read_csv(path, sep="\t", quoting=3, keep_default_na=False)["sentence"].astype(str).tolist()
    else:
        lines = text.splitlines()
    return [line.strip() for line in lines if line.strip()]


def default_corpus_files(data_dir: str | None) -> list[Path]:
    return [resolve_data_file(SST2_TRAIN, data_dir), resolve_data_file(SHAKESPEARE_FILE, data_dir, ONLINE_SHAKESPEARE)]


def load_corpus(files: list[str] | None = None, data_dir: str | None = None, max_lines: int | None = None) -> Corpus:
    """Read ``files`` (default: SST-2 train sentences + Tiny Shakespeare) and hold out every 50th line.

    ``max_lines`` keeps the first lines of each file in turn (for quick runs and tests).
    """
    paths = [Path(file) for file in files] if files else default_corpus_files(data_dir)
    per_file = [read_lines(path)[:max_lines] for path in paths]
    lines = [line for file_lines in per_file for line in file_lines]
    if len(lines) < 2:
        raise DataError(f"the corpus has no text to learn from ({len(lines)} non-empty lines in {', '.join(map(str, paths))})")
    held_out_indices = set(range(HELD_OUT_EVERY - 1, len(lines), HELD_OUT_EVERY)) or {len(lines) - 1}
    train = [line for index, line in enumerate(lines) if index not in held_out_indices]
    return Corpus(train, [lines[index] for index in sorted(held_out_indices)], [str(path) for path in paths])

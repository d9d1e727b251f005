"""Segment pairs for next-sentence prediction (NSP), BERT's second pretraining objective: is segment
B the line that follows segment A in its document, or a random one?

Segments are corpus lines (`data_pipelines.corpus`: a text file is one document, an SST-2 TSV's
sentences are one-line documents and give no pairs). Every line that has a next line in its document
can be an A; exactly half of the As keep their next line as B (``is_next`` 1), the other half get a
random line of the same document at least a quarter of the document away (``is_next`` 0). Same
document, not another file: with B from another source (the default corpus mixes film reviews and
Shakespeare) the model would answer from the style of the text alone, the shortcut for which ALBERT
(Lan et al., 2019) criticised NSP. The pairs are drawn once, from the seed.

The corpus's held-out lines never appear in a training pair; a held-out pair starts at a held-out
line (its B, the next line or a random one, is a training line, as every B is).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_pipelines.corpus import Corpus, held_out_indices
from data_pipelines.errors import DataError

MIN_DOCUMENT_LINES = 4  # the fewest lines with a "far" line (>= 2 away) for every A


@dataclass(frozen=True)
class SentencePairs:
    """``first[i]`` and ``second[i]`` are segments A and B; ``is_next[i]`` is 1 when B follows A."""

    first: list[str]
    second: list[str]
    is_next: list[int]

    def __len__(self) -> int:
        return len(self.first)

    def sample(self, indices) -> SentencePairs:
        return SentencePairs(*([values[index] for index in indices] for values in (self.first, self.second, self.is_next)))


def next_sentence_pairs(corpus: Corpus, seed: int) -> tuple[SentencePairs, SentencePairs]:
    """Training and held-out pairs, half of each consecutive and half random (see the module docstring)."""
    lines = [line for document in corpus.documents for line in document]
    held_out = held_out_indices(len(lines))
    rng = np.random.default_rng(seed)
    splits = {True: [], False: []}  # held out? -> (A, A's next line, the training lines far from A)
    start = 0
    for document in corpus.documents:
        end = start + len(document)
        if len(document) >= MIN_DOCUMENT_LINES:
            gap = max(2, len(document) // 4)
            training_lines = np.array([index for index in range(start, end) if index not in held_out])
            for first in (index for index in range(start, end - 1) if index + 1 not in held_out):
                # Far lines: the training lines before first - gap + 1 and from first + gap on.
                near = np.searchsorted(training_lines, [first - gap + 1, first + gap])
                far = (training_lines[: near[0]], training_lines[near[1] :])
                if len(far[0]) + len(far[1]):
                    splits[first in held_out].append((first, first + 1, far))
        start = end
    if not splits[False]:
        raise DataError(
            f"next-sentence prediction needs documents of at least {MIN_DOCUMENT_LINES} lines that follow one another; "
            f"{', '.join(corpus.sources)} has none (a text file is one document, a TSV's sentences are one line each)"
        )
    return tuple(_labelled(splits[held], lines, rng) for held in (False, True))


def _labelled(candidates: list, lines: list[str], rng: np.random.Generator) -> SentencePairs:
    """Exactly half of the As (rounded down) keep their next line; the others get a random far line."""
    is_next = rng.permutation(np.arange(len(candidates)) < len(candidates) // 2).astype(int)
    second = [next_line if label else _pick(far, rng) for (_, next_line, far), label in zip(candidates, is_next)]
    return SentencePairs([lines[first] for first, _, _ in candidates], [lines[index] for index in second], is_next.tolist())


def _pick(far: tuple[np.ndarray, np.ndarray], rng: np.random.Generator) -> int:
    """A uniformly random line of the two ranges (without joining them: a document may have 40,000 lines)."""
    index = int(rng.integers(len(far[0]) + len(far[1])))
    return int(far[0][index] if index < len(far[0]) else far[1][index - len(far[0])])

"""Segment pairs for next-sentence prediction (NSP), BERT's second pretraining objective: is segment
B the text that follows segment A in its document, or a random one?

A *segment* is a window of consecutive lines of one document: from a line, as many lines as it takes
to hold ``segment_words`` words (1: the line alone), as BERT packs several sentences into a segment.
Documents come from `data_pipelines.corpus` (a text file is one document; an SST-2 TSV's sentences are
one-line documents and give no pairs). Every window that has a next window in its document can be an
A; exactly half of the As keep their next window as B (``is_next`` 1), the other half get a random
window of the same document at least a quarter of the document away (``is_next`` 0). Same document,
not another file: with B from another source (the default corpus mixes film reviews and Shakespeare)
the model would answer from the style of the text alone, the shortcut for which ALBERT (Lan et al.,
2019) criticised NSP.

Training pairs are drawn anew for every epoch (`PairCandidates.draw`), as BERT's data creation
duplicates its corpus with other pairs and RoBERTa re-draws its masks: drawn once, the pairs were
learnt by heart (measured: training NSP accuracy 0.93, held-out 0.60). Held-out pairs are drawn once,
so their accuracy compares from epoch to epoch.

The corpus's held-out lines never appear in a training pair: a training window contains none; a
held-out pair's A starts at a held-out line (its B, the next window or a random one, is a training
window, as every B is).
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


@dataclass(frozen=True)
class PairCandidates:
    """The As pairs are drawn for: ``segments[first[i]]`` is an A, ``segments[following[i]]`` the window
    after it, ``far[i]`` the two ranges of training windows far enough from it to be a random B."""

    segments: dict[int, str]  # the window that starts at each corpus line, by line index
    first: list[int]
    following: list[int]
    far: list[tuple[np.ndarray, np.ndarray]]

    def __len__(self) -> int:
        return len(self.first)

    def sample(self, indices) -> PairCandidates:
        return PairCandidates(self.segments, *([values[index] for index in indices] for values in (self.first, self.following, self.far)))

    def draw(self, rng: np.random.Generator) -> SentencePairs:
        """One draw of the pairs: exactly half of the As (rounded down) keep their next window, the
        others get a random far one."""
        is_next = rng.permutation(np.arange(len(self)) < len(self) // 2).astype(int)
        second = [after if label else _pick(far, rng) for after, far, label in zip(self.following, self.far, is_next)]
        return SentencePairs([self.segments[index] for index in self.first], [self.segments[index] for index in second], is_next.tolist())


def next_sentence_pairs(corpus: Corpus, seed: int, segment_words: int = 1) -> tuple[PairCandidates, SentencePairs]:
    """The training As (their pairs drawn each epoch) and the held-out pairs, drawn once from ``seed``."""
    if segment_words < 1:
        raise DataError(f"a segment holds at least 1 word, not {segment_words}")
    lines = [line for document in corpus.documents for line in document]
    held_out = held_out_indices(len(lines))
    segments, candidates = {}, {True: [], False: []}  # held out? -> (A, the window after it, far training windows)
    start = 0
    for document in corpus.documents:
        end = start + len(document)
        if len(document) >= MIN_DOCUMENT_LINES:
            _add_document(lines, start, end, held_out, segment_words, segments, candidates)
        start = end
    if not candidates[False]:
        raise DataError(
            f"next-sentence prediction needs documents of at least {MIN_DOCUMENT_LINES} lines that follow one another; "
            f"{', '.join(corpus.sources)} has none (a text file is one document, a TSV's sentences are one line each)"
        )
    # (A, the window after it, far windows) triples as columns; a small corpus may have no held-out A.
    training, held = (PairCandidates(segments, *([found[column] for found in candidates[kind]] for column in range(3))) for kind in (False, True))
    return training, held.draw(np.random.default_rng(seed))


def _add_document(lines, start, end, held_out, segment_words, segments, candidates) -> None:
    """The windows of lines ``start:end`` (one document) and the As among them."""
    words = np.concatenate([[0], np.cumsum([len(lines[index].split()) for index in range(start, end)])])
    held = np.concatenate([[0], np.cumsum([index in held_out for index in range(start, end)])])
    # The window from line i ends before line ends[i], the first line by which it holds segment_words words.
    ends = start + np.searchsorted(words, words[:-1] + segment_words)
    whole = ends <= end
    for line in np.flatnonzero(whole):
        segments[start + int(line)] = " ".join(lines[start + int(line) : int(ends[line])])
    clean = whole & (held[np.minimum(ends, end) - start] == held[:-1])  # no held-out line inside
    training_windows = start + np.flatnonzero(clean)
    gap = max(2, (end - start) // 4)
    for line in np.flatnonzero(whole):
        first, after = start + int(line), int(ends[line])
        if after >= end or not clean[after - start] or not (clean[line] or first in held_out):
            continue
        # Far windows: the training windows that start before first - gap + 1 or from first + gap on.
        near = np.searchsorted(training_windows, [first - gap + 1, first + gap])
        far = (training_windows[: near[0]], training_windows[near[1] :])
        if len(far[0]) + len(far[1]):
            candidates[first in held_out].append((first, after, far))


def _pick(far: tuple[np.ndarray, np.ndarray], rng: np.random.Generator) -> int:
    """A uniformly random window of the two ranges (without joining them: a document may have 40,000 lines)."""
    index = int(rng.integers(len(far[0]) + len(far[1])))
    return int(far[0][index] if index < len(far[0]) else far[1][index - len(far[0])])

"""Perturbed copies of sentences, for distillation: a teacher can label text no person labelled, so
the student learns from many more examples than the labelled set (Tang et al., 2019, "Distilling
Task-Specific Knowledge from BERT into Simple Neural Networks": words masked and n-grams sampled).

Each copy drops every word with probability ``drop`` and, with probability ``ngram``, keeps only a
random run of 1 to ``max_ngram`` words; deterministic for a seed (so cached teacher logits are found
again on a second run).
"""

from __future__ import annotations

import numpy as np


def perturbed_copies(
    texts: np.ndarray, copies: int, seed: int, drop: float = 0.1, ngram: float = 0.25, max_ngram: int = 5
) -> np.ndarray:
    """``copies`` perturbed versions of every sentence, copy by copy (sentence i of copy k at ``k * len(texts) + i``)."""
    rng = np.random.default_rng(seed)
    perturbed = []
    for _ in range(copies):
        for text in texts:
            words = str(text).split()
            if len(words) > 1 and rng.random() < ngram:
                length = int(rng.integers(1, min(max_ngram, len(words)) + 1))
                start = int(rng.integers(0, len(words) - length + 1))
                words = words[start : start + length]
            kept = [word for word in words if rng.random() >= drop]
            perturbed.append(" ".join(kept or words))
    return np.array(perturbed, dtype=object)

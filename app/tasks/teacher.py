"""A fine-tuned classifier export as a *teacher*: its logits over a list of sentences, computed once
and cached on disk in chunks, so an interrupted distillation resumes where the teacher stopped.

The export answers probabilities, not logits. Their logarithms are the logits up to one constant per
sentence, which a softmax (at any temperature) cancels: for distillation they are the logits.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np

from app.common.errors import UsageError
from app.exports.savedmodel import read_metadata, resolve_version

CHUNK = 2048
TEXT_TASKS = ("bert",)
# The smallest probability kept: log(1e-30) = -69 stands in for a probability that underflowed to 0.
PROBABILITY_FLOOR = 1e-30


class Teacher:
    """The newest (or given) version of a text-classifier export; fails with one line on anything else."""

    def __init__(self, model_dir: str | Path, version: int | None = None):
        try:
            self.export_dir = resolve_version(model_dir, version)
        except FileNotFoundError as error:
            raise UsageError(f"teacher: {error} (train one with python -m app.train bert)") from None
        try:
            self.metadata = read_metadata(self.export_dir)
        except (OSError, ValueError):
            raise UsageError(f"teacher {self.export_dir} is not an export of this project (no assets.extra/fromzero.json)") from None
        if self.metadata.get("task") not in TEXT_TASKS:
            raise UsageError(
                f"teacher {self.export_dir} is a {self.metadata.get('task')!r} export, not a text classifier "
                "(train one with python -m app.train bert)"
            )
        if self.metadata.get("second_text_column"):
            raise UsageError(f"teacher {self.export_dir} classifies sentence pairs: a teacher here answers single sentences")
        self.label_names = list(self.metadata["label_names"])

    def check_labels(self, labels: np.ndarray, source) -> None:
        """The student learns the teacher's classes: a file with other class numbers is an error."""
        unknown = sorted(set(np.unique(labels).tolist()) - set(range(len(self.label_names))))
        if unknown:
            raise UsageError(
                f"{source} has labels {unknown} that the teacher does not know "
                f"(its classes are {dict(enumerate(self.label_names))})"
            )

    def cache_folder(self, cache_dir: Path, texts: np.ndarray) -> Path:
        """One folder per (export, sentences): a re-exported teacher or other sentences get a new one."""
        digest = hashlib.sha256((self.export_dir / "fingerprint.pb").read_bytes())
        for text in texts:
            digest.update(text.encode("utf-8") + b"\0")
        return cache_dir / f"{self.metadata['name']}-v{self.export_dir.name}-{digest.hexdigest()[:16]}"

    def logits(self, texts: np.ndarray, cache_dir: Path, batch_size: int = 64, say=None) -> np.ndarray:
        """[len(texts), classes] teacher logits; chunks already in ``cache_dir`` are read, not recomputed."""
        say = say or (lambda *args: print(*args, flush=True))
        folder = self.cache_folder(cache_dir, texts)
        folder.mkdir(parents=True, exist_ok=True)
        starts = range(0, len(texts), CHUNK)
        missing = [start for start in starts if not (folder / f"{start:08d}.npy").is_file()]
        if missing:
            self._compute(texts, folder, missing, batch_size, say)
        else:
            say(f"teacher logits for {len(texts):,} sentences read from {folder}")
        return np.concatenate([np.load(folder / f"{start:08d}.npy") for start in starts])

    def _compute(self, texts, folder: Path, missing: list[int], batch_size: int, say) -> None:
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (the export's preprocessor is made of TF Text ops)

        from app.exports.predictions import classify

        loaded = tf.saved_model.load(str(self.export_dir))
        done = len(texts) - sum(len(texts[start : start + CHUNK]) for start in missing)
        say(f"teacher {self.export_dir}: logits for {len(texts):,} sentences ({done:,} cached) into {folder}")
        began, computed = time.perf_counter(), 0
        for start in missing:
            chunk = texts[start : start + CHUNK]
            probabilities = classify(loaded, {"text": chunk.astype(object)}, batch_size)
            logits = np.log(np.maximum(probabilities, PROBABILITY_FLOOR)).astype(np.float32)
            partial = folder / f".{start:08d}.{os.getpid()}.npy"
            np.save(partial, logits)
            os.replace(partial, folder / f"{start:08d}.npy")  # a chunk is there whole or not at all
            computed += len(chunk)
            rate = computed / (time.perf_counter() - began)
            left = len(texts) - done - computed
            say(f"  teacher logits {done + computed:,}/{len(texts):,} ({rate:.0f} sentences/s, {left / rate:.0f} s left)")

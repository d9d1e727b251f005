"""A classifier export and its LiteRT variants behind one interface (texts in, probabilities out),
and how to measure them: SST-2 dev accuracy, batch-1 latency, batch-32 throughput. Used by
``bench/compression.py`` (alternating rounds, medians) and notebook 07."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from app.exports.savedmodel import resolve_version


class SavedModelVariant:
    def __init__(self, export_dir: Path):
        import tensorflow as tf
        import tensorflow_text  # noqa: F401

        self.path, self.loaded = export_dir, tf.saved_model.load(str(export_dir))
        self.serve = self.loaded.signatures["serving_default"]
        used = self.loaded.signatures["classify_token_ids"].variables  # each weight once (the export may hold copies)
        self.parameters = int(sum(np.prod(variable.shape) for variable in used))
        self.bytes = sum(path.stat().st_size for path in [export_dir / "saved_model.pb", *(export_dir / "variables").iterdir()])

    def probabilities(self, texts: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        return self.serve(text=tf.constant(texts.astype(object)))["probabilities"].numpy()


class LiteRtVariant:
    def __init__(self, model_path: Path, parameters: int):
        from app.exports.litert import LiteRtClassifier

        self.path, self.classifier, self.parameters = model_path, LiteRtClassifier(model_path), parameters
        self.bytes = model_path.stat().st_size

    def probabilities(self, texts: np.ndarray) -> np.ndarray:
        return self.classifier.probabilities(texts)


def variants_of(label: str, model_dir: str) -> dict:
    """The export's SavedModel and its LiteRT models (converted now if missing)."""
    from app.exports.litert import FOLDER, QUANTIZATIONS, compress_export
    from app.exports.savedmodel import read_metadata

    export_dir = resolve_version(model_dir)
    if not all((export_dir / FOLDER / f"{quantization}.tflite").is_file() for quantization in QUANTIZATIONS):
        compress_export(export_dir, read_metadata(export_dir))
    saved_model = SavedModelVariant(export_dir)
    found = {f"{label} SavedModel fp32": saved_model}
    for quantization in QUANTIZATIONS:
        found[f"{label} LiteRT {quantization}"] = LiteRtVariant(export_dir / FOLDER / f"{quantization}.tflite", saved_model.parameters)
    return found


def dev_accuracy(variant, texts: np.ndarray, labels: np.ndarray) -> float:
    """As app.evaluate scores it: batches of 64 similar-length sentences."""
    from app.exports.predictions import in_input_order
    from data_pipelines.text_classification import length_sorted_groups

    groups = length_sorted_groups([len(text) for text in texts], 64)
    probabilities = in_input_order(groups, [variant.probabilities(texts[group]) for group in groups])
    return float(np.mean(np.argmax(probabilities, axis=1) == labels))


def timed_round(variant, texts: np.ndarray, sentences: int) -> dict:
    """Batch-1 latencies over the first ``sentences`` texts, then batch-32 throughput over all of them."""
    latencies = []
    for text in texts[:sentences]:
        start = time.perf_counter()
        variant.probabilities(np.array([text], dtype=object))
        latencies.append(time.perf_counter() - start)
    start = time.perf_counter()
    for first in range(0, len(texts), 32):
        variant.probabilities(texts[first : first + 32])
    throughput = len(texts) / (time.perf_counter() - start)
    milliseconds = 1000 * np.array(latencies)
    return {"p50_ms": float(np.percentile(milliseconds, 50)), "p99_ms": float(np.percentile(milliseconds, 99)), "batch32_per_s": throughput}

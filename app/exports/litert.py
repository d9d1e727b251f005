"""LiteRT (formerly TensorFlow Lite) variants of a classifier export, and a runner for them.

`convert` is the one place that calls TensorFlow's converter (``tf.lite`` is slated to leave
TensorFlow's Python package; when it does, only this function changes). It converts the export's
``classify_token_ids`` signature: TF Text's WordPiece ops are not LiteRT builtins, so the LiteRT
model takes token ids and the sentences are tokenized outside it, by a preprocessor rebuilt from the
export's own ``assets/vocab.txt`` (`tokenizer`, the same `build_preprocessor` the TF-Hub handles are
made with). ``litert.json`` beside the models says how: vocabulary, lower-casing, length, classes.

- ``int8``: dynamic-range quantization: weights stored as int8 (4x smaller), activations quantized
  on the fly, so matrix products run in int8 on the CPU.
- ``float16``: weights stored as float16 (2x smaller), computed in float32.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from app.common.errors import CommandFailed, UsageError
from models.bert.preprocessor import BERT_INPUTS

SIGNATURE = "classify_token_ids"
QUANTIZATIONS = ("int8", "float16")
DESCRIPTION_FILE = "litert.json"
FOLDER = "litert"
CHECK_SENTENCES = (
    "a gorgeous, witty, seductive movie.",
    "UNBEARABLY dull -- and far too long!",
    "Café naïve résumé: the plot never works",
    "it's not bad , but it is n't good either",
)
# LiteRT answers may differ from the SavedModel's by quantization error, not by a different tokenization.
MAX_PROBABILITY_DIFFERENCE = {"int8": 0.2, "float16": 0.01}


def convert(export_dir: Path, quantization: str) -> bytes:
    """The export's token-id signature as a LiteRT flatbuffer, quantized as asked."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(export_dir), signature_keys=[SIGNATURE])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def describe(metadata: dict, export_dir: Path, models: dict[str, str]) -> dict:
    """What a runtime needs besides the .tflite files: how to tokenize, and what the answers mean."""
    return {
        "name": metadata["name"],
        "converted_from": str(export_dir),
        "models": models,
        "signature": SIGNATURE,
        "inputs": list(BERT_INPUTS),
        "vocab_file": "vocab.txt",
        "lower_case": metadata.get("lower_case", True),
        "max_seq_length": metadata.get("max_seq_length", 128),
        "label_names": metadata["label_names"],
    }


def tokenizer(vocab_file: Path, lower_case: bool, max_seq_length: int):
    """Strings -> BERT token ids, as the export's own preprocessor makes them."""
    from models.bert.preprocessor import build_preprocessor

    return build_preprocessor(vocab_file, lower_case, max_seq_length)


class LiteRtClassifier:
    """A ``.tflite`` classifier from `convert` with its tokenizer: sentences -> class probabilities.

    Token ids are padded to a power-of-two length (16, 32, ...; the mask hides the padding, so the
    answers do not change) and each input shape gets its own interpreter, kept for the next batch of
    that shape: resizing one interpreter's inputs re-plans its whole graph, which cost more than the
    model itself for one short sentence."""

    SHAPES_KEPT = 8

    def __init__(self, model_path: Path, num_threads: int | None = None):
        import tensorflow as tf

        description_file = model_path.parent / DESCRIPTION_FILE
        if not model_path.is_file() or not description_file.is_file():
            raise UsageError(f"{model_path} is not a LiteRT model written by python -m app.compress (no {description_file})")
        self.model_path, self.num_threads = model_path, num_threads or os.cpu_count()
        self.description = json.loads(description_file.read_text())
        preprocessor = tokenizer(model_path.parent / self.description["vocab_file"], self.description["lower_case"], self.description["max_seq_length"])
        self.tokenize = tf.function(self._padded_ids(preprocessor), input_signature=[tf.TensorSpec([None], tf.string)])
        self.runners = {}  # input shape -> signature runner, most recently used last

    def _padded_ids(self, preprocessor):
        import tensorflow as tf

        def padded_ids(texts):
            inputs = preprocessor.serve(texts)
            longest = tf.reduce_max(tf.reduce_sum(inputs["input_mask"], axis=1))
            length = tf.minimum(tf.maximum(16, 2 ** tf.cast(tf.math.ceil(tf.math.log(tf.cast(longest, tf.float32)) / tf.math.log(2.0)), tf.int32)),
                                self.description["max_seq_length"])
            return {name: inputs[name][:, :length] for name in BERT_INPUTS}

        return padded_ids

    def _runner(self, shape: tuple[int, int]):
        from ai_edge_litert.interpreter import Interpreter

        runner = self.runners.pop(shape, None)
        if runner is None:
            interpreter = Interpreter(model_path=str(self.model_path), num_threads=self.num_threads)
            runner = interpreter.get_signature_runner(self.description["signature"])
            if len(self.runners) >= self.SHAPES_KEPT:
                self.runners.pop(next(iter(self.runners)))
        self.runners[shape] = runner
        return runner

    def token_ids(self, texts) -> dict:
        """Token ids of a batch of sentences, padded to a power-of-two length."""
        return {name: ids.numpy() for name, ids in self.tokenize(np.asarray(texts, dtype=object)).items()}

    def classify_token_ids(self, token_ids: dict) -> np.ndarray:
        return self._runner(token_ids["input_word_ids"].shape)(**token_ids)["probabilities"]

    def probabilities(self, texts) -> np.ndarray:
        return self.classify_token_ids(self.token_ids(texts))


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_bytes(data)
    os.replace(partial, path)


def savedmodel_answers(export_dir: Path) -> dict:
    """The SavedModel's class probabilities on `CHECK_SENTENCES` (and its word-piece counts, where it
    has that signature): what each of its LiteRT models must reproduce. Loaded once per compression."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(export_dir))
    texts = tf.constant(CHECK_SENTENCES)
    answers = {"probabilities": loaded.signatures["serving_default"](text=texts)["probabilities"].numpy()}
    if "word_piece_counts" in loaded.signatures:
        answers["word_pieces"] = loaded.signatures["word_piece_counts"](text=texts)["word_pieces"].numpy()
    return answers


def check_against_savedmodel(export_dir: Path, model_path: Path, quantization: str, expected: dict) -> float:
    """Largest difference in class probability between the LiteRT model and the SavedModel's
    ``expected`` answers (`savedmodel_answers`); the word-piece counts must be equal (same tokenizer)."""
    classifier = LiteRtClassifier(model_path)
    token_ids = classifier.token_ids(CHECK_SENTENCES)
    if "word_pieces" in expected and not np.array_equal(expected["word_pieces"], token_ids["input_mask"].sum(axis=1)):
        raise CommandFailed(f"the tokenizer rebuilt from {export_dir}/assets/vocab.txt does not match the export's; not compressing")
    difference = float(np.abs(classifier.classify_token_ids(token_ids) - expected["probabilities"]).max())
    if difference > MAX_PROBABILITY_DIFFERENCE[quantization]:
        raise CommandFailed(f"{model_path} answers differ from the SavedModel's by {difference:.3f} in probability; not kept")
    return difference


def compress_export(export_dir: Path, metadata: dict, quantizations=QUANTIZATIONS) -> dict:
    """Write ``<export_dir>/litert/``: the vocabulary, ``litert.json`` and one checked ``.tflite`` per
    quantization; returns their sizes and how far their answers are from the SavedModel's."""
    import shutil

    if metadata.get("task") != "bert":
        raise UsageError(f"{export_dir} is a {metadata.get('task')!r} export: only text classifiers (bert, distill) are compressed")
    if metadata.get("second_text_column"):
        raise UsageError(f"{export_dir} classifies sentence pairs: its LiteRT models would tokenize one sentence (not supported)")
    out = export_dir / FOLDER
    out.mkdir(exist_ok=True)
    shutil.copyfile(export_dir / "assets" / "vocab.txt", out / "vocab.txt")
    models = {quantization: f"{quantization}.tflite" for quantization in quantizations}
    (out / DESCRIPTION_FILE).write_text(json.dumps(describe(metadata, export_dir, models), indent=2))
    variables = folder_bytes(export_dir / "variables")
    report, expected = {}, savedmodel_answers(export_dir)
    for quantization, filename in models.items():
        print(f"converting {export_dir} to LiteRT {quantization} ...", flush=True)
        write_atomically(out / filename, convert(export_dir, quantization))
        size = (out / filename).stat().st_size
        difference = check_against_savedmodel(export_dir, out / filename, quantization, expected)
        print(f"  {out / filename}: {size / 1e6:.1f} MB ({variables / size:.2f}x smaller than the SavedModel's variables); "
              f"probabilities within {difference:.4f} of the SavedModel on {len(CHECK_SENTENCES)} sentences", flush=True)
        report[quantization] = {"path": str(out / filename), "bytes": size, "size_ratio": round(variables / size, 2),
                                "max_probability_difference": round(difference, 5)}
    return {"export_dir": str(export_dir), "savedmodel_variables_bytes": variables, "litert": report}

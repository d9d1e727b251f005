"""Compress a classifier export for CPUs and edge devices:
``python -m app.compress --model-dir saved_models/bert_sst2 [--quantization int8 float16]``

Writes LiteRT models next to the SavedModel, in ``<export>/litert/``: ``int8.tflite`` (dynamic-range
int8 weights) and ``float16.tflite``, with the vocabulary and ``litert.json`` (how to tokenize; see
`app.litert`). TF Serving keeps serving the SavedModel (it ignores the folder); the ``.tflite`` files
are for LiteRT runtimes (Android, iOS, microcontrollers, or Python's ``ai-edge-litert``) and are
scored like any export by ``python -m app.evaluate --model-dir <export>/litert/int8.tflite``.
Each model is checked against the SavedModel on a few sentences before this command reports it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from app.cli import ArgumentParser, CommandFailed, UsageError, positive_int, run_command

CHECK_SENTENCES = (
    "a gorgeous, witty, seductive movie.",
    "UNBEARABLY dull -- and far too long!",
    "Café naïve résumé: the plot never works",
    "it's not bad , but it is n't good either",
)
# LiteRT answers may differ from the SavedModel's by quantization error, not by a different tokenization.
MAX_PROBABILITY_DIFFERENCE = {"int8": 0.2, "float16": 0.01}


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_bytes(data)
    os.replace(partial, path)


def check_against_savedmodel(export_dir: Path, model_path: Path, quantization: str) -> float:
    """Largest difference in class probability between the LiteRT model and the SavedModel on
    `CHECK_SENTENCES`; the word-piece counts must be equal (same tokenizer)."""
    import tensorflow as tf

    from app.litert import LiteRtClassifier

    loaded = tf.saved_model.load(str(export_dir))
    texts = tf.constant(CHECK_SENTENCES)
    classifier = LiteRtClassifier(model_path)
    token_ids = classifier.token_ids(CHECK_SENTENCES)
    if "word_piece_counts" in loaded.signatures:
        expected = loaded.signatures["word_piece_counts"](text=texts)["word_pieces"].numpy()
        if not np.array_equal(expected, token_ids["input_mask"].sum(axis=1)):
            raise CommandFailed(f"the tokenizer rebuilt from {export_dir}/assets/vocab.txt does not match the export's; not compressing")
    expected = loaded.signatures["serving_default"](text=texts)["probabilities"].numpy()
    difference = float(np.abs(classifier.classify_token_ids(token_ids) - expected).max())
    if difference > MAX_PROBABILITY_DIFFERENCE[quantization]:
        raise CommandFailed(f"{model_path} answers differ from the SavedModel's by {difference:.3f} in probability; not kept")
    return difference


def build_parser() -> ArgumentParser:
    from app.litert import QUANTIZATIONS

    parser = ArgumentParser(prog="python -m app.compress", description="Write LiteRT int8 / float16 models of a classifier export.")
    parser.add_argument("--model-dir", default="saved_models/bert_sst2", help="export base (newest version) or one version folder")
    parser.add_argument("--version", type=positive_int, help="version under --model-dir (default: newest)")
    parser.add_argument("--quantization", nargs="+", choices=QUANTIZATIONS, default=list(QUANTIZATIONS), help="default: both")
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    import tensorflow_text  # noqa: F401  (the export's other signatures use TF Text ops)

    from app.export import read_metadata, resolve_version
    from app.litert import DESCRIPTION_FILE, FOLDER, convert, describe

    try:
        export_dir = resolve_version(args.model_dir, args.version)
        metadata = read_metadata(export_dir)
    except (FileNotFoundError, ValueError) as error:
        raise UsageError(f"{args.model_dir}: {error}") from None
    if metadata.get("task") != "bert":
        raise UsageError(f"{export_dir} is a {metadata.get('task')!r} export: only text classifiers (bert, distill) are compressed")
    out = export_dir / FOLDER
    out.mkdir(exist_ok=True)
    shutil.copyfile(export_dir / "assets" / "vocab.txt", out / "vocab.txt")
    models = {quantization: f"{quantization}.tflite" for quantization in args.quantization}
    (out / DESCRIPTION_FILE).write_text(json.dumps(describe(metadata, export_dir, models), indent=2))
    variables = folder_bytes(export_dir / "variables")
    report = {}
    for quantization, filename in models.items():
        print(f"converting {export_dir} to LiteRT {quantization} ...", flush=True)
        write_atomically(out / filename, convert(export_dir, quantization))
        size = (out / filename).stat().st_size
        difference = check_against_savedmodel(export_dir, out / filename, quantization)
        print(f"  {out / filename}: {size / 1e6:.1f} MB ({variables / size:.2f}x smaller than the SavedModel's variables); "
              f"probabilities within {difference:.4f} of the SavedModel on {len(CHECK_SENTENCES)} sentences", flush=True)
        report[quantization] = {"path": str(out / filename), "bytes": size, "size_ratio": round(variables / size, 2),
                                "max_probability_difference": round(difference, 5)}
    return {"export_dir": str(export_dir), "savedmodel_variables_bytes": variables, "litert": report}


if __name__ == "__main__":
    run_command(main)

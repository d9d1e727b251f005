"""Compress a classifier export for CPUs and edge devices:
``python -m app.compress --model-dir saved_models/bert_sst2 [--quantization int8 float16]``

Writes LiteRT models next to the SavedModel, in ``<export>/litert/``: ``int8.tflite`` (dynamic-range
int8 weights) and ``float16.tflite``, with the vocabulary and ``litert.json`` (how to tokenize; see
`app.exports.litert`). TF Serving keeps serving the SavedModel (it ignores the folder); the ``.tflite`` files
are for LiteRT runtimes (Android, iOS, microcontrollers, or Python's ``ai-edge-litert``) and are
scored like any export by ``python -m app.evaluate --model-dir <export>/litert/int8.tflite``.
Each model is checked against the SavedModel on a few sentences before this command reports it.
"""

from __future__ import annotations

from typing import Sequence

from app.common import paths
from app.common.cli import ArgumentParser, positive_int, run_command
from app.common.errors import UsageError


def build_parser() -> ArgumentParser:
    from app.exports.litert import QUANTIZATIONS

    parser = ArgumentParser(prog="python -m app.compress", description="Write LiteRT int8 / float16 models of a classifier export.")
    parser.add_argument("--model-dir", default=str(paths.TEACHER), help="export base (newest version) or one version folder")
    parser.add_argument("--version", type=positive_int, help="version under --model-dir (default: newest)")
    parser.add_argument("--quantization", nargs="+", choices=QUANTIZATIONS, default=list(QUANTIZATIONS), help="which LiteRT models to write")
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    import tensorflow_text  # noqa: F401  (the export's other signatures use TF Text ops)

    from app.exports.savedmodel import read_metadata, resolve_version
    from app.exports.litert import compress_export

    try:
        export_dir = resolve_version(args.model_dir, args.version)
        metadata = read_metadata(export_dir)
    except (FileNotFoundError, ValueError) as error:
        raise UsageError(f"{args.model_dir}: {error}") from None
    return compress_export(export_dir, metadata, args.quantization)


if __name__ == "__main__":
    run_command(main)

"""Compress a classifier export for CPUs and edge devices:
``python -m app.compress --model-dir saved_models/bert_sst2 [--prune-heads 0.5 --prune-ffn 0.5] [--quantization int8 float16]``

Pruning (``--prune-heads`` / ``--prune-ffn``, BERT classifiers): the least important attention heads and
feed-forward units of every layer are removed (smaller matrices, not masks), the smaller model recovers
by a short distillation from the export it came from (`app.tasks.pruning`; the training flags below
set it), and it is exported with the same signatures to ``<out>/<name>_pruned/<version>/``.

Quantization: LiteRT models next to the SavedModel (the pruned one, when pruning), in
``<export>/litert/``: ``int8.tflite`` (dynamic-range int8 weights) and ``float16.tflite``, with the
vocabulary and ``litert.json`` (how to tokenize; see `app.exports.litert`); ``--quantization`` with no
value writes none. TF Serving keeps serving the SavedModel (it ignores the folder); the ``.tflite`` files
are for LiteRT runtimes (Android, iOS, microcontrollers, or Python's ``ai-edge-litert``) and are
scored like any export by ``python -m app.evaluate --model-dir <export>/litert/int8.tflite``.
Each model is checked against the SavedModel on a few sentences before this command reports it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

from app.common import paths
from app.common.cli import ArgumentParser, positive_int, run_command
from app.common.errors import UsageError
from app.common.quiet import native_stderr_captured


def build_parser() -> ArgumentParser:
    from app.exports.litert import QUANTIZATIONS
    from app.training.config import TrainConfig
    from app.training.flags import add_dataclass_flags

    with native_stderr_captured():  # the task classes import TensorFlow
        from app.tasks.pruning import PruneTask, PruningOptions

    parser = ArgumentParser(prog="python -m app.compress", description="Prune a BERT classifier export and write LiteRT int8 / float16 models of it.")
    parser.add_argument("--model-dir", default=str(paths.TEACHER), help="export base (newest version) or one version folder")
    parser.add_argument("--version", type=positive_int, help="version under --model-dir (default: newest)")
    parser.add_argument("--quantization", nargs="*", choices=QUANTIZATIONS, default=list(QUANTIZATIONS), help="which LiteRT models to write")
    pruning = parser.add_argument_group("pruning")
    add_dataclass_flags(pruning, PruningOptions)
    pruning.add_argument("--name", help="model name of the pruned export (default: the export's name + _pruned)")
    recovery = parser.add_argument_group("recovery fine-tune (with --prune-heads / --prune-ffn)")
    add_dataclass_flags(recovery, TrainConfig, dataclasses.asdict(PruneTask.defaults))
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
    result = {}
    if getattr(args, "prune_heads", 0) or getattr(args, "prune_ffn", 0):
        result = prune(export_dir, args)
        export_dir = Path(result["export_dir"])
        metadata = read_metadata(export_dir)
    if args.quantization:
        result.update(compress_export(export_dir, metadata, args.quantization))
    return result


def prune(export_dir: Path, args) -> dict:
    """Prune ``export_dir`` as the flags say, recover and export: the trainer's summary."""
    from app.tasks.pruning import PruneTask, PruningOptions
    from app.training.config import TrainConfig
    from app.training.flags import dataclass_values
    from app.training.trainer import train

    config = TrainConfig(**dataclass_values(TrainConfig, args))
    options = dataclass_values(PruningOptions, args)
    if args.name:
        options["export_name"] = args.name
    # The unpruned export's answers, cached where app.distill caches a teacher's: either reuses the other's.
    options["cache_dir"] = str(Path(config.runs_dir) / paths.TEACHER_LOGITS.relative_to(paths.RUNS))
    return train(PruneTask.of_export(export_dir, **options), config).summary


if __name__ == "__main__":
    run_command(main)

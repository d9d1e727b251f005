"""Export a BERT checkpoint as two TF-Hub-format SavedModels: ``<out>/preprocessor`` and ``<out>/encoder``.

``python -m app.export_hub --checkpoint ../shared/models/all-MiniLM-L6-v2 --out saved_models/hub/minilm_l6``

They have the interface of the official TF-Hub BERT models, so code written for those handles runs
unchanged on these local ones (what each holds: `app.exports.hub`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from app.common import paths
from app.common.cli import ArgumentParser, UsageError, positive_int, run_command
from models.bert.preprocessor import DEFAULT_SEQ_LENGTH


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m app.export_hub", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint", type=Path, default=paths.MINILM_CHECKPOINT, help="Hugging Face BERT folder or keras-hub preset"
    )
    parser.add_argument("--out", type=Path, default=paths.MINILM_HUB, help="folder for the two handles")
    parser.add_argument("--num-layers", type=positive_int, help="keep only the first N Transformer layers (a smaller student)")
    parser.add_argument("--seq-length", type=positive_int, default=DEFAULT_SEQ_LENGTH, help="preprocessor output length")
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    from app.exports.hub import export_hub
    from models.bert.encoder import first_layers, load_backbone
    from models.bert.vocabulary import read_vocabulary

    vocab_file, lower_case = read_vocabulary(args.checkpoint)
    backbone = load_backbone(args.checkpoint)
    if args.num_layers:
        if args.num_layers > backbone.num_layers:
            raise UsageError(f"--num-layers must be between 1 and the checkpoint's {backbone.num_layers} layers, not {args.num_layers}")
        backbone = first_layers(backbone, args.num_layers)
    written = export_hub(backbone, vocab_file, lower_case, args.out, args.seq_length)
    print(f"exported {args.checkpoint} to {written['preprocessor']} and {written['encoder']}")
    return {"checkpoint": str(args.checkpoint), **written, "lower_case": lower_case, "seq_length": args.seq_length}


if __name__ == "__main__":
    run_command(main)

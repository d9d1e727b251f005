"""Re-export one signature of an export on its own, for servers that cannot load the whole export:
``python -m app.export_signature --model-dir saved_models/bert_sst2 --signature classify_token_ids --name bert_sst2_token_ids``

The BERT export's raw-string signature uses TF Text ops, and a SavedModel carries every signature's
graph, so a TF Serving image older than this TensorFlow rejects the whole export (``Op type not
registered``). The new export (``saved_models/<name>/<version>/``) holds only the chosen signature,
as ``serving_default``, with its warm-up request.
"""

from __future__ import annotations

from typing import Sequence

from app.common import paths
from app.common.cli import ArgumentParser, positive_int, run_command
from app.common.errors import UsageError


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m app.export_signature", description="Re-export one signature on its own.")
    parser.add_argument("--model-dir", default=str(paths.TEACHER), help="export base (newest version) or one version")
    parser.add_argument("--version", type=positive_int, help="version under --model-dir (default: newest)")
    parser.add_argument("--signature", default="classify_token_ids", help="the signature to keep")
    parser.add_argument("--name", default="bert_sst2_token_ids", help="model name of the new export")
    parser.add_argument("--out", default=str(paths.SAVED_MODELS), help="folder of exports to write into")
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    from app.exports.savedmodel import export_one_signature, resolve_version

    try:
        source = resolve_version(args.model_dir, args.version)
        export_dir = export_one_signature(source, args.signature, args.out, args.name)
    except (FileNotFoundError, KeyError) as error:
        raise UsageError(str(error).strip("'\"")) from None
    print(f"exported {source} signature {args.signature} as {export_dir} (serving_default)")
    return {"source": str(source), "signature": args.signature, "export_dir": str(export_dir)}


if __name__ == "__main__":
    run_command(main)

"""Sample text from an exported language model (LSTM or GPT):
``python -m app.generate --model-dir saved_models/gpt --prompt "ROMEO:" --length 300 --temperature 0.8 --top-k 20``
(several prompts, ``--prompt "ROMEO:" "JULIET:"``, are continued side by side in one call).

Only the SavedModel is used, never training code, so this is exactly what a served model produces
(`app.exports.generation`). Same seed, same text.
"""

from __future__ import annotations

from typing import Sequence

from app.common import paths
from app.common.cli import (
    ArgumentParser, UsageError, add_inference_precision_flag, non_negative_float, non_negative_int, positive_int, run_command,
)
from app.exports.generation import SamplingConfig, generate_texts


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m app.generate", description="Sample text from an exported language model.")
    parser.add_argument("--model-dir", default=str(paths.SAVED_MODELS / "lm"), help="export base (newest version) or one version, e.g. saved_models/gpt")
    parser.add_argument("--version", type=positive_int, help="version number under --model-dir (default: newest)")
    parser.add_argument(
        "--prompt", nargs="+", default=["ROMEO:"],
        help="text to continue; several are continued as one batch (faster per text; each text then depends on the "
        "batch it is in, except at --temperature 0)",
    )
    parser.add_argument("--length", type=positive_int, default=300, help="tokens to generate (at most 2000 per call)")
    parser.add_argument("--temperature", type=non_negative_float, default=0.8, help="0 = greedy; higher = more random")
    parser.add_argument("--top-k", type=int, default=20, help="sample among the k most likely tokens (0 = all, at most the vocabulary size)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same text")
    add_inference_precision_flag(parser)
    parser.add_argument(
        "--threads", type=non_negative_int, default=1,
        help="TensorFlow threads (inside and between ops; 0 = TensorFlow's default, every core). One prompt is a "
        "chain of small ops: 1 thread generated 2.3x faster than the default (bench/gpt_vs_peers.py)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    if args.top_k < 0:
        raise UsageError("--top-k must be 0 (no cut) or a positive number")
    from app.exports.savedmodel import resolve_version
    from app.training import devices

    try:
        export_dir = resolve_version(args.model_dir, args.version)
    except FileNotFoundError as error:
        raise UsageError(f"{error}; train one with: python -m app.train lm (or gpt)") from None
    config = SamplingConfig(length=args.length, temperature=args.temperature, top_k=args.top_k, seed=args.seed)
    threads = devices.set_threads(args.threads)
    precision = devices.set_inference_precision(args.mixed_precision)
    texts = generate_texts(export_dir, args.prompt, config)
    print("\n\n".join(texts))
    generated = {"prompt": args.prompt[0], "text": texts[0]} if len(texts) == 1 else {"prompts": args.prompt, "texts": texts}
    return {"export_dir": str(export_dir), **generated, "precision": precision, "threads": threads, **vars(config)}


if __name__ == "__main__":
    run_command(main)

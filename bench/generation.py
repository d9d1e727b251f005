"""Text generation speed: the exports' in-graph ``generate`` signature against the per-token loop.

Both sides use the same export. The loop (``app.exports.generation.sample_text``, what exports without a
``generate`` signature get) calls ``serving_default`` once per new character over the last window
and samples in Python; ``generate`` runs the whole sampling loop inside the graph, one model step
per character (the LSTM carries its state, the GPT keeps a key/value cache). Measured

* in process: the export loaded once (``Servable.load``, as ``app.exports.generation.generate`` does) and
  ``continue_text`` with its signatures (in-graph) or with none (forces the loop, like
  ``generate(..., in_graph=False)``); loading is not timed;
* over REST: against a real ``python -m app.serve`` subprocess, with ``RestClient`` and
  ``continue_text`` (in-graph, or the loop by passing an empty signature set: ``--length`` + 2
  requests per text).

Sides alternate (in-graph, loop, in-graph, loop, ...), medians of ``--rounds``.

    python bench/generation.py [--lm-dir saved_models/lm] [--gpt-dir saved_models/gpt] [--length 300] [--rounds 3]

Prints the CPU, then per model and setting the characters/s of both sides and their ratio, and ends
with one JSON line holding them all. The goal: in-graph >= 20x the loop's characters/s over REST for
the LSTM export.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO_ROOT, alternate

GOAL_LSTM_REST_SPEEDUP = 20.0
MODELS = {  # key: (flag, what it is, training command's task)
    "lm": ("--lm-dir", "LSTM", "lm"),
    "gpt": ("--gpt-dir", "GPT", "gpt"),
}


def find_export(model_dir: str) -> Path | None:
    """The newest version under ``model_dir`` (or ``model_dir`` itself if it is one), or None."""
    from app.exports.savedmodel import resolve_version

    try:
        return resolve_version(model_dir)
    except FileNotFoundError:
        return None


def train_quick_export(task: str, out: Path) -> Path:
    """A small export of the default architecture (speed does not depend on how well it is trained)."""
    print(f"training a quick {task} export into {out} (--train-if-missing)", file=sys.stderr, flush=True)
    subprocess.run(
        [sys.executable, "-m", "app.train", task, "--epochs", "1", "--max-train-samples", "20000",
         "--out", str(out), "--runs-dir", str(out / "runs"), "--quiet"],
        cwd=REPO_ROOT, check=True, stdout=subprocess.DEVNULL,
    )
    return find_export(out / task)


def timed(run) -> dict:
    """Call ``run() -> (prompt, text)`` once; characters generated, seconds, characters/s."""
    start = time.perf_counter()
    prompt, text = run()
    seconds = time.perf_counter() - start
    chars = len(text) - len(prompt)
    return {"chars": chars, "seconds": round(seconds, 4), "chars_per_s": round(chars / seconds, 2)}


def compare(label: str, run_in_graph, run_loop, rounds: int) -> dict:
    """Warm both sides up, alternate them ``rounds`` times, return medians and the ratio."""
    run_in_graph(warmup=True)
    run_loop(warmup=True)
    results = alternate({"in_graph": lambda _: timed(run_in_graph), "loop": lambda _: timed(run_loop)}, rounds)
    for side in results.values():
        side.pop("peak_rss_mb", None)  # this process's memory says nothing about a server's generation
    results["speedup"] = round(results["in_graph"]["chars_per_s"] / results["loop"]["chars_per_s"], 2)
    print(
        f"{label}: in-graph {results['in_graph']['chars_per_s']:.1f} chars/s, "
        f"loop {results['loop']['chars_per_s']:.1f} chars/s, in-graph/loop {results['speedup']:.1f}x",
        flush=True,
    )
    return results


def sampling(args, warmup: bool):
    from app.exports.generation import SamplingConfig

    return SamplingConfig(length=8 if warmup else args.length, temperature=args.temperature, top_k=args.top_k, seed=args.seed)


def in_process(export_dir: Path, args, label: str) -> dict:
    """``app.exports.generation.generate``'s path with the export loaded once."""
    from app.exports.savedmodel import read_metadata
    from app.exports.generation import continue_text, metadata_separator
    from app.serving.repository import Servable

    metadata = read_metadata(export_dir)
    servable = Servable.load(metadata["name"], 0, export_dir)
    window, separator = metadata["seq_len"], metadata_separator(metadata)

    def side(signature_names):
        def run(warmup: bool = False):
            config = sampling(args, warmup)
            return args.prompt, continue_text(servable.run, signature_names, args.prompt, config, window, separator)
        return run

    in_graph = side(set(servable.signatures))
    from app.exports.generation import generate

    if generate(export_dir, args.prompt, sampling(args, warmup=True)) != in_graph(warmup=True)[1]:
        raise SystemExit(f"{label}: the timed path does not give app.exports.generation.generate's text")
    return compare(label, in_graph, side(set()), args.rounds)


def over_rest(rest_url: str, name: str, export_dir: Path, args, label: str) -> dict:
    from app.exports.savedmodel import read_metadata
    from app.exports.generation import continue_text, metadata_separator
    from app.serving.client import RestClient

    metadata = read_metadata(export_dir)
    client = RestClient(rest_url, timeout=600)
    signatures = client.signatures(name)
    if "generate" not in signatures:
        raise SystemExit(f"{export_dir} has no 'generate' signature: re-export it with the current code")

    def predict(signature: str, inputs: dict) -> dict:
        return client.predict(name, signatures[signature], inputs)

    def side(signature_names):
        def run(warmup: bool = False):
            config = sampling(args, warmup)
            text = continue_text(predict, signature_names, args.prompt, config, metadata["seq_len"], metadata_separator(metadata))
            return args.prompt, text
        return run

    return compare(label, side(set(signatures)), side(set()), args.rounds)


def serving_base(exports: dict[str, Path], base: Path) -> Path:
    """A model base holding exactly these exports: ``base/<name>/1`` links to each export folder."""
    for name, export_dir in exports.items():
        (base / name).mkdir(parents=True)
        (base / name / "1").symlink_to(export_dir.resolve(), target_is_directory=True)
    return base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lm-dir", default="saved_models/lm", help="LSTM export base (newest version) or one version")
    parser.add_argument("--gpt-dir", default="saved_models/gpt", help="GPT export base (newest version) or one version")
    parser.add_argument("--length", type=int, default=300, help="characters (tokens) to generate per text")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prompt", default="ROMEO:")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-if-missing", action="store_true", help="train a quick export (default architecture) for any missing one")
    args = parser.parse_args()

    quick_dir = None
    exports = {}
    for key, (flag, what, task) in MODELS.items():
        model_dir = getattr(args, flag[2:].replace("-", "_"))
        export_dir = find_export(model_dir)
        if export_dir is None and args.train_if_missing:
            quick_dir = quick_dir or Path(tempfile.mkdtemp(prefix="bench-generation-"))
            export_dir = train_quick_export(task, quick_dir)
        if export_dir is None:
            parser.exit(
                2,
                f"generation.py: no {what} export under {model_dir}; train one with: python -m app.train {task} "
                f"(or give {flag} DIR, or add --train-if-missing to train a quick one)\n",
            )
        exports[key] = export_dir

    from app.training.devices import cpu_model
    from app.exports.savedmodel import read_metadata
    from app.serving.process import start_server

    print(f"CPU: {cpu_model()}", flush=True)
    names = {key: read_metadata(path)["name"] for key, path in exports.items()}
    for key, path in exports.items():
        print(f"{MODELS[key][1]}: {path} ({read_metadata(path).get('architecture')}), {args.length} characters per text", flush=True)

    results = {key: {"export_dir": str(path)} for key, path in exports.items()}
    for key, path in exports.items():
        results[key]["in_process"] = in_process(path, args, f"{MODELS[key][1]} in process")
    with tempfile.TemporaryDirectory(prefix="bench-generation-serve-") as base:
        with start_server(serving_base({names[key]: path for key, path in exports.items()}, Path(base))) as server:
            for key, path in exports.items():
                results[key]["rest"] = over_rest(server.rest_url, names[key], path, args, f"{MODELS[key][1]} over REST")

    lstm_rest = results["lm"]["rest"]["speedup"]
    print(
        f"goal: in-graph >= {GOAL_LSTM_REST_SPEEDUP:.0f}x the loop over REST for the LSTM: "
        f"{lstm_rest:.1f}x, {'met' if lstm_rest >= GOAL_LSTM_REST_SPEEDUP else 'NOT met'}",
        flush=True,
    )
    print(json.dumps({
        "bench": "generation",
        "cpu": cpu_model(),
        "length": args.length,
        "rounds": args.rounds,
        "prompt": args.prompt,
        "temperature": args.temperature,
        "top_k": args.top_k,
        **results,
        "lstm_rest_speedup": lstm_rest,
        "gpt_rest_speedup": results["gpt"]["rest"]["speedup"],
        "goal_lstm_rest_speedup": GOAL_LSTM_REST_SPEEDUP,
        "goal_met": lstm_rest >= GOAL_LSTM_REST_SPEEDUP,
    }), flush=True)


if __name__ == "__main__":
    main()

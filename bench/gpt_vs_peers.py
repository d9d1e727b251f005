"""The GPT against Hugging Face + PyTorch at the same shape on the same CPU: training tokens/s and
generation ms per token, alternating, medians of ``--rounds``.

The shape is the default GPT's (``GptTask()``: 4 blocks, width 128, 4 heads, context 128, the 65
Tiny-Shakespeare characters + out-of-vocabulary, dropout 0), batch 16 x 128 tokens of synthetic ids.

* Project training: the task's model compiled as the trainer does, in each setting that
  ``--mixed-precision auto --jit-compile auto`` chooses between (float32 / mixed_bfloat16 where the CPU
  has bf16 instructions, XLA off / on), as ``bench/precision_and_xla.py`` measures them.
* Project generation: a quick export's ``generate`` signature in process (``tf.saved_model.load``),
  one prompt, ``--new-tokens`` tokens, top-k 20, temperature 0.8, after a warm-up call; the best of
  three calls per round; and its ``generate_batch`` signature with the prompt 8 times (as the peer's
  batch 8); with app.generate's one thread (``--threads 1``) and TensorFlow's default.
* Hugging Face (``bench/hf_gpt_peer.py`` in the venv of ``bench/setup_hf_peer.sh``): `GPT2LMHeadModel`
  of that shape, AdamW; fp32, bf16 autocast (CPUs with bf16 instructions) and ``torch.compile``;
  ``model.generate`` with its key/value cache, the same sampling, batch 1 and batch 8.

Also prints the machine's 1024x1024 matrix-product GFLOP/s in fp32 and bf16 and the project's achieved
training FLOP/s (6 x parameters per token, plus attention), the distance to that limit.

    python bench/gpt_vs_peers.py [--rounds 3] [--steps 48] [--new-tokens 120]

Ends with one JSON line: every side's figures (medians), the project's best against Hugging Face's best.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from common import REPO_ROOT, alternate, matmul_gflops
from generation import train_quick_export
from precision_and_xla import measure, settings_for

PEER_VENV = Path(os.environ.get("FROMZERO_PEER_VENV", Path.home() / ".cache" / "fromzero" / "hf-peer-venv"))
VOCAB_SIZE, BATCH_SIZE = 66, 16
GENERATION_BATCH = 8  # as the peer's --generation-batch


def flops_per_token(parameters: int, layers: int, context: int, width: int) -> float:
    """Training FLOPs per token: 6 per parameter (forward + backward) and the attention products."""
    return 6 * parameters + 12 * layers * context * width


def project_training(policy: str, jit: bool, args) -> dict:
    settings = SimpleNamespace(batch_size=BATCH_SIZE, steps_per_execution=None, warmup_steps=0, steps=args.steps,
                               vocab_size=VOCAB_SIZE, schedule_steps=1000)
    figures = measure("gpt", policy, jit, settings)
    return {"train_tokens_per_s": figures["tokens_per_s"]}


def project_generation(export_dir: Path, args, threads: int) -> dict:
    """In a child process: TensorFlow's thread pools are fixed when it starts, and app.generate sets them
    (``--threads``, default 1) before it runs anything."""
    command = [sys.executable, __file__, "--generation-child", str(export_dir), "--threads", str(threads),
               "--new-tokens", str(args.new_tokens)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def generation_child(export_dir: str, threads: int, new_tokens: int) -> None:
    import tensorflow as tf

    from app.training.devices import set_threads

    set_threads(threads)
    signatures = tf.saved_model.load(export_dir).signatures
    sampling = dict(max_new_tokens=tf.constant(new_tokens), temperature=tf.constant(0.8), top_k=tf.constant(20), seed=tf.constant(0))

    def seconds(signature: str, **inputs) -> float:
        """The best of three calls, after a warm-up call."""
        def once() -> float:
            start = time.perf_counter()
            signatures[signature](**inputs, **sampling)["token_ids"].numpy()
            return time.perf_counter() - start

        once()
        return min(once() for _ in range(3))

    single = seconds("generate", prompt=tf.constant("ROMEO:"))
    batched = seconds("generate_batch", prompts=tf.constant(["ROMEO:"] * GENERATION_BATCH))
    figures = {"generate_ms_per_token": 1000 * single / new_tokens, "generate_tokens_per_s": new_tokens / single,
               f"generate_batch{GENERATION_BATCH}_tokens_per_s": GENERATION_BATCH * new_tokens / batched}
    figures[f"batch{GENERATION_BATCH}_vs_batch1_tokens_per_s"] = round(figures[f"generate_batch{GENERATION_BATCH}_tokens_per_s"] / figures["generate_tokens_per_s"], 2)
    print(json.dumps(figures), flush=True)


def peer(mode: str, args, versions: dict) -> dict:
    command = [str(PEER_VENV / "bin" / "python"), str(REPO_ROOT / "bench" / "hf_gpt_peer.py"), "--mode", mode,
               "--vocab-size", str(VOCAB_SIZE), "--steps", str(args.steps), "--new-tokens", str(args.new_tokens)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1][:300] if done.stderr.strip() else f"exit {done.returncode}"}
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    versions.update({key: figures.pop(key) for key in ("torch", "transformers", "torch_threads", "parameters")})
    return figures


def main() -> int | None:
    from app.training.devices import cpu_model, cpu_supports_bf16

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=48, help="timed training steps per side and round")
    parser.add_argument("--new-tokens", type=int, default=120, help="tokens per generation")
    parser.add_argument("--gpt-dir", help="a GPT export to generate with (default: a quick one is trained)")
    parser.add_argument("--generation-child", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generation_child:
        return generation_child(args.generation_child, args.threads, args.new_tokens)
    bf16 = cpu_supports_bf16()
    cpu = {"cpu_model": cpu_model(), "cpu_bf16": bf16, "cores": os.cpu_count()}
    limits = {"matmul_gflops_fp32": round(matmul_gflops("float32"), 1), "matmul_gflops_bf16": round(matmul_gflops("bfloat16"), 1)}
    print(f"CPU: {cpu['cpu_model']}, {cpu['cores']} cores, bf16 instructions: {'yes' if bf16 else 'no'}; {limits}", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="gpt-vs-peers-"))
    from app.exports.savedmodel import resolve_version

    export_dir = resolve_version(args.gpt_dir) if args.gpt_dir else train_quick_export("gpt", workdir)
    sides, versions, notes = {}, {}, []
    for label, (policy, jit) in settings_for(bf16).items():
        sides[f"project_{label}"] = lambda _, policy=policy, jit=jit: project_training(policy, jit, args)
    sides["project_generate"] = lambda _: project_generation(export_dir, args, threads=1)  # app.generate's default
    sides["project_generate_tf_default_threads"] = lambda _: project_generation(export_dir, args, threads=0)
    if (PEER_VENV / "bin" / "python").is_file():
        for mode in ("fp32", "bf16", "compile") if bf16 else ("fp32", "compile"):
            sides[f"huggingface_{mode}"] = lambda _, mode=mode: peer(mode, args, versions)
    else:
        notes.append(f"Hugging Face skipped: no peer venv at {PEER_VENV}; create it with: bash bench/setup_hf_peer.sh")
    results = alternate(sides, args.rounds)

    training = {name: figures["train_tokens_per_s"] for name, figures in results.items() if "train_tokens_per_s" in figures}
    project_best = max((name for name in training if name.startswith("project")), key=training.get)
    hf = [name for name in training if name.startswith("huggingface")]
    summary = {"project_best_training": project_best}
    if hf:
        hf_best = max(hf, key=training.get)
        hf_generation = min((n for n in hf if "generate_ms_per_token" in results[n]), key=lambda n: results[n]["generate_ms_per_token"])
        summary.update(
            huggingface_best_training=hf_best,
            training_ratio_vs_huggingface_best=round(training[project_best] / training[hf_best], 2),
            huggingface_best_generation=hf_generation,
            generate_ms_per_token_ratio_vs_huggingface_best=round(
                results["project_generate"]["generate_ms_per_token"] / results[hf_generation]["generate_ms_per_token"], 2),
        )
    batch_key = f"generate_batch{GENERATION_BATCH}_tokens_per_s"
    batched = {name: figures[batch_key] for name, figures in results.items() if batch_key in figures}
    project_batched = max((name for name in batched if name.startswith("project")), key=batched.get)
    summary.update({  # batch 8 against batch 1, each at its best thread setting
        f"project_best_batch{GENERATION_BATCH}": project_batched,
        f"project_batch{GENERATION_BATCH}_vs_batch1_tokens_per_s": round(batched[project_batched] / max(
            results[name]["generate_tokens_per_s"] for name in batched if name.startswith("project")), 2),
    })
    hf_batched = [name for name in batched if name.startswith("huggingface")]
    if hf_batched:
        best = max(hf_batched, key=batched.get)
        summary[f"batch{GENERATION_BATCH}_tokens_per_s_ratio_vs_huggingface_best"] = round(batched[project_batched] / batched[best], 2)
    parameters = versions.get("parameters")
    if parameters:
        achieved = training[project_best] * flops_per_token(parameters, 4, 128, 128) / 1e9
        limit = limits["matmul_gflops_bf16" if "bf16" in project_best else "matmul_gflops_fp32"]
        summary.update(project_best_gflops=round(achieved, 1), fraction_of_matmul_limit=round(achieved / limit, 3))
    print(json.dumps({"bench": "gpt_vs_peers", **cpu, **limits, "rounds": args.rounds, "batch": [BATCH_SIZE, 128],
                      **results, **summary, "versions": versions, "notes": notes}), flush=True)


if __name__ == "__main__":
    sys.exit(main())

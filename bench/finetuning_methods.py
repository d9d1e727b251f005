"""Fine-tuning methods side by side: full, LoRA rank 4/8/16, frozen encoder and LoRA over an int8 base
(the QLoRA idea) in the project, against Hugging Face PEFT's LoRA (fp32 and bf16 autocast), on one
machine, alternating, >= 3 rounds for medians.

Every side fine-tunes the shared MiniLM on the same 4,000 shuffled SST-2 training sentences for 2
epochs, batch 16, at most 64 word pieces, AdamW with a linear warm-up (10 %) and decay, and is scored
on the 872 dev sentences (`test.tsv` is never read). Round k uses seed k for every side (the sentences
drawn, the initial weights, the order), so accuracies are medians over seeds and each round's sides
train on the same sentences. Learning rates: each method's default in
`app.train bert` (`app.tasks.bert.LEARNING_RATES`: full 5e-5, LoRA 3e-3, frozen 1e-2, measured on this
MiniLM), and PEFT at the LoRA rate, so the two LoRAs differ in implementation only. LoRA
targets ``query`` and ``value`` with alpha = rank on both sides. Each library's bf16 is a side of its
own: ``lora8_bf16`` is ``--mixed-precision bf16`` (on a CPU, oneDNN's bf16 rewrite of the graph), as
``peft8_bf16`` is PyTorch's bf16 autocast; the speed ratio compares each library's fastest rank-8 LoRA
(the issue's "best configuration"), its accuracy reported beside. Hugging Face runs in the venv of
``bash bench/setup_hf_peer.sh`` (torch, transformers, peft: never project dependencies).

    python bench/finetuning_methods.py [--rounds 3] [--train-samples 4000] [--sides full,lora8,...]

Prints the CPU model, then one JSON line: each side's dev accuracy, trainable and total parameters,
train samples/s, peak RSS, export and adapter sizes (medians; memory the maximum), and the ratios the
issue asks for (LoRA rank 8 against full fine-tuning and against PEFT's fastest configuration).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bert_vs_peers import PEER_VENV, run_hf_peer, sst2
from common import alternate, round_of

BATCH_SIZE, EPOCHS, MAX_LENGTH, WARMUP = 16, 2, 64, 0.1


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in Path(folder).rglob("*") if path.is_file())


def project(workdir: Path, train_samples: int, finetune: str, rank: int = 8, int8_base: bool = False, precision: str = "auto") -> dict:
    """One project side in a process of its own: in one process, each side's peak memory would include
    what the sides before it left behind (its own figure is the trainer's ``peak_rss_mb``)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as process:
        return process.submit(train_side, workdir, train_samples, finetune, rank, int8_base, precision).result()


def train_side(workdir: Path, train_samples: int, finetune: str, rank: int, int8_base: bool, precision: str) -> dict:
    from app.tasks import BertTask
    from app.training.trainer import TrainConfig, train

    task_class = int8_base_task() if int8_base else BertTask
    task = task_class(finetune=finetune, lora_rank=rank, max_seq_length=MAX_LENGTH)
    config = TrainConfig(
        epochs=EPOCHS, batch_size=BATCH_SIZE, learning_rate=None,  # None: the method's default rate
        mixed_precision=precision,  # auto: as a user's run gets it (one this short mostly skips the probe, app.training.autotune)
        seed=round_of(workdir), max_train_samples=train_samples, patience=EPOCHS, quiet=True, out=str(workdir / "saved"), runs_dir=str(workdir / "runs"),
    )
    summary = train(task, config).summary
    return {
        "dev_accuracy": summary["metrics"]["dev_accuracy"],
        "trainable_parameters": summary["trainable_parameters"],
        "total_parameters": summary["total_parameters"],
        "train_samples_per_s": summary["train_samples_per_s"],
        "export_mb": round(folder_bytes(Path(summary["export_dir"])) / 1e6, 1),
        "adapter_kb": round(summary["adapter_bytes"] / 1e3, 1) if "adapter_bytes" in summary else None,
        "precision": summary["precision"],
        "peak_rss_mb": summary["peak_rss_mb"],
    }


def int8_base_task():
    """`BertTask` whose LoRA encoder is quantized to int8 first (`quantize("int8")`, then LoRA)."""
    from app.tasks import BertTask

    @dataclasses.dataclass(frozen=True)
    class Int8Base(BertTask):
        def lora_encoder(self):
            from models.bert.encoder import backbone_from_hub, build_encoder_model
            from models.hub_layer import resolve_handle

            encoder = build_encoder_model(backbone_from_hub(resolve_handle(self.encoder)), model_name="encoder")
            encoder.quantize("int8")
            self.add_lora(encoder)
            return encoder

    return Int8Base


def huggingface_peft(workdir: Path, train_samples: int, precision: str, learning_rate: float, versions: dict) -> dict:
    """bench/hf_peer.py with PEFT's LoRA (rank 8 on query/value) in the peer venv, on the same sentences."""
    seed = round_of(workdir)
    train_texts, train_labels, dev_texts, dev_labels = sst2(train_samples, seed)
    figures = run_hf_peer(workdir, {
        "train_texts": train_texts, "train_labels": train_labels.tolist(), "dev_texts": dev_texts, "dev_labels": dev_labels.tolist(),
        "batch_size": BATCH_SIZE, "max_length": MAX_LENGTH, "learning_rate": learning_rate, "seed": seed, "epochs": EPOCHS,
        "warmup_fraction": WARMUP, "lora": {"rank": 8, "alpha": 8, "targets": ["query", "value"]},
    }, precision, versions)
    figures.pop("inference_samples_per_s")
    return figures


SIDES = ("full", "lora4", "lora8", "lora8_bf16", "lora16", "frozen", "lora8_int8_base", "peft8_fp32", "peft8_bf16")


def main() -> None:
    from app.tasks.bert import LEARNING_RATES
    from app.training import devices

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--train-samples", type=int, default=4000)
    parser.add_argument("--sides", default=",".join(SIDES), help=f"comma-separated, of: {', '.join(SIDES)}")
    args = parser.parse_args()
    cpu = {"cpu_model": devices.cpu_model(), "cpu_bf16": devices.cpu_supports_bf16(), "cores": os.cpu_count()}
    print(f"CPU: {cpu['cpu_model']}, {cpu['cores']} cores, bf16 instructions: {'yes' if cpu['cpu_bf16'] else 'no'}", flush=True)

    versions, notes, runs = {}, [], {
        "full": lambda workdir: project(workdir, args.train_samples, "full"),
        "frozen": lambda workdir: project(workdir, args.train_samples, "frozen"),
        "lora8_int8_base": lambda workdir: project(workdir, args.train_samples, "lora", 8, int8_base=True),
        "lora8_bf16": lambda workdir: project(workdir, args.train_samples, "lora", 8, precision="bf16"),
        **{f"lora{rank}": (lambda workdir, rank=rank: project(workdir, args.train_samples, "lora", rank)) for rank in (4, 8, 16)},
        **{f"peft8_{precision}": (lambda workdir, precision=precision: huggingface_peft(
            workdir, args.train_samples, precision, LEARNING_RATES["lora"], versions)) for precision in ("fp32", "bf16")},
    }
    wanted = [name for name in SIDES if name in args.sides.split(",")]
    if not (PEER_VENV / "bin" / "python").is_file():
        notes.append(f"PEFT skipped: no peer venv at {PEER_VENV}; create it with: bash bench/setup_hf_peer.sh")
        wanted = [name for name in wanted if not name.startswith("peft")]
    for note in notes:
        print(note, file=sys.stderr, flush=True)
    results = alternate({name: runs[name] for name in wanted}, args.rounds)

    ratios = {}
    if "lora8" in results and "full" in results:
        lora, full = results["lora8"], results["full"]
        ratios.update(
            lora8_train_speed_vs_full=round(lora["train_samples_per_s"] / full["train_samples_per_s"], 2),
            lora8_accuracy_minus_full=round(lora["dev_accuracy"] - full["dev_accuracy"], 4),
            lora8_trainable_fraction=round(lora["trainable_parameters"] / lora["total_parameters"], 5),
        )
    peft = [name for name in results if name.startswith("peft")]
    ours = [name for name in ("lora8", "lora8_bf16") if name in results]
    if ours and peft:  # each library's fastest configuration of LoRA rank 8, as the issue compares them
        fastest = max(peft, key=lambda name: results[name]["train_samples_per_s"])
        our_fastest = max(ours, key=lambda name: results[name]["train_samples_per_s"])
        ratios.update(
            lora8_fastest_is=our_fastest,
            peft_fastest_is=fastest,
            lora8_fastest_train_speed_vs_peft_fastest=round(
                results[our_fastest]["train_samples_per_s"] / results[fastest]["train_samples_per_s"], 2),
            lora8_fastest_accuracy_minus_peft_fastest=round(results[our_fastest]["dev_accuracy"] - results[fastest]["dev_accuracy"], 4),
        )
    settings = {
        "rounds": args.rounds, "seeds": list(range(args.rounds)), "train_samples": args.train_samples, "epochs": EPOCHS, "batch_size": BATCH_SIZE, "max_length": MAX_LENGTH,
        "learning_rates": {**LEARNING_RATES, "peft": LEARNING_RATES["lora"]},
    }
    print(json.dumps({"bench": "finetuning_methods", **cpu, **settings, **results, "ratios": ratios, "versions": versions, "notes": notes}),
          flush=True)


if __name__ == "__main__":
    main()

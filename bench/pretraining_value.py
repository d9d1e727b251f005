"""What pretraining buys: SST-2 dev accuracy after one fine-tuning recipe, for encoders that differ only
in what they learned before it.

    python bench/pretraining_value.py [--minutes 20] [--pretraining-epochs 8] [--size tiny] [--train-samples 4000] [--fine-tuning-epochs 6]

(a) the from-zero architecture with random weights, (b) the same architecture after at most ``--minutes``
(and ``--pretraining-epochs``) of masked-LM pretraining (``app.train mlm`` on the default corpus: SST-2 train sentences without labels +
Tiny Shakespeare, with a vocabulary learned by ``app.pretrain vocab``), (c) the shared MiniLM, and a
bag-of-words baseline: the same embeddings with no Transformer layer (embedding -> average over the
words -> dense). Each is exported as TF-Hub handles and fine-tuned by ``app.train bert`` with the same
4,000 labelled sentences, epochs, learning rate and seed; (a), (b) and the baseline also train their
word-piece table (MiniLM keeps its pretrained one frozen, its default). Prints the CPU model and one
JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import common  # noqa: F401  (puts the repository on the path, offline)

# Fine-tuning: 3e-4 suits these small encoders (with the tiny pretrained one, dev 0.737 against 0.655 at 1e-4).
SEED, BATCH_SIZE, LEARNING_RATE = 0, 16, 3e-4


def fine_tune(workdir: Path, hub: Path, train_samples: int, train_word_embeddings: bool, epochs: int) -> dict:
    from app.tasks import BertTask
    from app.training.trainer import TrainConfig, train

    task = BertTask(encoder=str(hub / "encoder"), preprocessor=str(hub / "preprocessor"), freeze_word_embeddings=not train_word_embeddings)
    config = TrainConfig(
        epochs=epochs, batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE, seed=SEED, max_train_samples=train_samples,
        patience=epochs, out=str(workdir / "saved"), runs_dir=str(workdir / "runs"), quiet=True,
    )
    summary = train(task, config).summary
    return {"dev_accuracy": round(summary["metrics"]["dev_accuracy"], 4), "fine_tune_seconds": summary["train_seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20, help="masked-LM pretraining budget (b)")
    parser.add_argument(
        "--pretraining-epochs", type=int, default=8,
        help="epochs the learning-rate schedule spans (b; default 8: about 20 minutes on a 2-core CPU with bf16, cut by --minutes on slower ones)",
    )
    parser.add_argument("--size", choices=("tiny", "mini"), default="tiny")
    parser.add_argument("--train-samples", type=int, default=4000, help="labelled SST-2 sentences for fine-tuning")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--fine-tuning-epochs", type=int, default=6, help="epochs of every side's fine-tuning (default 6)")
    args = parser.parse_args()

    import dataclasses

    from app.training.devices import cpu_model
    from app.pretrain import vocab_command
    from app.tasks import BertTask, MaskedLmTask
    from app.common.paths import MINILM_HUB
    from app.training.trainer import TrainConfig, train

    print(f"CPU: {cpu_model()}", flush=True)
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        work = Path(workdir)
        vocab = vocab_command(None, args.vocab_size, work / "vocab", None, None)
        task = MaskedLmTask(size=args.size, vocab=str(work / "vocab"))
        start = time.perf_counter()
        # The learning-rate schedule (warm-up, then decay to 0) spans --pretraining-epochs; --minutes caps the time.
        pretrained = train(task, TrainConfig(
            epochs=args.pretraining_epochs, max_minutes=args.minutes, seed=SEED, out=str(work / "pretrained"), runs_dir=str(work / "runs"),
        )).summary
        pretraining = {
            "pretraining_minutes": round((time.perf_counter() - start) / 60, 1),
            "pretraining_epochs": pretrained["epochs_trained"],
            "pretraining_learning_rate": task.defaults.learning_rate,
            "heldout_masked_accuracy": round(pretrained["metrics"]["heldout_masked_accuracy"], 4),
            "heldout_masked_accuracy_per_epoch": pretrained["validation_curves"]["val_accuracy"],
        }
        print(f"pretrained: {pretraining}", flush=True)
        untrained = task.export_untrained(work / "untrained", SEED)
        bag_of_words = dataclasses.replace(task, num_layers=0).export_untrained(work / "bag_of_words", SEED)
        BertTask().ensure_default_hub()
        sides = {
            "a_random_weights": (untrained, True),
            "b_pretrained": (Path(pretrained["export_dir"]), True),
            "c_minilm": (MINILM_HUB, False),
            "bag_of_words": (bag_of_words, True),
        }
        for name, (hub, train_word_embeddings) in sides.items():
            results[name] = fine_tune(work / name, hub, args.train_samples, train_word_embeddings, args.fine_tuning_epochs)
            print(f"{name}: {results[name]}", flush=True)
    print(json.dumps({
        "bench": "pretraining_value", "cpu": cpu_model(), "size": args.size, "minutes": args.minutes,
        "fine_tuning": {"train_samples": args.train_samples, "epochs": args.fine_tuning_epochs, "batch_size": BATCH_SIZE, "learning_rate": LEARNING_RATE, "seed": SEED},
        "vocab_size": vocab["vocab_size"], **pretraining, **results,
        "b_minus_a": round(results["b_pretrained"]["dev_accuracy"] - results["a_random_weights"]["dev_accuracy"], 4),
        "b_minus_bag_of_words": round(results["b_pretrained"]["dev_accuracy"] - results["bag_of_words"]["dev_accuracy"], 4),
    }), flush=True)


if __name__ == "__main__":
    main()

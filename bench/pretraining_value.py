"""What pretraining buys: dev accuracy after one fine-tuning recipe, for encoders that differ only in
what they learned before it, on SST-2 and on a sentence-pair task.

    python bench/pretraining_value.py [--minutes 20] [--pretraining-epochs 8] [--size tiny] [--train-samples 4000]
                                      [--fine-tuning-epochs 6] [--seeds 0 1 2] [--sides ...] [--pretrained mlm=HUB mlm+nsp=HUB]

Sides: ``a_random_weights`` (the from-zero architecture, untrained), ``b_mlm`` (after at most
``--minutes`` and ``--pretraining-epochs`` of masked-LM pretraining, ``app.train mlm`` on the default
corpus, vocabulary from ``app.pretrain vocab``), ``b_mlm_nsp`` (the same budget with ``--objective
mlm+nsp``: masked LM plus next-sentence prediction), ``c_minilm`` (the shared MiniLM) and
``bag_of_words`` (the same embeddings, no Transformer layer). ``--pretrained OBJECTIVE=HUB`` reuses
handles pretrained earlier (e.g. by the default ``app.train mlm`` commands) instead of pretraining here.

Tasks: ``sst2`` (sentiment, 4,000 training sentences, scored on dev) and ``same_sentiment``, a
sentence-pair task built offline from SST-2: two sentences packed ``[CLS] A [SEP] B [SEP]``, labelled 1
when both have the same sentiment (4,000 pairs from train sentences, each dev sentence paired with
another dev sentence for dev). Every side is fine-tuned by ``app.train bert`` with the same sentences,
epochs, learning rate and pooling, once per ``--seeds`` seed; reported: each seed's dev accuracy, the
mean and the spread (max - min). The from-zero sides and the bag of words train their word-piece
table (the MiniLM keeps its table frozen, its default). Prints the CPU model and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import common  # noqa: F401  (puts the repository on the path, offline)

BATCH_SIZE, LEARNING_RATE = 16, 3e-4  # 3e-4 suits these small encoders (tiny pretrained: dev 0.737 against 0.655 at 1e-4)
SIDES = ("a_random_weights", "b_mlm", "b_mlm_nsp", "c_minilm", "bag_of_words")


def same_sentiment_pairs(sentences: pd.DataFrame, count: int, seed: int) -> pd.DataFrame:
    """``count`` pairs of distinct sentences, labelled 1 when both have the same sentiment label."""
    rng = np.random.default_rng(seed)
    first = rng.integers(0, len(sentences), count)
    second = (first + rng.integers(1, len(sentences), count)) % len(sentences)  # never the sentence itself
    a, b = sentences.iloc[first].reset_index(drop=True), sentences.iloc[second].reset_index(drop=True)
    return pd.DataFrame({"sentence": a["sentence"], "second": b["sentence"], "label": (a["label"] == b["label"]).astype(int)})


def task_files(work: Path, train_samples: int) -> dict[str, dict]:
    """Each task's BertTask settings; the pair task's files are written under ``work``."""
    from data_pipelines.sources import resolve_data_file
    from data_pipelines.text_classification import SST2_DEV, SST2_TRAIN

    read = lambda relative: pd.read_csv(resolve_data_file(relative), sep="\t", quoting=3, keep_default_na=False)  # noqa: E731
    train, dev = read(SST2_TRAIN), read(SST2_DEV)
    same_sentiment_pairs(train, train_samples, seed=0).to_csv(work / "pairs_train.tsv", sep="\t", index=False)
    same_sentiment_pairs(dev, len(dev), seed=1).to_csv(work / "pairs_dev.tsv", sep="\t", index=False)
    return {
        "sst2": {},
        "same_sentiment": dict(train_file=str(work / "pairs_train.tsv"), validation_file=str(work / "pairs_dev.tsv"),
                               second_text_column="second", label_names=("different", "same")),
    }


def fine_tune(workdir: Path, hub: Path, task_settings: dict, train_word_embeddings: bool, args, seed: int) -> float:
    from app.tasks import BertTask
    from app.training.trainer import TrainConfig, train

    task = BertTask(encoder=str(hub / "encoder"), preprocessor=str(hub / "preprocessor"), pooling=args.pooling,
                    freeze_word_embeddings=not train_word_embeddings, **task_settings)
    config = TrainConfig(
        epochs=args.fine_tuning_epochs, batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE, seed=seed, max_train_samples=args.train_samples,
        patience=args.fine_tuning_epochs, out=str(workdir / "saved"), runs_dir=str(workdir / "runs"), quiet=True,
    )
    return round(train(task, config).summary["metrics"]["dev_accuracy"], 4)


def pretrain(work: Path, objective: str, args) -> tuple[Path, dict]:
    """``app.train mlm`` with ``objective`` for the budget; the handles and what the run reported."""
    from app.tasks import MaskedLmTask
    from app.training.trainer import TrainConfig, train

    task = MaskedLmTask(size=args.size, vocab=str(work / "vocab"), objective=objective)
    start = time.perf_counter()
    # The learning-rate schedule (warm-up, then decay to 0) spans --pretraining-epochs; --minutes caps the time.
    summary = train(task, TrainConfig(
        epochs=args.pretraining_epochs, max_minutes=args.minutes, seed=0, out=str(work / objective), runs_dir=str(work / "runs"),
    )).summary
    report = {"minutes": round((time.perf_counter() - start) / 60, 1), "epochs": summary["epochs_trained"], "metrics": summary["metrics"]}
    print(f"pretrained {objective}: {report}", flush=True)
    return Path(summary["export_dir"]), report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20, help="pretraining budget of each objective")
    parser.add_argument(
        "--pretraining-epochs", type=int, default=8,
        help="epochs the learning-rate schedule spans (default 8: about 20 minutes on a 2-core CPU with bf16, cut by --minutes on slower ones)",
    )
    parser.add_argument("--size", choices=("tiny", "mini"), default="tiny")
    parser.add_argument("--train-samples", type=int, default=4000, help="labelled sentences (or pairs) for fine-tuning")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--fine-tuning-epochs", type=int, default=6, help="epochs of every side's fine-tuning (default 6)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="fine-tuning seeds (training sample, order, head, dropout)")
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    parser.add_argument("--tasks", nargs="+", choices=("sst2", "same_sentiment"), default=["sst2", "same_sentiment"])
    parser.add_argument("--pooling", choices=("mean", "cls"), default="mean", help="sentence vector of every fine-tuning (BertTask's default: mean)")
    parser.add_argument("--pretrained", nargs="*", default=[], metavar="OBJECTIVE=HUB",
                        help="handles pretrained earlier, e.g. mlm=saved_models/hub/bert_tiny_from_zero (not pretrained again)")
    args = parser.parse_args()

    import dataclasses

    from app.common.paths import MINILM_HUB
    from app.pretrain import vocab_command
    from app.tasks import BertTask, MaskedLmTask
    from app.training.devices import cpu_model

    print(f"CPU: {cpu_model()}", flush=True)
    given = dict(pair.split("=", 1) for pair in args.pretrained)
    results, pretraining = {}, {}
    with tempfile.TemporaryDirectory() as workdir:
        work = Path(workdir)
        vocab = vocab_command(None, args.vocab_size, work / "vocab", None, None)
        hubs = {}
        for side, objective in (("b_mlm", "mlm"), ("b_mlm_nsp", "mlm+nsp")):
            if side in args.sides:
                if objective in given:
                    hubs[side] = (Path(given[objective]), True)
                else:
                    hub, pretraining[objective] = pretrain(work, objective, args)
                    hubs[side] = (hub, True)
        task = MaskedLmTask(size=args.size, vocab=str(work / "vocab"))
        if "a_random_weights" in args.sides:
            hubs["a_random_weights"] = (task.export_untrained(work / "untrained", 0), True)
        if "bag_of_words" in args.sides:
            hubs["bag_of_words"] = (dataclasses.replace(task, num_layers=0).export_untrained(work / "bag_of_words", 0), True)
        if "c_minilm" in args.sides:
            BertTask().ensure_default_hub()
            hubs["c_minilm"] = (MINILM_HUB, False)
        tasks = task_files(work, args.train_samples)
        for task_name in args.tasks:
            for side in [side for side in SIDES if side in hubs]:
                hub, train_word_embeddings = hubs[side]
                scores = [fine_tune(work / task_name / side / str(seed), hub, tasks[task_name], train_word_embeddings, args, seed)
                          for seed in args.seeds]
                results.setdefault(task_name, {})[side] = {
                    "dev_accuracy": scores, "mean": round(statistics.mean(scores), 4), "spread": round(max(scores) - min(scores), 4),
                }
                print(f"{task_name} {side}: {results[task_name][side]}", flush=True)
    differences = {
        task_name: round(sides["b_mlm_nsp"]["mean"] - sides["b_mlm"]["mean"], 4)
        for task_name, sides in results.items() if {"b_mlm", "b_mlm_nsp"} <= set(sides)
    }
    print(json.dumps({
        "bench": "pretraining_value", "cpu": cpu_model(), "size": args.size, "minutes": args.minutes,
        "pretrained_given": given, "pretraining": pretraining, "vocab_size": vocab["vocab_size"],
        "fine_tuning": {"train_samples": args.train_samples, "epochs": args.fine_tuning_epochs, "batch_size": BATCH_SIZE,
                        "learning_rate": LEARNING_RATE, "pooling": args.pooling, "seeds": args.seeds},
        "results": results, "mlm_nsp_minus_mlm": differences,
    }), flush=True)


if __name__ == "__main__":
    main()

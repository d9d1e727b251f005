"""Language-model quality for the same wall-clock budget: the GPT, the project's LSTM and the seeds'
LSTM tutorial code, each trained for ``--minutes`` on Tiny Shakespeare (first 90 % for training, last
10 % for validation), then scored on the validation split in nats and bits per character.

* gpt: ``app.training.trainer.train(GptTask(), ...)`` with the task's default epochs (its learning-rate
  schedule is sized by them, as users get it) and early stopping off; the budget cuts it if shorter.
* lstm: ``app.training.trainer.train(LanguageModelTask(), ...)`` with epochs and patience large enough that
  the budget ends training.
* peer: the seeds' tutorial code of ``bench/lstm_vs_peer.py`` (StringLookup, ``batch(seq_len + 1)``,
  shuffle, Embedding(256) -> LSTM(128) -> Dense, Adam, ``model.fit``) for as many epochs as the budget
  allows; like the tutorial it keeps its last weights (the project sides evaluate their best epoch).

Every side stops at the first step boundary after the budget (``TrainConfig.max_minutes``, and the
same callback for the peer); the epoch running then is still validated. The budget counts training
and the per-epoch validation passes, not data loading or export. ``train_seconds`` is the training
time alone (validation passes excluded), ``wall_seconds`` the whole side. Validation windows are
each side's own (100 characters for the LSTMs, the GPT's context of 128), over the same text.

    python bench/lm_quality.py [--minutes 10] [--rounds 1]

Ends with one JSON line: each side's validation loss (nats), bits per character, seconds, epochs,
and the best side.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

from common import alternate
from lstm_vs_peer import tutorial_lstm

LARGE = 1000  # epochs / patience that the budget, not the count, ends


def peer(workdir, minutes: float, seed: int, data_dir: str | None) -> dict:
    """``lstm_vs_peer.tutorial_lstm`` on the whole training text, for a time budget instead of an epoch count."""
    from app.training.trainer import StopAfterMinutes

    budget = StopAfterMinutes(minutes)
    model, validation, timer = tutorial_lstm(LARGE, None, seed, callbacks=[budget], data_dir=data_dir)
    return {
        "validation_loss": float(model.evaluate(validation, verbose=0)),
        "train_seconds": round(timer.seconds, 1),
        "epochs": timer.epochs,
        "stopped_by_time_budget": int(budget.spent),
    }


def project(workdir, task, minutes: float, seed: int, data_dir: str | None, epochs: int | None, patience: int) -> dict:
    from app.training.trainer import TrainConfig, train

    config = TrainConfig(
        epochs=epochs, patience=patience, seed=seed, data_dir=data_dir, max_minutes=minutes,
        quiet=True, out=str(workdir / "saved"), runs_dir=str(workdir / "runs"),
    )
    summary = train(task, config).summary
    return {
        "validation_loss": summary["metrics"]["validation_loss"],
        "train_seconds": summary["train_seconds"],
        "epochs": summary["epochs_trained"],
        "stopped_by_time_budget": int(summary["stopped_by_time_budget"]),
    }


def side(run):
    """Time the whole side, add bits per character, and free the model before the next side."""

    def measured(workdir) -> dict:
        import keras

        keras.backend.clear_session()
        start = time.perf_counter()
        figures = run(workdir)
        figures["wall_seconds"] = round(time.perf_counter() - start, 1)
        figures["bits_per_char"] = figures["validation_loss"] / math.log(2)
        keras.backend.clear_session()
        return figures

    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10, help="wall-clock training budget of each side")
    parser.add_argument("--rounds", type=int, default=1, help="each round trains all three sides (3 x --minutes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", help="folder holding tinyshakespeare/input.txt (default: the usual places)")
    parser.add_argument(
        "--gpt-epochs", type=int,
        help="the GPT's epochs, which size its learning-rate schedule (default: the task's, as users get it)",
    )
    args = parser.parse_args()

    from app.training.devices import cpu_model
    from app.tasks import GptTask, LanguageModelTask

    gpt_task = GptTask()
    gpt_epochs = args.gpt_epochs or gpt_task.defaults.epochs
    print(f"CPU: {cpu_model()}", flush=True)
    print(
        f"each side trains for {args.minutes:g} minutes (gpt: at most its default {gpt_epochs} epochs, its "
        f"learning-rate schedule's length), {args.rounds} round(s), ~{3 * args.minutes * args.rounds:.0f} minutes in all",
        flush=True,
    )
    if args.rounds < 3:
        print("note: one or two rounds give no stable medians; use --rounds 3 or more for figures to quote", flush=True)

    common_args = (args.minutes, args.seed, args.data_dir)
    results = alternate(
        {
            "gpt": side(lambda workdir: project(workdir, gpt_task, *common_args, epochs=gpt_epochs, patience=gpt_epochs)),
            "lstm": side(lambda workdir: project(workdir, LanguageModelTask(), *common_args, epochs=LARGE, patience=LARGE)),
            "peer": side(lambda workdir: peer(workdir, *common_args)),
        },
        args.rounds,
    )
    for figures in results.values():
        figures["validation_loss"] = round(figures["validation_loss"], 4)
        figures["bits_per_char"] = round(figures["bits_per_char"], 4)
    best = min(results, key=lambda name: results[name]["validation_loss"])
    print(f"{'side':<6} {'val loss (nats)':>16} {'bits/char':>10} {'train s':>8} {'wall s':>8} {'epochs':>7}")
    for name, figures in results.items():
        print(
            f"{name:<6} {figures['validation_loss']:>16.4f} {figures['bits_per_char']:>10.4f} "
            f"{figures['train_seconds']:>8.1f} {figures['wall_seconds']:>8.1f} {figures['epochs']:>7g}"
        )
    print(f"best: {best}", flush=True)
    print(json.dumps({
        "bench": "lm_quality",
        "cpu": cpu_model(),
        "minutes": args.minutes,
        "rounds": args.rounds,
        "seed": args.seed,
        **results,
        "best": best,
    }), flush=True)


if __name__ == "__main__":
    sys.exit(main())

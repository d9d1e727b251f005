"""A GPT adapted to a new text: continuing from the Shakespeare GPT (every weight, or LoRA on the
GPT's default targets, every projection of the blocks, or on ``query,value`` only) against training the
same model from zero, at equal wall-clock, by validation loss on the new text.

The new text is modern film reviews: the first SST-2 training sentences (``--sentences``, in file
order), one per line, written to a temporary file (nothing from ``../shared`` is copied into the
repository). The Shakespeare GPT is ``--init-from`` (an export of ``python -m app.train gpt``), or, if
none is given, one trained here with the task's defaults first. Each side trains for ``--minutes``
(``--max-minutes``: the best epoch so far is scored), alternating over ``--rounds``.

    python bench/gpt_adaptation.py [--init-from saved_models/gpt | --shakespeare-minutes 4] [--minutes 3] [--rounds 1]

The adapted sides keep the Shakespeare vocabulary: characters outside it become its out-of-vocabulary
id (their share is printed); the side from zero builds its vocabulary from the reviews. Prints the CPU
model, then one JSON line: each side's validation loss, epochs and trained seconds, and the differences.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from common import alternate

LEARNING_RATES = {"zero": 3e-3, "full": 1e-3, "lora": 3e-3}  # zero: the task's default; the others untuned


def reviews_text(folder: Path, sentences: int) -> Path:
    from data_pipelines.sources import resolve_data_file
    from data_pipelines.text_classification import SST2_TRAIN, read_labelled_text

    texts = read_labelled_text(resolve_data_file(SST2_TRAIN), "sentence", "label").texts[:sentences]
    path = folder / "film_reviews.txt"
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return path


def shakespeare_gpt(folder: Path, minutes: float | None) -> str:
    from app.tasks import GptTask
    from app.training.trainer import TrainConfig, train

    print(f"no --init-from: training the default GPT on Tiny Shakespeare first ({minutes or 'its default'} minutes)", flush=True)
    config = TrainConfig(out=str(folder / "saved"), runs_dir=str(folder / "runs"), quiet=True, max_minutes=minutes)
    summary = train(GptTask(), config).summary
    print(f"Shakespeare GPT: validation loss {summary['metrics']['validation_loss']:.3f} after {summary['epochs_trained']} epochs", flush=True)
    return summary["export_dir"]


def adapt(workdir: Path, text: Path, minutes: float, init_from: str | None, finetune: str, **lora) -> dict:
    from app.tasks import GptTask
    from app.training.trainer import TrainConfig, train

    task = GptTask(text_file=str(text), init_from=init_from, finetune=finetune, **lora)
    config = TrainConfig(
        epochs=1000, patience=1000, max_minutes=minutes, learning_rate=LEARNING_RATES["zero" if init_from is None else finetune],
        quiet=True, out=str(workdir / "saved"), runs_dir=str(workdir / "runs"),
    )
    summary = train(task, config).summary
    return {
        "validation_loss": summary["metrics"]["validation_loss"],
        "out_of_vocabulary_share": summary["metrics"].get("out_of_vocabulary_share", 0.0),
        "epochs": summary["epochs_trained"],
        "train_seconds": summary["train_seconds"],
        "trainable_parameters": summary["trainable_parameters"],
    }


def main() -> None:
    from app.training import devices

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--init-from", help="the Shakespeare GPT export (default: train one first)")
    parser.add_argument("--shakespeare-minutes", type=float, help="without --init-from: stop the Shakespeare GPT's training after this long")
    parser.add_argument("--minutes", type=float, default=3.0, help="training minutes of every side")
    parser.add_argument("--sentences", type=int, default=10_000, help="SST-2 training sentences in the new text")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    print(f"CPU: {devices.cpu_model()}, {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        text = reviews_text(Path(scratch), args.sentences)
        init_from = args.init_from or shakespeare_gpt(Path(scratch) / "shakespeare", args.shakespeare_minutes)
        sides = {
            "from_zero": lambda workdir: adapt(workdir, text, args.minutes, None, "full"),
            "from_shakespeare_full": lambda workdir: adapt(workdir, text, args.minutes, init_from, "full"),
            "from_shakespeare_lora": lambda workdir: adapt(workdir, text, args.minutes, init_from, "lora"),
            "from_shakespeare_lora_query_value": lambda workdir: adapt(
                workdir, text, args.minutes, init_from, "lora", lora_targets=("query", "value")),
        }
        results = alternate(sides, args.rounds)
    zero = results["from_zero"]["validation_loss"]
    differences = {f"{name}_minus_from_zero": round(results[name]["validation_loss"] - zero, 4) for name in sides if name != "from_zero"}
    settings = {"minutes": args.minutes, "sentences": args.sentences, "rounds": args.rounds, "learning_rates": LEARNING_RATES}
    print(json.dumps({"bench": "gpt_adaptation", "cpu_model": devices.cpu_model(), **settings, **results, "differences": differences}), flush=True)


if __name__ == "__main__":
    main()

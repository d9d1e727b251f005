"""BERT fine-tuning and inference: the project against Hugging Face + PyTorch (fp32, and bf16 autocast)
and keras-hub's `BertTextClassifier`, on one machine, alternating, >= 3 rounds for medians.

Every side fine-tunes the shared MiniLM on the same 2,000 shuffled SST-2 training sentences (seed 0),
batch 32, learning rate 5e-5, 1 epoch, at most 64 word pieces, then classifies the 872 dev sentences
from raw strings in batches of 32, after one warm-up sentence (the project through its export and `app.evaluate`'s length-sorted
batches; Hugging Face as its users write it, each batch padded to its longest; keras-hub pads every
sentence to 64). Hugging Face runs in its own virtual environment outside the repository, made by
``bash bench/setup_hf_peer.sh`` (torch is never a project dependency); its bf16 side runs where the
CPU has bf16 instructions (``--hf-bf16 auto``), since elsewhere autocast emulates bf16 many times slower.

    python bench/bert_vs_peers.py [--rounds 3] [--train-samples 2000] [--sides project,huggingface,keras_hub]

Prints the CPU model and its bf16 support, then one JSON line: each side's train and inference
samples/s, dev accuracy and peak memory (medians), and the project's ratios to each side and to
Hugging Face's best configuration per figure. On CPUs with bf16 instructions the project's export is
also timed with oneDNN's bf16 rewrite (``app.evaluate --mixed-precision bf16``: asked for, never the
default, since its answers differ slightly), beside Hugging Face's bf16 autocast, with its accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import REPO_ROOT, alternate

SEED, BATCH_SIZE, LEARNING_RATE, MAX_LENGTH = 0, 32, 5e-5, 64
PEER_VENV = Path(os.environ.get("FROMZERO_PEER_VENV", Path.home() / ".cache" / "fromzero" / "hf-peer-venv"))
FIGURES = ("train_samples_per_s", "inference_samples_per_s")


def sst2(train_samples: int, seed: int = SEED):
    import numpy as np

    from data_pipelines.sources import resolve_data_file
    from data_pipelines.text_classification import SST2_DEV, SST2_TRAIN, read_labelled_text

    train = read_labelled_text(resolve_data_file(SST2_TRAIN), "sentence", "label")
    dev = read_labelled_text(resolve_data_file(SST2_DEV), "sentence", "label")
    order = np.random.default_rng(seed).permutation(len(train.texts))[:train_samples]
    return train.texts[order].tolist(), train.labels[order], dev.texts.tolist(), dev.labels


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def project(workdir, train_samples: int, versions: dict) -> dict:
    import numpy as np
    import tensorflow as tf

    from app.exports.predictions import classify
    from app.tasks import BertTask
    from app.training import devices
    from app.training.trainer import TrainConfig, train

    _, _, dev_texts, dev_labels = sst2(train_samples)
    config = TrainConfig(
        epochs=1, batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE, seed=SEED, max_train_samples=train_samples,
        quiet=True, out=str(workdir / "saved"), runs_dir=str(workdir / "runs"),
    )
    summary = train(BertTask(max_seq_length=MAX_LENGTH), config).summary
    versions.update(project_precision=summary["precision"], tensorflow=tf.__version__)
    texts = np.array(dev_texts, dtype=object)

    def inference(precision: str) -> tuple[float, float]:
        """(sentences/s, dev accuracy) of the export loaded anew with ``app.evaluate --mixed-precision``'s
        setting: ``off`` = as exported (the default, as served), ``bf16`` = oneDNN's rewrite, asked for."""
        devices.set_inference_precision(precision)  # a process-wide graph option: set before loading
        loaded, answers = tf.saved_model.load(summary["export_dir"]), []
        classify(loaded, {"text": texts[:1]}, BATCH_SIZE)  # warm-up, as every side gets
        seconds = timed(lambda: answers.append(classify(loaded, {"text": texts}, BATCH_SIZE)))
        return len(dev_texts) / seconds, float(np.mean(answers[0].argmax(axis=1) == dev_labels))

    figures = dict(zip(("inference_samples_per_s", "dev_accuracy"), inference("off")))
    if devices.cpu_supports_bf16():  # the project's fastest inference, beside Hugging Face's bf16 autocast
        figures.update(zip(("inference_bf16_samples_per_s", "dev_accuracy_bf16_inference"), inference("bf16")))
        devices.set_inference_precision("off")  # as exported again before the next side runs
    return {"train_samples_per_s": summary["train_samples_per_s"], **figures}


def keras_hub_peer(workdir, train_samples: int) -> dict:
    import keras
    import keras_hub
    import numpy as np

    from app.common.paths import MINILM_CHECKPOINT
    from app.training.trainer import EpochTimer

    keras.utils.set_random_seed(SEED)
    train_texts, train_labels, dev_texts, dev_labels = sst2(train_samples)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor.from_preset(str(MINILM_CHECKPOINT), sequence_length=MAX_LENGTH)
    classifier = keras_hub.models.BertTextClassifier.from_preset(str(MINILM_CHECKPOINT), num_classes=2, preprocessor=preprocessor)
    classifier.compile(
        optimizer=keras.optimizers.AdamW(LEARNING_RATE),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    timer = EpochTimer()
    classifier.fit(np.array(train_texts), train_labels, batch_size=BATCH_SIZE, epochs=1, verbose=0, callbacks=[timer])
    logits = []
    seconds = timed(lambda: logits.append(classifier.predict(np.array(dev_texts), batch_size=BATCH_SIZE, verbose=0)))
    return {
        "train_samples_per_s": train_samples / timer.seconds,
        "inference_samples_per_s": len(dev_texts) / seconds,
        "dev_accuracy": float(np.mean(np.argmax(logits[0], axis=1) == dev_labels)),
    }


def huggingface_peer(workdir, train_samples: int, precision: str, versions: dict) -> dict:
    """Run bench/hf_peer.py in the peer venv on the same sentences."""
    train_texts, train_labels, dev_texts, dev_labels = sst2(train_samples)
    return run_hf_peer(workdir, {
        "train_texts": train_texts, "train_labels": train_labels.tolist(), "dev_texts": dev_texts,
        "dev_labels": dev_labels.tolist(), "batch_size": BATCH_SIZE, "max_length": MAX_LENGTH,
        "learning_rate": LEARNING_RATE, "seed": SEED,
    }, precision, versions)


def run_hf_peer(workdir: Path, data: dict, precision: str, versions: dict) -> dict:
    """bench/hf_peer.py in the peer venv on ``data`` (the sentences and settings, handed over as JSON);
    its figures come back as its last line, the library versions go into ``versions``."""
    from app.common.paths import MINILM_CHECKPOINT

    workdir.mkdir(parents=True, exist_ok=True)
    data_file = workdir / "sentences.json"
    data_file.write_text(json.dumps(data))
    command = [str(PEER_VENV / "bin" / "python"), str(REPO_ROOT / "bench" / "hf_peer.py"), "--data", str(data_file),
               "--model", str(MINILM_CHECKPOINT), "--precision", precision]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    if done.returncode != 0:
        sys.exit(f"error: the Hugging Face side failed:\n{done.stderr[-2000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    versions.update({key: figures.pop(key) for key in ("torch", "transformers", "torch_threads")})
    return figures


def main() -> None:
    from app.training import devices

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--train-samples", type=int, default=2000)
    parser.add_argument("--sides", default="project,huggingface,keras_hub", help="comma-separated: project, huggingface, keras_hub")
    parser.add_argument("--hf-bf16", choices=("auto", "on", "off"), default="auto",
                        help="Hugging Face under torch.autocast bf16 too (auto = where the CPU has bf16 instructions)")
    args = parser.parse_args()
    wanted = set(args.sides.split(","))
    cpu = {"cpu_model": devices.cpu_model(), "cpu_bf16": devices.cpu_supports_bf16(), "cores": os.cpu_count()}
    print(f"CPU: {cpu['cpu_model']}, {cpu['cores']} cores, bf16 instructions: {'yes' if cpu['cpu_bf16'] else 'no'}", flush=True)

    sides, versions, notes = {}, {}, []
    if "project" in wanted:
        sides["project"] = lambda workdir: project(workdir, args.train_samples, versions)
    if "huggingface" in wanted and not (PEER_VENV / "bin" / "python").is_file():
        notes.append(f"Hugging Face skipped: no peer venv at {PEER_VENV}; create it with: bash bench/setup_hf_peer.sh")
    elif "huggingface" in wanted:
        precisions = ["fp32"]
        if args.hf_bf16 == "on" or (args.hf_bf16 == "auto" and cpu["cpu_bf16"]):
            precisions.append("bf16")
        else:
            notes.append("Hugging Face bf16 skipped: no bf16 instructions on this CPU (autocast would emulate it; --hf-bf16 on runs it)")
        for precision in precisions:
            sides[f"huggingface_{precision}"] = (
                lambda workdir, precision=precision: huggingface_peer(workdir, args.train_samples, precision, versions)
            )
    if "keras_hub" in wanted:
        sides["keras_hub"] = lambda workdir: keras_hub_peer(workdir, args.train_samples)
    for note in notes:
        print(note, file=sys.stderr, flush=True)
    results = alternate(sides, args.rounds)

    ratios = {}
    if "project" in results:
        for peer in (name for name in results if name != "project"):
            for figure in FIGURES:
                ratios[f"{figure}_vs_{peer}"] = round(results["project"][figure] / results[peer][figure], 2)
        huggingface = [name for name in results if name.startswith("huggingface")]
        for figure in FIGURES if huggingface else ():
            best = max(huggingface, key=lambda name: results[name][figure])
            ratios[f"{figure}_vs_huggingface_best"] = round(results["project"][figure] / results[best][figure], 2)
            ratios[f"{figure}_huggingface_best_is"] = best
        if huggingface and "inference_bf16_samples_per_s" in results["project"]:  # each library at its fastest
            ours = max(results["project"]["inference_samples_per_s"], results["project"]["inference_bf16_samples_per_s"])
            theirs = max(results[name]["inference_samples_per_s"] for name in huggingface)
            ratios["inference_project_best_vs_huggingface_best"] = round(ours / theirs, 2)
    settings = {
        "rounds": args.rounds, "train_samples": args.train_samples, "batch_size": BATCH_SIZE,
        "learning_rate": LEARNING_RATE, "max_length": MAX_LENGTH,
    }
    print(json.dumps({"bench": "bert_vs_peers", **cpu, **settings, **results, "ratios": ratios, "versions": versions, "notes": notes}), flush=True)


if __name__ == "__main__":
    main()

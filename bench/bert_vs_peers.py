"""BERT fine-tuning: the project's trainer against keras-hub's `BertTextClassifier` (and Hugging Face,
when torch and transformers happen to be installed; they are not project dependencies).

Every side fine-tunes the shared MiniLM on the same 2,000 shuffled SST-2 training sentences (seed 0),
batch 32, learning rate 5e-5, 1 epoch, at most 64 word pieces, then classifies the 872 dev sentences
from raw strings. The project pads each batch to its length bucket; keras-hub pads every sentence to 64.

    python bench/bert_vs_peers.py [--rounds 1] [--train-samples 2000]

Prints one JSON line: train and inference samples/s, dev accuracy and peak memory of each side, and
the project's ratios to each peer.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time

from common import alternate

SEED, BATCH_SIZE, LEARNING_RATE, MAX_LENGTH = 0, 32, 5e-5, 64


def sst2(train_samples: int):
    import numpy as np

    from data_pipelines.sources import resolve_data_file
    from data_pipelines.text_classification import SST2_DEV, SST2_TRAIN, read_labelled_text

    train = read_labelled_text(resolve_data_file(SST2_TRAIN), "sentence", "label")
    dev = read_labelled_text(resolve_data_file(SST2_DEV), "sentence", "label")
    order = np.random.default_rng(SEED).permutation(len(train.texts))[:train_samples]
    return train.texts[order].tolist(), train.labels[order], dev.texts.tolist(), dev.labels


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def project(workdir, train_samples: int) -> dict:
    import numpy as np
    import tensorflow as tf

    from app.tasks import BertTask
    from app.trainer import TrainConfig, train

    _, _, dev_texts, dev_labels = sst2(train_samples)
    config = TrainConfig(
        epochs=1, batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE, seed=SEED, max_train_samples=train_samples,
        quiet=True, out=str(workdir / "saved"), runs_dir=str(workdir / "runs"),
    )
    summary = train(BertTask(max_seq_length=MAX_LENGTH), config).summary
    serve = tf.saved_model.load(summary["export_dir"]).signatures["serving_default"]
    predictions = []

    def classify_dev():
        for start in range(0, len(dev_texts), BATCH_SIZE):
            predictions.append(serve(text=tf.constant(dev_texts[start : start + BATCH_SIZE]))["class_ids"].numpy())

    seconds = timed(classify_dev)
    return {
        "train_samples_per_s": summary["train_samples_per_s"],
        "inference_samples_per_s": len(dev_texts) / seconds,
        "dev_accuracy": float(np.mean(np.concatenate(predictions) == dev_labels)),
    }


def keras_hub_peer(workdir, train_samples: int) -> dict:
    import keras
    import keras_hub
    import numpy as np

    from app.export_hub import DEFAULT_CHECKPOINT
    from app.trainer import EpochTimer

    keras.utils.set_random_seed(SEED)
    train_texts, train_labels, dev_texts, dev_labels = sst2(train_samples)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor.from_preset(str(DEFAULT_CHECKPOINT), sequence_length=MAX_LENGTH)
    classifier = keras_hub.models.BertTextClassifier.from_preset(str(DEFAULT_CHECKPOINT), num_classes=2, preprocessor=preprocessor)
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


def huggingface_peer(workdir, train_samples: int) -> dict:
    """Only when torch and transformers are importable (never installed by this project)."""
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from app.export_hub import DEFAULT_CHECKPOINT

    torch.manual_seed(SEED)
    train_texts, train_labels, dev_texts, dev_labels = sst2(train_samples)
    tokenizer = AutoTokenizer.from_pretrained(str(DEFAULT_CHECKPOINT))
    model = AutoModelForSequenceClassification.from_pretrained(str(DEFAULT_CHECKPOINT), num_labels=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)

    def batches(texts):
        for start in range(0, len(texts), BATCH_SIZE):
            yield start, tokenizer(texts[start : start + BATCH_SIZE], padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")

    def train_epoch():
        model.train()
        for start, inputs in batches(train_texts):
            labels = torch.tensor(train_labels[start : start + BATCH_SIZE], dtype=torch.long)
            loss = model(**inputs, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()

    predictions = []

    def classify_dev():
        model.eval()
        with torch.no_grad():
            for _, inputs in batches(dev_texts):
                predictions.append(model(**inputs).logits.argmax(dim=1).numpy())

    train_seconds, inference_seconds = timed(train_epoch), timed(classify_dev)
    return {
        "train_samples_per_s": train_samples / train_seconds,
        "inference_samples_per_s": len(dev_texts) / inference_seconds,
        "dev_accuracy": float(np.mean(np.concatenate(predictions) == dev_labels)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--train-samples", type=int, default=2000)
    args = parser.parse_args()
    sides = {
        "project": lambda workdir: project(workdir, args.train_samples),
        "keras_hub": lambda workdir: keras_hub_peer(workdir, args.train_samples),
    }
    if importlib.util.find_spec("torch") and importlib.util.find_spec("transformers"):
        sides["huggingface"] = lambda workdir: huggingface_peer(workdir, args.train_samples)
    results = alternate(sides, args.rounds)
    ratios = {
        f"{figure}_vs_{peer}": round(results["project"][figure] / results[peer][figure], 2)
        for peer in results
        if peer != "project"
        for figure in ("train_samples_per_s", "inference_samples_per_s")
    }
    settings = {"train_samples": args.train_samples, "batch_size": BATCH_SIZE, "learning_rate": LEARNING_RATE, "max_length": MAX_LENGTH}
    print(json.dumps({"bench": "bert_vs_peers", **settings, **results, "ratios": ratios}), flush=True)


if __name__ == "__main__":
    main()

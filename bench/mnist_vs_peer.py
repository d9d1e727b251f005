"""MNIST: the seeds' plain tutorial code against the project's trainer, same network, data, epochs, batch.

Peer = what seeds 000-002 write: numpy arrays straight into ``model.fit(batch_size=32)``, Adam, the
784-64-64-10 Sequential model (with the correct sparse loss). Project = ``app.training.trainer.train`` with its
defaults (tf.data pipeline, steps_per_execution, dropout 0.2, early-stopping callbacks, export). Both
sides are timed per training epoch with the same callback and alternate in one process.

    python bench/mnist_vs_peer.py [--epochs 10] [--rounds 2]

Prints one JSON line: samples/s and test accuracy for both sides, the speed ratio, peak memory.
"""

from __future__ import annotations

import argparse

from common import alternate, print_comparison

BATCH_SIZE = 32


def peer(workdir, epochs: int, seed: int) -> dict:
    """The tutorial way, kept as plain as the seeds wrote it."""
    import keras
    import numpy as np

    from app.training.trainer import EpochTimer
    from data_pipelines.mnist import MNIST_FILE, flatten_images, read_mnist_arrays
    from data_pipelines.sources import resolve_data_file

    keras.utils.set_random_seed(seed)
    arrays = read_mnist_arrays(resolve_data_file(MNIST_FILE))
    order = np.random.default_rng(seed).permutation(len(arrays["x_train"]))
    x_train, y_train = flatten_images(arrays["x_train"][order]), arrays["y_train"][order]
    x_test, y_test = flatten_images(arrays["x_test"]), arrays["y_test"]

    model = keras.Sequential(
        [
            keras.Input(shape=(784,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    timer = EpochTimer()
    model.fit(x_train, y_train, epochs=epochs, batch_size=BATCH_SIZE, validation_split=0.1, verbose=0, callbacks=[timer])
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    train_count = len(x_train) - int(len(x_train) * 0.1)
    return {"train_samples_per_s": train_count * timer.epochs / timer.seconds, "test_accuracy": accuracy}


def project(workdir, epochs: int, seed: int) -> dict:
    from app.tasks import MnistTask
    from app.training.trainer import TrainConfig, train

    config = TrainConfig(
        epochs=epochs, patience=epochs, batch_size=BATCH_SIZE, seed=seed, quiet=True,
        out=str(workdir / "saved"), runs_dir=str(workdir / "runs"),
    )
    summary = train(MnistTask(), config).summary
    return {"train_samples_per_s": summary["train_samples_per_s"], "test_accuracy": summary["metrics"]["test_accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = alternate(
        {
            "peer": lambda workdir: peer(workdir, args.epochs, args.seed),
            "project": lambda workdir: project(workdir, args.epochs, args.seed),
        },
        args.rounds,
    )
    settings = {"epochs": args.epochs, "batch_size": BATCH_SIZE}
    print_comparison("mnist_vs_peer", settings, results, speed="train_samples_per_s", quality="test_accuracy")


if __name__ == "__main__":
    main()

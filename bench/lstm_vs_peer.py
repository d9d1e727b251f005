"""LSTM language model: the seeds' tutorial code against the project's trainer on Tiny Shakespeare.

Peer = the classic `tf.data` text-generation tutorial of seed 000: a StringLookup over characters,
``Dataset.batch(seq_len + 1).map(split_input_target).shuffle(10000).batch(64)``, Embedding(256) ->
LSTM(128) -> Dense(vocab), ``model.fit``. Project = ``app.training.trainer.train`` on the same characters,
same sizes, same epochs. Both are timed per epoch with the same callback and alternate in one process.

    python bench/lstm_vs_peer.py [--epochs 2] [--max-train-samples 300000] [--rounds 2]

Prints one JSON line: training tokens/s and validation loss of both sides, their ratio, peak memory.
"""

from __future__ import annotations

import argparse

from common import alternate, print_comparison

SEQ_LEN, BATCH_SIZE = 100, 64


def tutorial_lstm(epochs: int, train_chars: int | None, seed: int, callbacks=(), data_dir: str | None = None):
    """The seeds' tutorial code, trained; returns (model, validation dataset, its EpochTimer)."""
    import keras
    import tensorflow as tf

    from app.training.trainer import EpochTimer
    from data_pipelines.sources import resolve_data_file
    from data_pipelines.text import SHAKESPEARE_FILE

    keras.mixed_precision.set_global_policy("float32")  # the tutorial's; a trainer run may have changed it
    keras.utils.set_random_seed(seed)
    text = resolve_data_file(SHAKESPEARE_FILE, data_dir).read_text(encoding="utf-8")
    split_at = int(len(text) * 0.9)
    vocab = sorted(set(text[:split_at]))
    ids_from_chars = keras.layers.StringLookup(vocabulary=vocab, mask_token=None)

    def windows(part: str, shuffle: bool):
        ids = ids_from_chars(tf.strings.unicode_split(part, "UTF-8"))
        sequences = tf.data.Dataset.from_tensor_slices(ids).batch(SEQ_LEN + 1, drop_remainder=True)
        dataset = sequences.map(lambda chunk: (chunk[:-1], chunk[1:]))
        if shuffle:
            dataset = dataset.shuffle(10000)
        return dataset.batch(BATCH_SIZE, drop_remainder=shuffle).prefetch(tf.data.AUTOTUNE)

    train, validation = windows(text[:split_at][:train_chars], True), windows(text[split_at:], False)
    vocab_size = ids_from_chars.vocabulary_size()
    model = keras.Sequential(
        [
            keras.layers.Embedding(vocab_size, 256),
            keras.layers.LSTM(128, return_sequences=True),
            keras.layers.Dense(vocab_size),
        ]
    )
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    timer = EpochTimer()
    model.fit(train, validation_data=validation, epochs=epochs, shuffle=False, verbose=0, callbacks=[*callbacks, timer])
    return model, validation, timer


def peer(workdir, epochs: int, train_chars: int, seed: int) -> dict:
    model, validation, timer = tutorial_lstm(epochs, train_chars, seed)
    return {"train_tokens_per_s": train_chars * timer.epochs / timer.seconds, "validation_loss": model.evaluate(validation, verbose=0)}


def project(workdir, epochs: int, train_chars: int, seed: int) -> dict:
    from app.tasks import LanguageModelTask
    from app.training.trainer import TrainConfig, train

    config = TrainConfig(
        epochs=epochs, patience=epochs, batch_size=BATCH_SIZE, seed=seed, max_train_samples=train_chars,
        quiet=True, out=str(workdir / "saved"), runs_dir=str(workdir / "runs"),
    )
    summary = train(LanguageModelTask(seq_len=SEQ_LEN), config).summary
    return {"train_tokens_per_s": summary["train_samples_per_s"], "validation_loss": summary["metrics"]["validation_loss"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-train-samples", type=int, default=300_000, help="training characters")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    run_args = (args.epochs, args.max_train_samples, args.seed)
    results = alternate(
        {"peer": lambda workdir: peer(workdir, *run_args), "project": lambda workdir: project(workdir, *run_args)},
        args.rounds,
    )
    settings = {"epochs": args.epochs, "train_chars": args.max_train_samples}
    print_comparison("lstm_vs_peer", settings, results, speed="train_tokens_per_s", quality="validation_loss")


if __name__ == "__main__":
    main()

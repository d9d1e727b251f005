"""Shared fixtures: small real trainings (in-process, once per session) and a CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
os.environ["FROMZERO_OFFLINE"] = "1"  # tests never touch the network
os.environ.pop("FROMZERO_DATA", None)


def run_app(*args: str, cwd: Path = REPO_ROOT, env: dict | None = None, timeout: int = 300):
    """Run ``python -m app.<args>`` as a user would; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def last_json_line(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def trained_mnist(tmp_path_factory):
    """Two quick epochs of the dense MNIST network on 1,500 images, exported."""
    from app.tasks import MnistTask
    from app.trainer import TrainConfig, train

    base = tmp_path_factory.mktemp("mnist")
    config = TrainConfig(epochs=2, max_train_samples=1500, out=str(base / "saved"), runs_dir=str(base / "runs"), quiet=True)
    return train(MnistTask(), config)


@pytest.fixture(scope="session")
def trained_lm(tmp_path_factory):
    """One epoch of a small character LSTM on the first 30k characters of Tiny Shakespeare, exported."""
    from app.tasks import LanguageModelTask
    from app.trainer import TrainConfig, train

    base = tmp_path_factory.mktemp("lm")
    config = TrainConfig(epochs=1, max_train_samples=30_000, out=str(base / "saved"), runs_dir=str(base / "runs"), quiet=True)
    return train(LanguageModelTask(seq_len=50, lstm_units=32, embedding_dim=32), config)


@pytest.fixture(scope="session")
def trained_gpt(tmp_path_factory):
    """One epoch of a tiny GPT (2 blocks, 32 wide, context 32) on the first 30k characters, exported."""
    from app.tasks import GptTask
    from app.trainer import TrainConfig, train

    base = tmp_path_factory.mktemp("gpt")
    config = TrainConfig(epochs=1, max_train_samples=30_000, out=str(base / "saved"), runs_dir=str(base / "runs"), quiet=True)
    return train(GptTask(size="tiny", seq_len=32, embedding_dim=32), config)


MINILM = REPO_ROOT.parent / "shared" / "models" / "all-MiniLM-L6-v2"


@pytest.fixture(scope="session")
def minilm_hub(tmp_path_factory):
    """The shared MiniLM exported in TF-Hub format, once per session: (out folder, keras-hub backbone)."""
    from app.export_hub import export_hub, load_backbone, read_vocabulary

    out = tmp_path_factory.mktemp("hub") / "minilm"
    vocab_file, lower_case = read_vocabulary(MINILM)
    backbone = load_backbone(MINILM)
    export_hub(backbone, vocab_file, lower_case, out)
    return out, backbone


@pytest.fixture(scope="session")
def tiny_hub(tmp_path_factory):
    """A randomly initialised 2-layer BERT with MiniLM's vocabulary, exported by the same code: fast to train."""
    import keras_hub

    from app.export_hub import export_hub, read_vocabulary

    out = tmp_path_factory.mktemp("hub") / "tiny"
    vocab_file, lower_case = read_vocabulary(MINILM)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=30522, num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64, max_sequence_length=128
    )
    export_hub(backbone, vocab_file, lower_case, out)
    return out


@pytest.fixture(scope="session")
def small_sst2(tmp_path_factory):
    """The first 96 training and 64 dev sentences of SST-2, as TSV files of the same layout."""
    folder = tmp_path_factory.mktemp("sst2")
    for split, rows in (("train", 96), ("dev", 64)):
        frame = pd.read_csv(REPO_ROOT.parent / "shared" / "data" / "sst2" / f"{split}.tsv", sep="\t", quoting=3).head(rows)
        frame.to_csv(folder / f"{split}.tsv", sep="\t", index=False)
    return folder


@pytest.fixture(scope="session")
def trained_bert(tiny_hub, small_sst2, tmp_path_factory):
    """One epoch of the BERT task with the tiny encoder on the small SST-2 slice: (TrainResult, hub folder)."""
    from app.tasks import BertTask
    from app.trainer import TrainConfig, train

    base = tmp_path_factory.mktemp("bert")
    task = BertTask(
        encoder=str(tiny_hub / "encoder"), preprocessor=str(tiny_hub / "preprocessor"),
        train_file=str(small_sst2 / "train.tsv"), validation_file=str(small_sst2 / "dev.tsv"),
    )
    config = TrainConfig(epochs=1, batch_size=16, learning_rate=1e-3, out=str(base / "saved"), runs_dir=str(base / "runs"), quiet=True)
    return train(task, config), tiny_hub


CORPUS_LINES = 1000
VOCAB_SIZE = 400


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory):
    """The first lines of Tiny Shakespeare and of SST-2's training sentences, in one text file."""
    shakespeare = (REPO_ROOT.parent / "shared" / "data" / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8").splitlines()
    sst2 = pd.read_csv(REPO_ROOT.parent / "shared" / "data" / "sst2" / "train.tsv", sep="\t", quoting=3)["sentence"].tolist()
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\n".join(shakespeare[:CORPUS_LINES] + sst2[:CORPUS_LINES]) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def small_vocab(small_corpus, tmp_path_factory):
    from app.pretrain import main

    out = tmp_path_factory.mktemp("vocab")
    report = main(["vocab", "--corpus", str(small_corpus), "--vocab-size", str(VOCAB_SIZE), "--out", str(out)])
    return out, report


@pytest.fixture(scope="session")
def pretrained_tiny(small_vocab, small_corpus, tmp_path_factory):
    """A 1-layer, 32-wide BERT with 64 positions, pretrained for 3 short epochs on the small corpus and
    exported as TF-Hub handles with `encoder.mlm`: the tiny pretrained model the TF-Hub interface tests use."""
    from app.tasks import MaskedLmTask
    from app.trainer import TrainConfig, train

    base = tmp_path_factory.mktemp("mlm")
    task = MaskedLmTask(
        size="tiny", vocab=str(small_vocab[0]), corpus=(str(small_corpus),), num_layers=1, hidden_dim=32, max_length=64
    )
    # float32 on every CPU, so the export can be compared with the Keras model to 1e-5.
    config = TrainConfig(
        epochs=3, batch_size=32, learning_rate=2e-3, mixed_precision="off",
        out=str(base / "saved"), runs_dir=str(base / "runs"), quiet=True,
    )
    return train(task, config)

"""Shared fixtures: small real trainings and exports, each built once per test run (`tests.support.builds`)
however many files and worker processes use it. Helpers are imported from `tests.support`, not from here."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from tests.support.builds import CORPUS_LINES, VOCAB_SIZE, build_once, train_once
from tests.support.paths import MINILM, REPO_ROOT, SHARED_DATA
from tests.support.slurm import slurm_cluster  # noqa: F401 (a fixture: a one-node Slurm cluster)

os.environ["FROMZERO_OFFLINE"] = "1"  # tests never touch the network
os.environ.pop("FROMZERO_DATA", None)


@pytest.fixture(scope="session")
def shared_builds(tmp_path_factory) -> Path:
    """A folder all worker processes of this run share (the parent of each worker's own temporary folder)."""
    base = tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared_builds"


@pytest.fixture(scope="session")
def trained_mnist(shared_builds):
    """Two quick epochs of the dense MNIST network on 1,500 images, exported."""
    from app.tasks import MnistTask

    return train_once(shared_builds / "mnist", MnistTask(), epochs=2, max_train_samples=1500)


@pytest.fixture(scope="session")
def trained_lm(shared_builds):
    """One epoch of a small character LSTM on the first 30k characters of Tiny Shakespeare, exported."""
    from app.tasks import LanguageModelTask

    task = LanguageModelTask(seq_len=50, lstm_units=32, embedding_dim=32)
    return train_once(shared_builds / "lm", task, epochs=1, max_train_samples=30_000)


@pytest.fixture(scope="session")
def trained_gpt(shared_builds):
    """One epoch of a tiny GPT (2 blocks, 32 wide, context 32) on the first 30k characters, exported."""
    from app.tasks import GptTask

    return train_once(shared_builds / "gpt", GptTask(size="tiny", seq_len=32, embedding_dim=32), epochs=1, max_train_samples=30_000)


@pytest.fixture(scope="session")
def minilm_hub(shared_builds) -> Path:
    """The shared MiniLM exported in TF-Hub format once per run, by this run's code, where the app looks
    for it by default (``saved_models/hub/minilm_l6``): notebook 3, which the serving notebook's test
    runs, then finds it there instead of exporting it a second time."""
    from app.common.paths import MINILM_HUB
    from app.exports.hub import export_checkpoint

    def build(folder):
        export_checkpoint(MINILM, REPO_ROOT / MINILM_HUB)
        return {"out": str(REPO_ROOT / MINILM_HUB)}

    return Path(build_once(shared_builds / "minilm_hub", build)["out"])


@pytest.fixture(scope="session")
def tiny_hub(shared_builds):
    """A randomly initialised 2-layer BERT with MiniLM's vocabulary, exported by the same code: fast to train."""

    def build(folder):
        import keras_hub

        from app.exports.hub import export_hub
        from models.bert.vocabulary import read_vocabulary

        vocab_file, lower_case = read_vocabulary(MINILM)
        backbone = keras_hub.models.BertBackbone(
            vocabulary_size=30522, num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64, max_sequence_length=128
        )
        export_hub(backbone, vocab_file, lower_case, folder / "tiny")
        return {"out": str(folder / "tiny")}

    return Path(build_once(shared_builds / "tiny_hub", build)["out"])


@pytest.fixture(scope="session")
def small_sst2(shared_builds):
    """The first 96 training and 64 dev sentences of SST-2, as TSV files of the same layout."""

    def build(folder):
        for split, rows in (("train", 96), ("dev", 64)):
            frame = pd.read_csv(SHARED_DATA / "sst2" / f"{split}.tsv", sep="\t", quoting=3).head(rows)
            frame.to_csv(folder / f"{split}.tsv", sep="\t", index=False)
        return {}

    build_once(shared_builds / "sst2", build)
    return shared_builds / "sst2"


@pytest.fixture(scope="session")
def trained_bert(tiny_hub, small_sst2, shared_builds):
    """One epoch of the BERT task with the tiny encoder on the small SST-2 slice: (TrainedModel, hub folder)."""
    from app.tasks import BertTask

    task = BertTask(
        encoder=str(tiny_hub / "encoder"), preprocessor=str(tiny_hub / "preprocessor"),
        train_file=str(small_sst2 / "train.tsv"), validation_file=str(small_sst2 / "dev.tsv"),
    )
    return train_once(shared_builds / "bert", task, epochs=1, batch_size=16, learning_rate=1e-3), tiny_hub


@pytest.fixture(scope="session")
def trained_bert_lora(tiny_hub, small_sst2, shared_builds):
    """The same run as `trained_bert` with ``--finetune lora --lora-rank 4``: a TrainedModel."""
    from app.tasks import BertTask

    task = BertTask(
        encoder=str(tiny_hub / "encoder"), preprocessor=str(tiny_hub / "preprocessor"),
        train_file=str(small_sst2 / "train.tsv"), validation_file=str(small_sst2 / "dev.tsv"), finetune="lora", lora_rank=4,
    )
    return train_once(shared_builds / "bert_lora", task, epochs=1, batch_size=16, learning_rate=1e-2)


@pytest.fixture(scope="session")
def small_corpus(shared_builds):
    """The first lines of Tiny Shakespeare and of SST-2's training sentences, in one text file."""

    def build(folder):
        shakespeare = (SHARED_DATA / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8").splitlines()
        sst2 = pd.read_csv(SHARED_DATA / "sst2" / "train.tsv", sep="\t", quoting=3)["sentence"].tolist()
        (folder / "corpus.txt").write_text("\n".join(shakespeare[:CORPUS_LINES] + sst2[:CORPUS_LINES]) + "\n", encoding="utf-8")
        return {}

    build_once(shared_builds / "corpus", build)
    return shared_builds / "corpus" / "corpus.txt"


@pytest.fixture(scope="session")
def small_vocab(small_corpus, shared_builds):
    """A 400-piece vocabulary learned by ``app.pretrain vocab`` from the small corpus: (folder, report)."""
    from app.pretrain import main

    def build(folder):
        return main(["vocab", "--corpus", str(small_corpus), "--vocab-size", str(VOCAB_SIZE), "--out", str(folder)])

    return shared_builds / "vocab", build_once(shared_builds / "vocab", build)


@pytest.fixture(scope="session")
def pretrained_tiny(small_vocab, small_corpus, shared_builds):
    """A 1-layer, 32-wide BERT with 64 positions, pretrained for 3 short epochs on the small corpus and
    exported as TF-Hub handles with `encoder.mlm`: the tiny pretrained model the TF-Hub interface tests use."""
    from app.tasks import MaskedLmTask

    task = MaskedLmTask(size="tiny", vocab=str(small_vocab[0]), corpus=(str(small_corpus),), num_layers=1, hidden_dim=32, max_length=64)
    # float32 on every CPU, so the export can be compared with the Keras model to 1e-5.
    return train_once(shared_builds / "mlm", task, epochs=3, batch_size=32, learning_rate=2e-3, mixed_precision="off")


# Run order for `pytest -n 2 --dist loadfile --no-loadscope-reorder` (pytest.ini): each test file runs on
# one worker (its module fixtures start once), files are handed out in collection order, and the files
# that took longest (measured: `pytest --durations=0`, summed per file) come first, so that neither
# worker is left alone with a long file at the end. xdist's own reordering (by the number of tests in a
# file) would start the notebooks, one long test each, last.
LONGEST_FIRST = (
    "tests/notebooks/test_04_serving.py",  # also runs notebooks 1-3, where no worker has yet
    "tests/serving/test_serving.py",
    "tests/training/test_ray.py",
    "tests/training/test_multi_worker.py",
    "tests/training/test_slurm.py",
    "tests/tasks/test_distillation.py",
    "tests/tasks/test_finetuning.py",
    "tests/notebooks/test_07_distillation_and_compression.py",
    "tests/notebooks/test_08_finetuning_methods.py",
    "tests/exports/test_export_hub.py",
    "tests/commands/test_cli.py",
    "tests/notebooks/test_06_pretraining_from_zero.py",
    "tests/notebooks/test_05_transformer_from_zero.py",
    "tests/exports/test_generation.py",
    "tests/commands/test_acceptance.py",
    "tests/serving/test_serve_config.py",
)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    def rank(item):
        path = item.nodeid.split("::")[0]
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the files' own order otherwise

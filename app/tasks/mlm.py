"""Task: pretrain a BERT encoder from random weights by masked language modelling, export it as
TF-Hub handles (``<out>/hub/bert_<size>_from_zero/{preprocessor,encoder}``) that ``app.train bert
--encoder ... --preprocessor ...`` fine-tunes like any other.

The corpus is unlabelled lines (default: SST-2 train sentences without labels + Tiny Shakespeare);
every 50th line is held out to score the masked-token loss and accuracy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from app.common import paths
from app.common.errors import UsageError
from app.exports.hub import export_hub
from app.tasks.base import Task, TaskData, TrainDefaults, option
from app.tasks.schedules import LinearWarmupDecay
from data_pipelines.corpus import load_corpus
from data_pipelines.masked_lm import MaskingConfig, masked_lm_batches
from models.bert.encoder import PRESETS, BertEncoderConfig
from models.bert.masked_lm import build_masked_lm
from models.bert.preprocessor import build_preprocessor
from models.bert.vocabulary import VOCAB_FILE

WARMUP_FRACTION = 0.06


@dataclass(frozen=True)
class MaskedLmData(TaskData):
    """Masked lines, and the vocabulary the encoder is built for and exported with."""

    vocab_file: Path
    vocab_size: int


@dataclass(frozen=True)
class MaskedLmTask(Task):
    """``size`` picks a preset (models.bert.encoder.PRESETS); the other size fields, when set, override it."""

    size: str = option("tiny", "preset: tiny 2x128, mini 4x256", choices=tuple(PRESETS))
    vocab: str = option(str(paths.VOCABULARY), "folder with vocab.txt from python -m app.pretrain vocab")
    corpus: tuple[str, ...] | None = option(
        help="UTF-8 text files, one sentence or paragraph per line", nargs="+", default_text="SST-2 train sentences + Tiny Shakespeare"
    )
    max_length: int = option(128, "word pieces per line, at most")
    num_layers: int | None = option(help="encoder blocks", default_text="the preset's")
    hidden_dim: int | None = option(help="model width", default_text="the preset's")
    num_heads: int | None = option(help="attention heads", default_text="the preset's")
    intermediate_dim: int | None = option(help="feed-forward width", default_text="4 x width")

    name = "mlm"
    summary = "pretrain a BERT encoder from random weights by masked language modelling"

    def __post_init__(self):
        if self.size not in PRESETS:
            raise UsageError(f"size must be one of {sorted(PRESETS)}, not {self.size!r}")
        config = self.model_config(vocab_size=1)
        if config.hidden_dim % config.num_heads:
            raise UsageError(f"--hidden-dim {config.hidden_dim} is not divisible by --num-heads {config.num_heads}")

    @property
    def defaults(self) -> TrainDefaults:
        """Per size, measured on a 2-core CPU with the default corpus (98k lines). ``tiny``: 5 epochs,
        ~19 minutes (225 s an epoch); peak learning rate 1e-3 (held-out masked accuracy 0.116 after one
        epoch against 0.086 at 3e-4). ``mini``: 2 epochs, ~20 minutes; 3e-4, since at 1e-3 this post-LayerNorm
        BERT collapsed to predicting one word piece (held-out masked accuracy 0.035 for two epochs)."""
        if self.size == "mini":
            return TrainDefaults(epochs=2, batch_size=64, learning_rate=3e-4, patience=2, steps_per_execution=1)
        return TrainDefaults(epochs=5, batch_size=64, learning_rate=1e-3, patience=5, steps_per_execution=1)

    @property
    def export_name(self) -> str:
        return f"bert_{self.size}_from_zero"

    def model_config(self, vocab_size: int) -> BertEncoderConfig:
        overrides = {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(BertEncoderConfig)
            if hasattr(self, field.name) and getattr(self, field.name) is not None
        }
        return BertEncoderConfig(vocab_size=vocab_size, **{**PRESETS[self.size], **overrides})

    def vocab_file(self) -> Path:
        path = Path(self.vocab) / VOCAB_FILE
        if not path.is_file():
            raise UsageError(f"no {VOCAB_FILE} in vocabulary folder {self.vocab}; learn one with python -m app.pretrain vocab")
        return path

    def load_data(self, data_dir, batch_size, seed, max_train_samples) -> MaskedLmData:
        vocab_file = self.vocab_file()
        vocabulary = vocab_file.read_text(encoding="utf-8").splitlines()
        preprocessor = build_preprocessor(vocab_file, lower_case=True, seq_length=self.max_length)  # checks the special tokens
        corpus = load_corpus(list(self.corpus) if self.corpus else None, data_dir)
        # --max-train-samples: a random sample of the lines (the files' own order would favour the first file).
        order = np.random.default_rng(seed).permutation(len(corpus.train))[:max_train_samples]
        lines = [corpus.train[index] for index in order]
        masking = MaskingConfig(
            vocab_size=len(vocabulary),
            mask_id=vocabulary.index("[MASK]"),
            padding_id=vocabulary.index("[PAD]"),
            special_ids=tuple(vocabulary.index(token) for token in ("[PAD]", "[CLS]", "[SEP]")),
            max_length=self.max_length,
            batch_size=batch_size,
        )
        held_out = masked_lm_batches(corpus.held_out, preprocessor, masking, shuffle_seed=None)
        return MaskedLmData(
            train=masked_lm_batches(lines, preprocessor, masking, shuffle_seed=seed),
            validation=held_out,
            evaluation=held_out,
            evaluation_split="heldout",
            train_examples=len(lines),
            description=f"{corpus.description} (training on {len(lines):,}); vocabulary {vocab_file} ({len(vocabulary):,} word pieces)",
            vocab_file=vocab_file,
            vocab_size=len(vocabulary),
        )

    def build_model(self, data: MaskedLmData) -> keras.Model:
        model = build_masked_lm(self.model_config(data.vocab_size))
        # Masked-LM has no sentence-level loss, so the pooler is not trained here (it stays as
        # initialised and becomes trainable again in the export, for fine-tuning with --pooling cls).
        model.backbone.pooled_dense.trainable = False
        return model

    def optimizer(self, learning_rate: float, total_steps: int) -> keras.optimizers.Optimizer:
        schedule = LinearWarmupDecay(learning_rate, int(total_steps * WARMUP_FRACTION), total_steps)
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=0.01, clipnorm=1.0)
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        return optimizer

    def loss(self):
        # The mean over the masked positions only (their weights are 1, the padding slots' 0).
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight")

    def metrics(self) -> list:
        return []

    def weighted_metrics(self) -> list:
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    def summarize(self, evaluation: dict, data: TaskData) -> dict:
        return {"heldout_masked_loss": float(evaluation["loss"]), "heldout_masked_accuracy": float(evaluation["accuracy"])}

    def export(self, model: keras.Model, data: MaskedLmData, out: str) -> Path:
        """TF-Hub handles with the official interface, including ``encoder.mlm`` (the pretrained head)."""
        target = paths.hub_handles(self.export_name, out)
        model.backbone.pooled_dense.trainable = True
        export_hub(model.backbone, data.vocab_file, True, target, self.max_length, masked_lm_head=model.masked_lm_head)
        return target

    def export_untrained(self, out: Path, seed: int = 0) -> Path:
        """The same architecture with its random initial weights, exported like a pretrained one: the
        baseline that shows what pretraining bought."""
        vocab_file = self.vocab_file()
        keras.utils.set_random_seed(seed)
        model = build_masked_lm(self.model_config(len(vocab_file.read_text(encoding="utf-8").splitlines())))
        export_hub(model.backbone, vocab_file, True, out, self.max_length, masked_lm_head=model.masked_lm_head)
        return out

"""Task: pretrain a BERT encoder from random weights by masked language modelling, export it as
TF-Hub handles (``<out>/hub/bert_<size>_from_zero/{preprocessor,encoder}``) that ``app.train bert
--encoder ... --preprocessor ...`` fine-tunes like any other.

The corpus is unlabelled lines (default: SST-2 train sentences without labels + Tiny Shakespeare);
every 50th line is held out to score the masked-token loss and accuracy. ``--objective mlm+nsp``
adds BERT's next-sentence prediction: the examples become segment pairs
(`data_pipelines.next_sentence`), the loss alpha * L_MLM + (1 - alpha) * L_NSP, and the pooler,
which the NSP head reads, is trained and exported.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from app.common import paths
from app.common.cli import positive_int, unit_weight
from app.common.errors import UsageError
from app.exports.hub import export_hub
from app.tasks.base import Task, TaskData, TrainDefaults, option
from app.tasks.schedules import LinearWarmupDecay
from data_pipelines.corpus import load_corpus
from data_pipelines.masked_lm import MaskingConfig, masked_lm_batches, masked_pair_batches
from data_pipelines.next_sentence import next_sentence_pairs
from models.bert.encoder import PRESETS, BertEncoderConfig
from models.bert.masked_lm import build_masked_lm, build_pretrainer
from models.bert.preprocessor import build_preprocessor
from models.bert.vocabulary import VOCAB_FILE

WARMUP_FRACTION = 0.06
OBJECTIVES = ("mlm", "mlm+nsp")
SEGMENT_WORDS = 30
# Exported beside the encoder (app.exports.hub.read_fine_tuning): what app.train bert needs to fine-tune
# an encoder pretrained this briefly, used unless the user's flags say otherwise.
# Measured on the default tiny pair (SST-2, 4,000 sentences, 2 epochs): dev 0.750 / 0.743 / 0.733 (seeds 0-2)
# at 1e-3 with the table trained, 0.656 at 3e-4, 0.54 (chance) at 5e-5 with it frozen.
FINE_TUNING = {
    "learning_rate": 1e-3,
    "freeze_word_embeddings": False,
    "why": "pretrained for minutes, from zero: its word-piece table and layers need more change than a fully pretrained encoder's",
}


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
    objective: str = option(
        "mlm", "mlm: masked language modelling on single lines; mlm+nsp: on segment pairs, plus next-sentence prediction",
        choices=OBJECTIVES,
    )
    nsp_weight: float = option(
        0.5, "alpha in L = alpha * L_MLM + (1 - alpha) * L_NSP (mlm+nsp): 0.5 weighs the two equally, as BERT's plain sum does",
        type=unit_weight,
    )
    segment_words: int = option(
        SEGMENT_WORDS, "mlm+nsp: a segment is consecutive lines joined until it holds this many words (1: single lines)",
        type=positive_int,
    )

    name = "mlm"
    summary = "pretrain a BERT encoder from random weights by masked language modelling"

    def __post_init__(self):
        if self.size not in PRESETS:
            raise UsageError(f"size must be one of {sorted(PRESETS)}, not {self.size!r}")
        if self.objective not in OBJECTIVES:
            raise UsageError(f"objective must be one of {', '.join(OBJECTIVES)}, not {self.objective!r}")
        if not 0 <= self.nsp_weight <= 1:
            raise UsageError(f"--nsp-weight is a weight in [0, 1], not {self.nsp_weight}")
        if self.segment_words < 1:
            raise UsageError(f"--segment-words must be a positive integer, not {self.segment_words}")
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
    def next_sentence(self) -> bool:
        return self.objective == "mlm+nsp"

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
        masking = MaskingConfig(
            vocab_size=len(vocabulary),
            mask_id=vocabulary.index("[MASK]"),
            padding_id=vocabulary.index("[PAD]"),
            special_ids=tuple(vocabulary.index(token) for token in ("[PAD]", "[CLS]", "[SEP]")),
            max_length=self.max_length,
            batch_size=batch_size,
            # A pair of segments is ~100 word pieces (a line ~13): room to predict 15 % of a full-length one.
            **({"mask_selection_length": math.ceil(MaskingConfig.mask_rate * self.max_length)} if self.next_sentence else {}),
        )
        if self.next_sentence:
            examples, held_out_examples = next_sentence_pairs(corpus, seed, self.segment_words)
            batches = masked_pair_batches
            unit = f"segment pairs of >= {self.segment_words} words each, half of them consecutive, drawn anew each epoch"
        else:
            examples, held_out_examples = corpus.train, corpus.held_out
            batches, unit = masked_lm_batches, "lines"
        # --max-train-samples: a random sample (the files' own order would favour the first file).
        order = np.random.default_rng(seed).permutation(len(examples))[:max_train_samples]
        examples = examples.sample(order) if self.next_sentence else [examples[index] for index in order]
        held_out = batches(held_out_examples, preprocessor, masking, shuffle_seed=None)
        return MaskedLmData(
            train=batches(examples, preprocessor, masking, shuffle_seed=seed),
            validation=held_out,
            evaluation=held_out,
            evaluation_split="heldout",
            train_examples=len(examples),
            description=(
                f"{corpus.description} (training on {len(examples):,} {unit}, {len(held_out_examples):,} held out); "
                f"vocabulary {vocab_file} ({len(vocabulary):,} word pieces)"
            ),
            vocab_file=vocab_file,
            vocab_size=len(vocabulary),
        )

    def build_model(self, data: MaskedLmData) -> keras.Model:
        model = build_pretrainer(self.model_config(data.vocab_size), self.next_sentence)
        # Masked-LM alone has no sentence-level loss, so the pooler is not trained then (it stays as
        # initialised and becomes trainable again in the export, for fine-tuning with --pooling cls);
        # with NSP the pooler is what the next-sentence head reads, and trains.
        model.backbone.pooled_dense.trainable = self.next_sentence
        return model

    def optimizer(self, learning_rate: float, total_steps: int) -> keras.optimizers.Optimizer:
        schedule = LinearWarmupDecay(learning_rate, int(total_steps * WARMUP_FRACTION), total_steps)
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=0.01, clipnorm=1.0)
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        return optimizer

    def loss(self):
        # The mean over the masked positions only (their weights are 1, the padding slots' 0).
        masked = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight")
        if not self.next_sentence:
            return masked
        return {"mlm": masked, "nsp": keras.losses.SparseCategoricalCrossentropy(from_logits=True)}

    def loss_weights(self) -> dict | None:
        """alpha * L_MLM + (1 - alpha) * L_NSP; Keras logs each term unweighted, as mlm_loss and nsp_loss."""
        return {"mlm": self.nsp_weight, "nsp": 1 - self.nsp_weight} if self.next_sentence else None

    def metrics(self) -> list | dict:
        return {"nsp": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]} if self.next_sentence else []

    def weighted_metrics(self) -> list | dict:
        accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")  # over the masked positions only
        return {"mlm": [accuracy]} if self.next_sentence else [accuracy]

    def summarize(self, evaluation: dict, data: TaskData) -> dict:
        if not self.next_sentence:
            return {"heldout_masked_loss": float(evaluation["loss"]), "heldout_masked_accuracy": float(evaluation["accuracy"])}
        names = {
            "loss": "loss", "masked_loss": "mlm_loss", "masked_accuracy": "mlm_accuracy", "nsp_loss": "nsp_loss", "nsp_accuracy": "nsp_accuracy",
        }
        return {f"heldout_{name}": float(evaluation[logged]) for name, logged in names.items()}

    def run_facts(self) -> dict:
        pairs = {"nsp_weight": self.nsp_weight, "segment_words": self.segment_words} if self.next_sentence else {}
        return {"objective": self.objective, **pairs}

    def export(self, model: keras.Model, data: MaskedLmData, out: str) -> Path:
        """TF-Hub handles with the official interface, including ``encoder.mlm`` (the pretrained head);
        ``pooled_output`` is the backbone's pooler, trained by the NSP head with mlm+nsp."""
        target = paths.hub_handles(self.export_name, out)
        model.backbone.pooled_dense.trainable = True
        export_hub(model.backbone, data.vocab_file, True, target, self.max_length, model.masked_lm_head, FINE_TUNING)
        return target

    def export_untrained(self, out: Path, seed: int = 0) -> Path:
        """The same architecture with its random initial weights, exported like a pretrained one: the
        baseline that shows what pretraining bought."""
        vocab_file = self.vocab_file()
        keras.utils.set_random_seed(seed)
        model = build_masked_lm(self.model_config(len(vocab_file.read_text(encoding="utf-8").splitlines())))
        export_hub(model.backbone, vocab_file, True, out, self.max_length, model.masked_lm_head, FINE_TUNING)
        return out

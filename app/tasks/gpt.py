"""Task: the GPT-style Transformer language model, on the same text, split and metrics as the LSTM.

Training follows nanoGPT's recipe: AdamW (no weight decay on biases and norms), a linear learning-rate
warm-up then cosine decay to a tenth, gradient clipping at norm 1, and windows at a new random offset
every epoch. ``--init-from`` continues from a GPT export on another text (its weights and vocabulary),
every weight trained or (``--finetune lora``) low-rank updates only.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import keras

from app.common.cli import dropout_rate
from app.common.errors import UsageError
from app.exports.savedmodel import ExportSpec, read_metadata, resolve_version
from app.tasks.base import TrainDefaults, option
from app.tasks.finetuning import LoraOptions, lora_targets_option
from app.tasks.lm import NextTokenTask, TextData
from models.decoding import IncrementalDecoder
from models.gpt import PRESETS, GptConfig, build_gpt, gpt_decoder
from models.lora import LORA_TARGETS
from models.saved_weights import copy_saved_weights

WARMUP_STEPS = 100


def gpt_export(path: str) -> tuple[Path, dict]:
    """The version folder and metadata of a GPT export of this project (UsageError for anything else)."""
    try:
        version = resolve_version(path)
        metadata = read_metadata(version)
    except (OSError, ValueError) as error:
        raise UsageError(f"--init-from {path} is not a GPT export of this project ({error})") from None
    if metadata.get("architecture") != "gpt" or "gpt_config" not in metadata:
        raise UsageError(
            f"--init-from {path} is not a GPT export of this project: python -m app.train gpt writes one "
            "(exports made before --init-from existed lack the model's sizes: train again)"
        )
    return version, metadata


@dataclass(frozen=True)
class GptTask(LoraOptions, NextTokenTask):
    """``size`` picks a preset (models.gpt.PRESETS); the other fields, when set, override it."""

    size: str = option(
        "small", "preset: tiny 2x64, small 4x128 context 128, base = nanoGPT's Shakespeare model 6x384 context 256 (for a GPU)",
        choices=tuple(PRESETS),
    )
    seq_len: int | None = option(help="tokens per training window, the context length", default_text="the preset's")
    num_layers: int | None = option(help="decoder blocks", default_text="the preset's")
    num_heads: int | None = option(help="attention heads", default_text="the preset's")
    embedding_dim: int | None = option(help="model width", default_text="the preset's")
    dropout_rate: float | None = option(help="dropout", type=dropout_rate, default_text="the preset's")
    init_from: str | None = option(
        help="continue from this GPT export (model folder or one version): its sizes, weights and vocabulary; "
        "tokens of the new text outside that vocabulary become its out-of-vocabulary id", default_text="from zero",
    )
    finetune: str = option(
        "full", "with --init-from: full = every weight trains; lora = low-rank updates of --lora-targets only", choices=("full", "lora")
    )
    # A character GPT moving to a new text must change its feed-forward layers too: with LoRA on
    # query,value only it ended above a GPT trained from zero (bench/gpt_adaptation.py, docs/finetuning.md).
    lora_targets: tuple[str, ...] = lora_targets_option(LORA_TARGETS)

    name = "gpt"
    summary = "GPT-style Transformer language model on Tiny Shakespeare (or --text-file)"
    export_name = "gpt"
    # Sized for a 2-core CPU: ~12 minutes. Small batches give a small model more updates per token
    # (batch 16 reached validation loss 2.07 after one epoch where batch 64 reached 2.49).
    defaults = TrainDefaults(epochs=6, batch_size=16, learning_rate=3e-3, patience=3, steps_per_execution=16)
    random_offsets = True

    def __post_init__(self):
        if self.size not in PRESETS:
            raise UsageError(f"size must be one of {sorted(PRESETS)}, not {self.size!r}")
        if self.finetune == "lora" and not self.init_from:
            raise UsageError("--finetune lora adapts a trained GPT: pass --init-from EXPORT")
        if self.init_from:
            context = self.base_config()["context_length"]
            if (self.seq_len or context) > context:
                raise UsageError(f"--seq-len {self.seq_len} is longer than the {context} tokens --init-from {self.init_from} attends over")
            object.__setattr__(self, "seq_len", self.seq_len or context)
        if self.seq_len is None:
            object.__setattr__(self, "seq_len", PRESETS[self.size]["context_length"])
        config = self.model_config(vocab_size=1)
        if config.embedding_dim % config.num_heads:
            raise UsageError(
                f"--embedding-dim {config.embedding_dim} is not divisible by --num-heads {config.num_heads}: "
                "each head gets an equal share of the width"
            )

    def base_config(self) -> dict:
        return gpt_export(self.init_from)[1]["gpt_config"]

    def given_vocabulary(self) -> tuple[str, tuple[str, ...]] | None:
        if not self.init_from:
            return None
        version, metadata = gpt_export(self.init_from)
        tokens_by_id = json.loads((version / "assets.extra" / "vocabulary.json").read_text(encoding="utf-8"))
        return metadata["tokenizer"], tuple(tokens_by_id[1:])  # id 0 is the out-of-vocabulary token

    def model_config(self, vocab_size: int) -> GptConfig:
        if self.init_from:  # the export's own sizes (the size flags do not apply)
            return GptConfig(**self.base_config())
        overrides = {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(GptConfig)
            if hasattr(self, field.name) and getattr(self, field.name) is not None
        }
        return GptConfig(vocab_size=vocab_size, **{**PRESETS[self.size], "context_length": self.seq_len, **overrides})

    def build_model(self, data: TextData) -> keras.Model:
        model = build_gpt(self.model_config(data.tokenizer.vocab_size))
        if self.init_from:
            try:
                copy_saved_weights(model.weights, gpt_export(self.init_from)[0])
            except ValueError as error:
                raise UsageError(f"--init-from: {error}") from None
        if self.finetune == "lora":
            self.add_lora(model)
        return model

    def run_facts(self) -> dict:
        if not self.init_from:
            return {}
        facts = {"init_from": str(gpt_export(self.init_from)[0]), "finetune": self.finetune}
        return {**facts, "lora": self.lora_facts()} if self.finetune == "lora" else facts

    def export_spec(self, model: keras.Model, data: TextData) -> ExportSpec:
        spec = super().export_spec(model, data)
        sizes = dataclasses.asdict(self.model_config(data.tokenizer.vocab_size))  # what --init-from rebuilds
        return dataclasses.replace(spec, metadata={**spec.metadata, "gpt_config": sizes, **self.run_facts()})

    def optimizer(self, learning_rate: float, total_steps: int) -> keras.optimizers.Optimizer:
        warmup = min(WARMUP_STEPS, max(1, total_steps // 10))
        schedule = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0,
            decay_steps=max(1, total_steps - warmup),
            alpha=0.1,
            warmup_target=learning_rate,
            warmup_steps=warmup,
        )
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=0.1, beta_2=0.99, clipnorm=1.0)
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        return optimizer

    def decoder(self, model: keras.Model) -> IncrementalDecoder:
        return gpt_decoder(model)

"""Task: the GPT-style Transformer language model, on the same text, split and metrics as the LSTM.

Training follows nanoGPT's recipe: AdamW (no weight decay on biases and norms), a linear learning-rate
warm-up then cosine decay to a tenth, gradient clipping at norm 1, and windows at a new random offset
every epoch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import keras

from app.common.cli import dropout_rate
from app.common.errors import UsageError
from app.tasks.base import TrainDefaults, option
from app.tasks.lm import NextTokenTask, TextData
from models.decoding import IncrementalDecoder
from models.gpt import PRESETS, GptConfig, build_gpt, gpt_decoder

WARMUP_STEPS = 100


@dataclass(frozen=True)
class GptTask(NextTokenTask):
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
        if self.seq_len is None:
            object.__setattr__(self, "seq_len", PRESETS[self.size]["context_length"])
        config = self.model_config(vocab_size=1)
        if config.embedding_dim % config.num_heads:
            raise UsageError(
                f"--embedding-dim {config.embedding_dim} is not divisible by --num-heads {config.num_heads}: "
                "each head gets an equal share of the width"
            )

    def model_config(self, vocab_size: int) -> GptConfig:
        overrides = {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(GptConfig)
            if hasattr(self, field.name) and getattr(self, field.name) is not None
        }
        return GptConfig(vocab_size=vocab_size, **{**PRESETS[self.size], "context_length": self.seq_len, **overrides})

    def build_model(self, data: TextData) -> keras.Model:
        return build_gpt(self.model_config(data.tokenizer.vocab_size))

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

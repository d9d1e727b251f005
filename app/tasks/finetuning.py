"""The LoRA flags the fine-tuning tasks share (`app.train bert`, `app.distill`, `app.train gpt`)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from app.common.cli import positive_float, positive_int
from app.common.errors import UsageError
from app.tasks.base import option
from models.lora import LORA_TARGETS, LoraConfig, enable_lora


def lora_targets(text: str) -> tuple[str, ...]:
    names = tuple(text.split(","))
    unknown = [name for name in names if name not in LORA_TARGETS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown layer {', '.join(unknown)}: LoRA targets are {', '.join(LORA_TARGETS)}")
    return names


def lora_targets_option(default: tuple[str, ...]):
    """The ``--lora-targets`` flag with a task's own default."""
    return option(default, f"comma-separated layers given LoRA updates, of: {', '.join(LORA_TARGETS)}", type=lora_targets)


@dataclass(frozen=True)
class LoraOptions:
    """A task's LoRA settings, used with ``--finetune lora``."""

    lora_rank: int = option(8, "rank of each LoRA update (--finetune lora)", type=positive_int)
    lora_alpha: float | None = option(help="LoRA updates are scaled by alpha / rank", default_text="= --lora-rank", type=positive_float)
    lora_targets: tuple[str, ...] = lora_targets_option(("query", "value"))  # the paper's and PEFT's choice

    def add_lora(self, model) -> None:
        """Freeze ``model`` and add these LoRA updates to it; a rank or target it cannot take is a usage error."""
        try:
            enable_lora(model, LoraConfig(self.lora_rank, self.lora_alpha, self.lora_targets))
        except ValueError as error:
            raise UsageError(f"--finetune lora: {error}") from None

    def lora_facts(self) -> dict:
        """The LoRA settings as the run's JSON line reports them."""
        return {"rank": self.lora_rank, "alpha": self.lora_alpha or self.lora_rank, "targets": list(self.lora_targets)}

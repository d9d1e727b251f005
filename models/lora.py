"""LoRA (Hu et al. 2021) with Keras's own layers: a frozen kernel ``W`` plus a trained low-rank update,
``W + (alpha / rank) * A @ B``, on the layers named as targets.

Keras 3 builds it into `Dense`, `EinsumDense` and `Embedding` (``layer.enable_lora(rank, lora_alpha)``):
``B`` starts at zero, so the model starts equal to the base. For an attention projection such as
``query`` (an `EinsumDense` with kernel [hidden, heads, head_size]), Keras factors the kernel's last
axis: ``A`` is [hidden, heads, rank] and ``B`` [rank, head_size], each head its own rank-``rank`` update
sharing ``B`` (Hugging Face PEFT factors the whole [hidden, hidden] matrix: fewer parameters per rank).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras

# Layer names LoRA can target in keras-hub's Transformer layers (BERT's encoder, the GPT's decoder).
LORA_TARGETS = ("query", "key", "value", "attention_output", "feedforward_intermediate_dense", "feedforward_output_dense")


@dataclass(frozen=True)
class LoraConfig:
    """``alpha`` None = ``rank`` (a scale of 1, as Keras's default)."""

    rank: int = 8
    alpha: float | None = None
    targets: tuple[str, ...] = ("query", "value")


def sublayers(model: keras.Layer) -> list:
    """Every layer inside ``model``, nested ones included (as keras-hub's ``Backbone.enable_lora`` walks them)."""
    return list(model._flatten_layers(include_self=False))


def lora_layers(model: keras.Layer) -> list:
    """The layers of ``model`` that carry a LoRA update."""
    return [layer for layer in sublayers(model) if getattr(layer, "lora_enabled", False)]


def layer_width(layer) -> int:
    """The largest rank that a LoRA update of this layer's kernel can have."""
    shape = tuple(layer._kernel.shape)
    return min(math.prod(shape[:-1]), shape[-1])


def enable_lora(encoder: keras.Layer, config: LoraConfig) -> list:
    """Freeze every weight of ``encoder`` (a BERT encoder, a whole GPT) and add LoRA to its layers named
    in ``config.targets`` (their biases stay frozen, as in the paper and PEFT's default); returns those layers."""
    targets = [layer for layer in sublayers(encoder) if layer.name in config.targets and hasattr(layer, "enable_lora")]
    missing = sorted(set(config.targets) - {layer.name for layer in targets})
    if missing:
        raise ValueError(f"no layer named {', '.join(missing)} in {encoder.name} (LoRA targets: {', '.join(LORA_TARGETS)})")
    if config.rank < 1:
        raise ValueError(f"the LoRA rank must be at least 1, not {config.rank}")
    for layer in targets:
        if config.rank > layer_width(layer):
            raise ValueError(f"LoRA rank {config.rank} is above the width {layer_width(layer)} of layer {layer.name} in {encoder.name}")
    encoder.trainable = True
    for layer in sublayers(encoder):
        layer.trainable = False
    for layer in targets:
        layer.trainable = True
        layer.enable_lora(config.rank, lora_alpha=config.alpha)
        if getattr(layer, "bias", None) is not None:
            layer.bias.trainable = False
    return targets

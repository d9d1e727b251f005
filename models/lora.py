"""LoRA (Hu et al. 2021) on Keras's own layers: a frozen kernel ``W`` plus a trained low-rank update,
``W + (alpha / rank) * A @ B``, on the layers named as targets.

Keras 3 builds LoRA into `Dense`, `EinsumDense` and `Embedding` (``layer.enable_lora(rank, lora_alpha)``):
``B`` starts at zero, so the model starts equal to the base. For `Dense` layers (the feed-forward ones)
that is the paper's update. For an attention projection such as ``query`` (an `EinsumDense` with kernel
[hidden, heads, head_size]) Keras factors the kernel's last axis only, one update per head (``A`` is
[hidden, heads, rank]): ``heads`` times the paper's parameters at one rank. `MatrixLoraEinsumDense`
factors the whole [inputs, outputs] matrix instead, as the paper and Hugging Face PEFT do (``A`` [hidden,
rank], ``B`` [rank, heads, head_size]), and applies the update to the activations, ``(x A) B``.
"""

from __future__ import annotations

import contextlib
import math
import re
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


@dataclass(frozen=True)
class EinsumSplit:
    """An `EinsumDense` equation taken apart: which kernel axes the inputs contract (``inputs``), which
    the outputs keep (``outputs``), the two equations of ``(x A) B`` and the one of ``A B``."""

    kernel: str
    inputs: str
    outputs: str
    down: str  # x A: inputs, A [input axes..., r] -> [batch..., r]
    up: str  # (x A) B: [batch..., r], B [r, output axes...] -> outputs
    merge: str  # A B: A, B -> [kernel axes...]

    @classmethod
    def of(cls, equation: str) -> EinsumSplit:
        input_spec, kernel, output_spec = re.fullmatch(r"(.+),(\w+)->(.+)", equation.replace(" ", "")).groups()
        rank = next(letter for letter in "zyxwvutsrq" if letter not in equation)
        inputs = "".join(letter for letter in kernel if letter not in output_spec)
        outputs = "".join(letter for letter in kernel if letter in output_spec)
        batch = "".join(letter for letter in input_spec if letter not in inputs)
        return cls(
            kernel, inputs, outputs, down=f"{input_spec},{inputs}{rank}->{batch}{rank}", up=f"{batch}{rank},{rank}{outputs}->{output_spec}",
            merge=f"{inputs}{rank},{rank}{outputs}->{kernel}",
        )

    def sizes(self, kernel_shape) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The shapes of the kernel's input axes and of its output axes."""
        size = dict(zip(self.kernel, kernel_shape))
        return tuple(size[letter] for letter in self.inputs), tuple(size[letter] for letter in self.outputs)


class MatrixLoraEinsumDense(keras.layers.EinsumDense):
    """An `EinsumDense` whose LoRA update factors the whole [inputs, outputs] matrix: ``A`` [input
    axes..., rank], ``B`` [rank, output axes...]. Training adds ``alpha / rank * (x A) B`` to the frozen
    layer's output, so the kernel's full gradient is never formed; saving merges ``A B`` into the kernel
    through Keras's own merge (float and int8 kernels alike), so exports hold no LoRA variable.
    `enable_lora` turns a plain `EinsumDense` into one (its weights untouched)."""

    def enable_lora(self, rank, lora_alpha=None, a_initializer="he_uniform", b_initializer="zeros"):
        if not self.built or self.lora_enabled or self.activation not in (None, keras.activations.linear) or self.quantization_mode not in (None, "int8"):
            raise ValueError(f"LoRA needs {self.name} built, without LoRA yet, without an activation, with a float or int8 kernel")
        self.lora_split = split = EinsumSplit.of(self.equation)
        input_sizes, output_sizes = split.sizes(self._kernel.shape)
        self._tracker.unlock()
        self.lora_kernel_a = self.add_weight(name="lora_kernel_a", shape=(*input_sizes, rank), initializer=a_initializer, dtype="float32")
        self.lora_kernel_b = self.add_weight(name="lora_kernel_b", shape=(rank, *output_sizes), initializer=b_initializer, dtype="float32")
        self._kernel.trainable = False
        self._tracker.lock()
        self.lora_enabled, self.lora_rank = True, rank
        self.lora_alpha = lora_alpha if lora_alpha is not None else rank

    def call(self, inputs, training=None):
        return self._plus_update(super().call, inputs, training)

    def _int8_call(self, inputs, training=None):
        return self._plus_update(super()._int8_call, inputs, training)

    def _plus_update(self, frozen_call, inputs, training):
        """The frozen layer's output (Keras's own call, LoRA off) plus ``alpha / rank * (x A) B``."""
        if not self.lora_enabled:
            return frozen_call(inputs, training=training)
        self.lora_enabled = False
        try:
            outputs = frozen_call(inputs, training=training)
        finally:
            self.lora_enabled = True
        split = self.lora_split
        update = keras.ops.einsum(split.up, keras.ops.einsum(split.down, inputs, self.lora_kernel_a), self.lora_kernel_b)
        return outputs + keras.ops.cast((self.lora_alpha / self.lora_rank) * update, outputs.dtype)

    def lora_update(self):
        """``A B`` laid out as the kernel (unscaled)."""
        return keras.ops.einsum(self.lora_split.merge, self.lora_kernel_a, self.lora_kernel_b)

    @contextlib.contextmanager
    def _as_keras_factors(self):
        """Keras merges ``lora_kernel_a @ lora_kernel_b`` (the last axis factored): for the length of the
        block, show it ``A B`` itself and an identity, whose product is the same update."""
        factors = self.lora_kernel_a, self.lora_kernel_b
        update = self.lora_update()
        object.__setattr__(self, "lora_kernel_a", update)
        object.__setattr__(self, "lora_kernel_b", keras.ops.eye(update.shape[-1], dtype=update.dtype))
        try:
            yield
        finally:
            object.__setattr__(self, "lora_kernel_a", factors[0])
            object.__setattr__(self, "lora_kernel_b", factors[1])

    @property
    def kernel(self):
        if not self.lora_enabled:
            return super().kernel
        with self._as_keras_factors():
            return super().kernel

    def _get_kernel_with_merged_lora(self):
        if not self.lora_enabled or self.quantization_mode is None:  # a float kernel is merged by `kernel`
            return super()._get_kernel_with_merged_lora()
        with self._as_keras_factors():
            return super()._get_kernel_with_merged_lora()


def sublayers(model: keras.Layer) -> list:
    """Every layer inside ``model``, nested ones included (as keras-hub's ``Backbone.enable_lora`` walks them)."""
    return list(model._flatten_layers(include_self=False))


def lora_layers(model: keras.Layer) -> list:
    """The layers of ``model`` that carry a LoRA update."""
    return [layer for layer in sublayers(model) if getattr(layer, "lora_enabled", False)]


def layer_width(layer) -> int:
    """The largest rank that a LoRA update of this layer's kernel can have."""
    if isinstance(layer, keras.layers.EinsumDense):
        return min(math.prod(sizes) for sizes in EinsumSplit.of(layer.equation).sizes(layer._kernel.shape))
    shape = tuple(layer._kernel.shape)
    return min(math.prod(shape[:-1]), shape[-1])


def enable_lora(encoder: keras.Layer, config: LoraConfig) -> list:
    """Freeze every weight of ``encoder`` (a BERT encoder, a whole GPT) and add LoRA to its layers named
    in ``config.targets`` (their biases stay frozen, as in the paper and PEFT's default); returns those layers.
    Attention projections become `MatrixLoraEinsumDense` (the same layer and weights, PEFT's factoring)."""
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
        if type(layer) is keras.layers.EinsumDense:
            layer.__class__ = MatrixLoraEinsumDense  # a subclass that adds methods only: the instance stays valid
        layer.trainable = True
        layer.enable_lora(config.rank, lora_alpha=config.alpha)
        if getattr(layer, "bias", None) is not None:
            layer.bias.trainable = False
    return targets

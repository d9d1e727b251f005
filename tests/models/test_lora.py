"""LoRA on an attention projection factors the whole [inputs, outputs] matrix (the paper's and PEFT's
update), starts equal to the base, and merges into the kernel when saved, float or int8."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from models.lora import LoraConfig, MatrixLoraEinsumDense, enable_lora, lora_layers

RNG = np.random.default_rng(0)
INPUTS = RNG.normal(size=(3, 5, 8)).astype("float32")


def attention() -> keras.Model:
    """keras's self-attention: projections query/key/value [width 8, 2 heads, 4], attention_output [2, 4, 8]."""
    keras.utils.set_random_seed(0)
    tokens = keras.Input((5, 8))
    return keras.Model(tokens, keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)(tokens, tokens))


def projection_inputs(name):
    """Inputs of the projection's own shape: INPUTS [3, 5, width 8] for ``query``, random
    [3, 5, 2 heads, 4] for ``attention_output``."""
    if name == "query":
        return INPUTS
    return RNG.normal(size=(3, 5, 2, 4)).astype("float32")


def by_hand(layer, inputs, kernel):
    """The update as the paper writes it: the kernel (input axes first) as an [inputs, outputs] matrix W,
    W + alpha / r * A B."""
    width = int(np.prod(layer.lora_kernel_a.shape[:-1]))
    a = layer.lora_kernel_a.numpy().reshape(width, -1)
    b = layer.lora_kernel_b.numpy().reshape(a.shape[1], -1)
    merged = (kernel.reshape(width, -1) + layer.lora_alpha / layer.lora_rank * a @ b).reshape(kernel.shape)
    return np.einsum(layer.equation, inputs, merged) + layer.bias.numpy(), merged


@pytest.mark.parametrize("name", ["query", "attention_output"])
def test_an_attention_projection_gets_the_papers_update_and_merges_it_when_saved(name, tmp_path):
    model = attention()
    [layer] = enable_lora(model, LoraConfig(rank=3, alpha=6, targets=(name,)))
    inputs = projection_inputs(name)
    assert isinstance(layer, MatrixLoraEinsumDense) and layer.name == name
    assert int(np.prod(layer.lora_kernel_a.shape)) == 8 * 3 and int(np.prod(layer.lora_kernel_b.shape)) == 3 * 8  # r (d_in + d_out)
    assert [weight.name for weight in model.trainable_weights] == ["lora_kernel_a", "lora_kernel_b"]
    base = np.einsum(layer.equation, inputs, layer._kernel.numpy()) + layer.bias.numpy()
    np.testing.assert_allclose(layer(inputs).numpy(), base, atol=1e-6)  # B starts at zero

    layer.lora_kernel_b.assign(RNG.normal(size=layer.lora_kernel_b.shape).astype("float32"))  # as after training
    expected, merged = by_hand(layer, inputs, layer._kernel.numpy())
    np.testing.assert_allclose(layer(inputs).numpy(), expected, atol=1e-5)

    model.save_weights(tmp_path / "merged.weights.h5")  # Keras merges LoRA layers when it saves
    plain = attention()
    plain.load_weights(tmp_path / "merged.weights.h5")
    [plain_layer] = [sub for sub in plain._flatten_layers(include_self=False) if sub.name == name]
    np.testing.assert_allclose(plain_layer._kernel.numpy(), merged, atol=1e-5)
    np.testing.assert_allclose(plain_layer(inputs).numpy(), expected, atol=1e-5)


def test_over_an_int8_base_the_update_is_added_and_merged_in_int8():
    model = attention()
    model.quantize("int8")
    [layer] = [sub for sub in model._flatten_layers(include_self=False) if sub.name == "query"]
    base = layer(INPUTS).numpy()
    enable_lora(model, LoraConfig(rank=2, targets=("query",)))
    np.testing.assert_array_equal(layer(INPUTS).numpy(), base)
    layer.lora_kernel_b.assign(RNG.normal(size=layer.lora_kernel_b.shape).astype("float32"))
    update = layer.lora_kernel_a.numpy() @ layer.lora_kernel_b.numpy().reshape(2, -1)
    np.testing.assert_allclose(layer(INPUTS).numpy() - base, np.einsum("abc,cd->abd", INPUTS, update).reshape(base.shape), atol=1e-4)
    kernel, scale, _ = layer._get_kernel_with_merged_lora()
    dequantized = kernel.numpy() / layer._adjust_scale_for_dequant(scale).numpy()
    float_kernel = layer._kernel.numpy() / layer._adjust_scale_for_dequant(layer.kernel_scale).numpy()
    assert kernel.dtype == "int8"
    np.testing.assert_allclose(dequantized, float_kernel + update.reshape(float_kernel.shape), atol=np.abs(dequantized).max() / 100)
    assert lora_layers(model) == [layer]


def test_a_rank_above_the_matrix_width_is_refused():
    model = attention()
    with pytest.raises(ValueError, match="rank 9 is above the width 8 of layer query"):
        enable_lora(model, LoraConfig(rank=9, targets=("query",)))

"""The GPT-style Transformer: causal by construction, its cached decoding equal to the full forward
pass, trained and reported by the shared trainer like the LSTM."""

from __future__ import annotations

import numpy as np
import pytest

from models.gpt import GptConfig, attention_scores, build_gpt, empty_cache, forward_with_cache
from tests.support.commands import run_in_process

TINY = GptConfig(vocab_size=20, context_length=16, num_layers=2, num_heads=2, embedding_dim=16)


@pytest.fixture(scope="module")
def model():
    import keras

    keras.utils.set_random_seed(0)
    return build_gpt(TINY)


def test_a_token_never_sees_the_tokens_after_it(model):
    tokens = np.random.default_rng(0).integers(0, TINY.vocab_size, size=(1, 12)).astype("int32")
    changed = tokens.copy()
    changed[0, 8:] = (changed[0, 8:] + 1) % TINY.vocab_size
    before, after = model.predict(tokens, verbose=0), model.predict(changed, verbose=0)
    np.testing.assert_allclose(before[0, :8], after[0, :8], atol=1e-6)
    assert not np.allclose(before[0, 8:], after[0, 8:])


def test_cached_decoding_equals_the_full_forward_pass(model):
    tokens = np.random.default_rng(1).integers(0, TINY.vocab_size, size=(2, 10)).astype("int32")
    full = model.predict(tokens, verbose=0)
    logits, cache = forward_with_cache(model, tokens[:, :4], empty_cache(model, 2), 0)  # the prompt at once
    steps = [np.asarray(logits)]
    for position in range(4, 10):  # then one token at a time
        logits, cache = forward_with_cache(model, tokens[:, position : position + 1], cache, position)
        steps.append(np.asarray(logits))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-4)


def test_attention_weights_are_causal_softmax_rows(model):
    tokens = np.arange(8, dtype="int32")[None]
    scores = np.asarray(attention_scores(model, tokens, layer_index=1))
    assert scores.shape == (1, TINY.num_heads, 8, 8)
    np.testing.assert_allclose(scores.sum(axis=-1), 1.0, atol=1e-5)
    assert np.all(np.triu(scores[0, 0], k=1) == 0)


def test_gpt_run_reports_like_the_lstm(trained_gpt):
    summary = trained_gpt.summary
    metrics = summary["metrics"]
    assert summary["model"] == "gpt" and summary["epochs_trained"] == 1
    assert metrics["perplexity"] == pytest.approx(np.exp(metrics["validation_loss"]), rel=1e-6)
    assert metrics["bits_per_char"] == pytest.approx(metrics["validation_loss"] / np.log(2), rel=1e-6)
    assert metrics["validation_loss"] < np.log(trained_gpt.data.tokenizer.vocab_size)  # learned something
    assert summary["precision"] == "float32" and summary["jit_compile"] is False  # too short a run to probe
    assert summary["auto"]["decided_by"].startswith("a short run")
    assert trained_gpt.model.count_params() < 50_000


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--size", "huge"], "invalid choice: 'huge'"),
        (["--num-heads", "3", "--embedding-dim", "32"], "not divisible"),
        (["--dropout-rate", "1.5"], "dropout"),
    ],
)
def test_bad_gpt_flags_are_one_clear_error(flags, message, tmp_path):
    done = run_in_process("app.train", "gpt", *flags, "--epochs", "1", "--max-train-samples", "5000", "--runs-dir", str(tmp_path))
    assert done.returncode == 2
    assert message in done.stderr.strip().splitlines()[-1]

"""In-graph generation: the ``generate`` and ``generate_batch`` signatures of both language-model
exports, called through TensorFlow, saved_model_cli and the command line; their answers checked against
greedy decoding of the plain logits signature and against each other, and bad requests rejected with
clear messages."""

from __future__ import annotations


import numpy as np
import pytest
import tensorflow as tf

from app.exports.generation import SamplingConfig, generate
from app.exports.sampler import MAX_NEW_TOKENS, MAX_PROMPTS
from app.training.devices import AS_EXPORTED, ASSUME_BF16_CPU
from tests.support.commands import last_json_line, run_app, run_in_process


@pytest.fixture(scope="module", params=["lm", "gpt"])
def export(request):
    """(export folder, loaded SavedModel) of the LSTM and of the GPT."""
    result = request.getfixturevalue(f"trained_{request.param}")
    path = result.summary["export_dir"]
    return path, tf.saved_model.load(path)


def call_generate(loaded, prompt="ROMEO:", max_new_tokens=40, temperature=0.8, top_k=10, seed=0) -> dict:
    outputs = loaded.signatures["generate"](
        prompt=tf.constant(prompt), max_new_tokens=tf.constant(max_new_tokens), temperature=tf.constant(float(temperature)),
        top_k=tf.constant(top_k), seed=tf.constant(seed),
    )
    return {"text": outputs["text"].numpy().decode("utf-8"), "token_ids": outputs["token_ids"].numpy().tolist()}


def call_generate_batch(loaded, prompts, max_new_tokens=40, temperature=0.8, top_k=10, seed=0) -> dict:
    outputs = loaded.signatures["generate_batch"](
        prompts=tf.constant(prompts, tf.string), max_new_tokens=tf.constant(max_new_tokens),
        temperature=tf.constant(float(temperature)), top_k=tf.constant(top_k), seed=tf.constant(seed),
    )
    return {"texts": [text.decode("utf-8") for text in outputs["texts"].numpy()], "token_ids": outputs["token_ids"].numpy().tolist()}


def greedy_from_logits(loaded, prompt: str, count: int) -> list[int]:
    """Greedy decoding by re-reading the whole sequence through ``serving_default`` for every token."""
    tokens = loaded.signatures["encode"](text=tf.constant(prompt))["token_ids"].numpy().tolist()
    start = len(tokens)
    for _ in range(count):
        logits = loaded.signatures["serving_default"](token_ids=tf.constant([tokens]))["logits"].numpy()[0, -1]
        logits[0] = -np.inf  # never the out-of-vocabulary id
        tokens.append(int(logits.argmax()))
    return tokens[start:]


def test_same_seed_same_text_and_the_ids_decode_to_it(export):
    _, loaded = export
    first = call_generate(loaded, seed=7)
    assert call_generate(loaded, seed=7) == first
    assert call_generate(loaded, seed=8) != first
    assert len(first["token_ids"]) == 40
    decoded = loaded.signatures["decode"](token_ids=tf.constant(first["token_ids"], tf.int32))["text"].numpy().decode()
    assert decoded == first["text"]


def test_top_k_1_and_temperature_0_equal_greedy_decoding_of_the_logits(export):
    _, loaded = export
    greedy = greedy_from_logits(loaded, "First Citizen:", 16)  # 14 + 16 tokens: within the tiny GPT's context of 32
    assert call_generate(loaded, "First Citizen:", 16, temperature=1.0, top_k=1, seed=3)["token_ids"] == greedy
    assert call_generate(loaded, "First Citizen:", 16, temperature=0.0, top_k=0, seed=5)["token_ids"] == greedy


def test_long_generations_run_past_the_context(export):
    _, loaded = export
    out = call_generate(loaded, max_new_tokens=300)  # the tiny GPT's context is 32 tokens
    assert len(out["token_ids"]) == 300 and 0 not in out["token_ids"]


PROMPTS = ["ROMEO:", "JULIET: O", "First Citizen:\nBefore we", "A"]  # unequal lengths


def test_a_batch_continues_each_prompt_at_its_own_positions(export):
    _, loaded = export
    greedy = call_generate_batch(loaded, PROMPTS, 30, temperature=0, top_k=0)
    alone = [call_generate(loaded, prompt, 30, temperature=0, top_k=0) for prompt in PROMPTS]
    assert greedy["token_ids"] == [one["token_ids"] for one in alone]
    assert greedy["texts"] == [one["text"] for one in alone]
    sampled = call_generate_batch(loaded, PROMPTS * 2, 30, seed=7)
    assert sampled == call_generate_batch(loaded, PROMPTS * 2, 30, seed=7)  # same seed, same texts
    assert sampled["token_ids"][:4] != sampled["token_ids"][4:]  # each row draws its own tokens
    assert 0 not in np.ravel(sampled["token_ids"])
    long = call_generate_batch(loaded, ["ROMEO:" * 20, "A"], 100)  # the tiny GPT's context is 32 tokens
    assert np.shape(long["token_ids"]) == (2, 100)


@pytest.mark.parametrize(
    "prompts, message",
    [
        ([], f"give between 1 and {MAX_PROMPTS} prompts"),
        (["ROMEO:"] * (MAX_PROMPTS + 1), f"give between 1 and {MAX_PROMPTS} prompts"),
        (["ROMEO:", ""], "the prompt is empty"),
        (["ROMEO:", "\u4e2d"], "outside the model's vocabulary"),
    ],
)
def test_bad_batches_are_refused_with_a_clear_message(export, prompts, message):
    from app.serving.servable import model_error_message

    _, loaded = export
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        call_generate_batch(loaded, prompts)
    assert message in model_error_message(error.value)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"prompt": ""}, "the prompt is empty"),
        ({"prompt": "ROMEO\u00e9\u4e2d"}, "outside the model's vocabulary"),
        ({"max_new_tokens": 0}, "max_new_tokens must be between 1 and"),
        ({"max_new_tokens": MAX_NEW_TOKENS + 1}, "max_new_tokens must be between 1 and"),
        ({"temperature": -0.5}, "temperature must be 0"),
        ({"top_k": -1}, "top_k must be between 0"),
        ({"top_k": 10_000}, "top_k must be between 0"),
    ],
)
def test_bad_requests_are_refused_with_a_clear_message(export, change, message):
    from app.serving.servable import model_error_message

    _, loaded = export
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        call_generate(loaded, **change)
    assert message in model_error_message(error.value)


def test_saved_model_cli_runs_generate_like_tensorflow(export, tmp_path):
    path, loaded = export
    expected = call_generate(loaded, "ROMEO:", 30, 0.8, 10, 4)
    cli = run_app(
        "tensorflow.python.tools.saved_model_cli", "run", "--dir", path, "--tag_set", "serve",
        "--signature_def", "generate", "--outdir", str(tmp_path), "--input_exprs",
        "prompt='ROMEO:';max_new_tokens=30;temperature=0.8;top_k=10;seed=4", timeout=180,
    )
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert np.load(tmp_path / "token_ids.npy").tolist() == expected["token_ids"]


def test_generate_command_uses_the_signature(export):
    path, loaded = export
    done = run_app(
        "app.generate", "--model-dir", path, "--prompt", "ROMEO:", "--length", "30", "--top-k", "10", "--seed", "4",
        env={ASSUME_BF16_CPU: "1"},  # the default is the export's own precision, even on a bf16 CPU
    )
    assert done.returncode == 0, done.stderr
    result = last_json_line(done.stdout)
    assert result["text"] == "ROMEO:" + call_generate(loaded, "ROMEO:", 30, 0.8, 10, 4)["text"]
    assert result["precision"] == AS_EXPORTED and result["threads"] == 1  # one thread: the same text, faster


def test_generate_command_continues_several_prompts_in_one_batch(export):
    path, loaded = export
    done = run_in_process("app.generate", "--model-dir", path, "--prompt", *PROMPTS, "--length", "30", "--seed", "4")
    assert done.returncode == 0, done.stderr
    result = last_json_line(done.stdout)
    expected = call_generate_batch(loaded, PROMPTS, 30, 0.8, 20, 4)["texts"]
    assert result["prompts"] == PROMPTS and result["texts"] == [prompt + text for prompt, text in zip(PROMPTS, expected)]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--prompt", ""], "the prompt is empty"),
        (["--prompt", "\u4e2d"], "outside the model's vocabulary"),
        (["--length", str(MAX_NEW_TOKENS + 1)], "max_new_tokens must be between 1 and"),
        (["--temperature", "-1"], "must be zero or more"),
    ],
)
def test_generate_command_exits_2_with_one_clear_line_on_bad_input(trained_lm, flags, message):
    # The checks are the same graph code in both exports (tested above for each); the CLI once.
    failed = run_in_process("app.generate", "--model-dir", trained_lm.summary["export_dir"], *flags)
    assert failed.returncode == 2, failed.stderr
    last_line = failed.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error:") and message in last_line, last_line


def test_exports_without_generate_still_use_the_per_token_loop(trained_lm):
    path = trained_lm.summary["export_dir"]
    looped = generate(path, "ROMEO:", SamplingConfig(length=20, temperature=0, seed=0), in_graph=False)
    in_graph = generate(path, "ROMEO:", SamplingConfig(length=20, temperature=0, seed=0))
    # Greedy: the loop re-reads only the last 50 tokens per step, which here is the whole text.
    assert looped == in_graph and len(looped) == len("ROMEO:") + 20

"""Text generation inside the SavedModel: the ``generate`` signature of the language-model exports.

One call reads a prompt and returns the whole continuation. The sampling loop is a ``tf.while_loop``
in the graph, and the model runs one step per new token (an LSTM carries its state, a Transformer
keeps a key/value cache; see ``models.decoding``). Each token is drawn with a stateless random op
seeded by (seed, step), so the same request gives the same text wherever the graph runs.
"""

from __future__ import annotations

import tensorflow as tf

from models.decoding import IncrementalDecoder

SIGNATURE_NAME = "generate"
# Longest continuation one request may ask for (a server's request should not run for minutes).
MAX_NEW_TOKENS = 2000
INPUT_SIGNATURE = [
    tf.TensorSpec([], tf.string, name="prompt"),
    tf.TensorSpec([], tf.int32, name="max_new_tokens"),
    tf.TensorSpec([], tf.float32, name="temperature"),
    tf.TensorSpec([], tf.int32, name="top_k"),
    tf.TensorSpec([], tf.int32, name="seed"),
]


def pick_next_token(logits, temperature, top_k, seed, step):
    """One token id from next-token ``logits`` [1, vocab]: never id 0 (out of vocabulary); only the
    ``top_k`` most likely (0 = all); ``temperature`` 0 = the most likely, else sampled."""
    logits = tf.cast(logits[0], tf.float32)
    logits = tf.tensor_scatter_nd_update(logits, [[0]], [float("-inf")])

    def keep_top_k():
        kth_largest = tf.math.top_k(logits, k=top_k).values[-1]
        return tf.where(logits < kth_largest, float("-inf"), logits)

    logits = tf.cond(top_k > 0, keep_top_k, lambda: logits)

    def sample():
        draw = tf.random.stateless_categorical(logits[None] / temperature, 1, seed=tf.stack([seed, step]), dtype=tf.int32)
        return draw[0, 0]

    return tf.cond(temperature > 0, sample, lambda: tf.argmax(logits, output_type=tf.int32))


def sample_tokens(decoder: IncrementalDecoder, prompt_ids, max_new_tokens, temperature, top_k, seed):
    """The ids of ``max_new_tokens`` tokens continuing ``prompt_ids`` (1-D int32)."""
    prompt_length = tf.size(prompt_ids)
    context = prompt_ids if decoder.context_length is None else prompt_ids[-decoder.context_length :]
    logits, state = decoder.prefill(context[None])
    # Prompt and continuation in one fixed-size buffer, so the loop's shapes never change.
    tokens = tf.concat([prompt_ids, tf.zeros([max_new_tokens], tf.int32)], axis=0)

    def body(step, tokens, logits, state):
        token = pick_next_token(logits, temperature, top_k, seed, step)
        position = prompt_length + step
        tokens = tf.tensor_scatter_nd_update(tokens, [[position]], [token])
        logits, state = decoder.step(tokens[: position + 1], state)
        return step + 1, tokens, logits, state

    _, tokens, _, _ = tf.while_loop(lambda step, *_: step < max_new_tokens, body, (tf.constant(0), tokens, logits, state))
    return tokens[prompt_length:]


def generate_endpoint(decoder: IncrementalDecoder, tokenizer):
    """The ``generate`` signature's function: checks the request (an InvalidArgumentError with a
    clear message, which servers answer as 400), samples, and decodes the continuation."""
    vocab_size = tokenizer.vocab_size

    def generate(prompt, max_new_tokens, temperature, top_k, seed):
        prompt_ids = tokenizer.encode(prompt)
        unknown = tf.boolean_mask(tokenizer.split(prompt), tf.equal(prompt_ids, 0))
        checks = [
            tf.debugging.Assert(tf.size(prompt_ids) > 0, ["the prompt is empty: give at least one character"]),
            tf.debugging.Assert(
                tf.size(unknown) == 0,
                ["the prompt has tokens outside the model's vocabulary:", tf.strings.reduce_join(unknown, separator=" ")],
            ),
            tf.debugging.Assert(
                (max_new_tokens > 0) & (max_new_tokens <= MAX_NEW_TOKENS),
                [f"max_new_tokens must be between 1 and {MAX_NEW_TOKENS}, not", max_new_tokens],
            ),
            tf.debugging.Assert(temperature >= 0, ["temperature must be 0 (greedy) or more, not", temperature]),
            tf.debugging.Assert(
                (top_k >= 0) & (top_k <= vocab_size),
                [f"top_k must be between 0 (no cut) and the vocabulary size {vocab_size}, not", top_k],
            ),
        ]
        with tf.control_dependencies(checks):
            new_ids = sample_tokens(decoder, prompt_ids, max_new_tokens, temperature, top_k, seed)
        return {"text": tokenizer.decode(new_ids), "token_ids": new_ids}

    return generate

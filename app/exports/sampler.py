"""Text generation inside the SavedModel: the ``generate`` and ``generate_batch`` signatures of the
language-model exports.

One call reads a prompt (or a batch of prompts) and returns the whole continuation. The sampling loop
is a ``tf.while_loop`` in the graph, and the model runs one step per new token (an LSTM carries its
state, a Transformer keeps a key/value cache; see ``models.decoding``). Each token is drawn with a
stateless random op seeded by (seed, step), so the same request gives the same text wherever the graph
runs. A batch runs its prompts side by side: one model step serves every row, which is where batching
pays (a step at batch 1 is mostly the cost of running small ops, not arithmetic).
"""

from __future__ import annotations

import tensorflow as tf

from models.decoding import IncrementalDecoder

SIGNATURE_NAME = "generate"
BATCH_SIGNATURE_NAME = "generate_batch"
# Longest continuation one request may ask for (a server's request should not run for minutes).
MAX_NEW_TOKENS = 2000
MAX_PROMPTS = 64  # largest batch one request may ask for, for the same reason
SAMPLING_SIGNATURE = [
    tf.TensorSpec([], tf.int32, name="max_new_tokens"),
    tf.TensorSpec([], tf.float32, name="temperature"),
    tf.TensorSpec([], tf.int32, name="top_k"),
    tf.TensorSpec([], tf.int32, name="seed"),
]
INPUT_SIGNATURE = [tf.TensorSpec([], tf.string, name="prompt"), *SAMPLING_SIGNATURE]
BATCH_INPUT_SIGNATURE = [tf.TensorSpec([None], tf.string, name="prompts"), *SAMPLING_SIGNATURE]


def pick_next_tokens(logits, temperature, top_k, seed, step):
    """One token id per row of next-token ``logits`` [batch, vocab]: never id 0 (out of vocabulary);
    only the ``top_k`` most likely (0 = all); ``temperature`` 0 = the most likely, else sampled."""
    logits = tf.cast(logits, tf.float32)
    logits = tf.where(tf.range(tf.shape(logits)[-1]) == 0, float("-inf"), logits)

    def keep_top_k():
        kth_largest = tf.math.top_k(logits, k=top_k).values[:, -1:]
        return tf.where(logits < kth_largest, float("-inf"), logits)

    logits = tf.cond(top_k > 0, keep_top_k, lambda: logits)

    def sample():
        draw = tf.random.stateless_categorical(logits / temperature, 1, seed=tf.stack([seed, step]), dtype=tf.int32)
        return draw[:, 0]

    return tf.cond(temperature > 0, sample, lambda: tf.argmax(logits, axis=-1, output_type=tf.int32))


def sample_tokens(decoder: IncrementalDecoder, prompt_ids: tf.RaggedTensor, max_new_tokens, temperature, top_k, seed):
    """[batch, max_new_tokens] ids continuing each row of ``prompt_ids`` (ragged int32 [batch, (length)]).

    Prompts may differ in length: every row reads the shortest prompt's length at once, then each step
    feeds the next prompt token to rows still inside their prompt and a sampled token to the others, so
    each row sees exactly its own text at its own positions (no padding for the model to attend to).
    """
    lengths = tf.cast(prompt_ids.row_lengths(), tf.int32)
    shortest, longest = tf.reduce_min(lengths), tf.reduce_max(lengths)
    batch_size = tf.shape(lengths)[0]
    # Prompts and continuations in one fixed-size buffer, so the loop's shapes never change.
    tokens = tf.concat([prompt_ids.to_tensor(), tf.zeros([batch_size, max_new_tokens], tf.int32)], axis=1)
    start = 0 if decoder.context_length is None else tf.maximum(0, shortest - decoder.context_length)
    logits, state = decoder.prefill(tokens[:, start:shortest])
    rows = tf.range(batch_size)

    def body(step, tokens, logits, state):
        position = shortest + step
        sampled = pick_next_tokens(logits, temperature, top_k, seed, step)
        token = tf.where(position < lengths, tokens[:, position], sampled)
        tokens = tf.tensor_scatter_nd_update(tokens, tf.stack([rows, tf.fill([batch_size], position)], axis=1), token)
        logits, state = decoder.step(tokens[:, : position + 1], state)
        return step + 1, tokens, logits, state

    steps = longest - shortest + max_new_tokens
    _, tokens, _, _ = tf.while_loop(lambda step, *_: step < steps, body, (tf.constant(0), tokens, logits, state))
    return tf.gather(tokens, lengths[:, None] + tf.range(max_new_tokens)[None], batch_dims=1)


def generate_endpoints(decoder: IncrementalDecoder, tokenizer) -> tuple:
    """The functions of the ``generate`` (one prompt) and ``generate_batch`` (a batch) signatures:
    both check the request (an InvalidArgumentError with a clear message, which servers answer as
    400), sample, and decode the continuations."""
    vocab_size = tokenizer.vocab_size

    # One traced graph serves both signatures: ``generate`` calls this function instead of tracing the
    # sampling loop a second time (tracing the loop is most of an export's time for a small model).
    @tf.function(input_signature=BATCH_INPUT_SIGNATURE, autograph=False)
    def generate_batch(prompts, max_new_tokens, temperature, top_k, seed):
        prompt_ids = tokenizer.encode(prompts)
        unknown = tf.boolean_mask(tokenizer.split(prompts).flat_values, tf.equal(prompt_ids.flat_values, 0))
        checks = [
            tf.debugging.Assert(
                (tf.size(prompts) > 0) & (tf.size(prompts) <= MAX_PROMPTS),
                [f"give between 1 and {MAX_PROMPTS} prompts, not", tf.size(prompts)],
            ),
            tf.debugging.Assert(tf.reduce_all(prompt_ids.row_lengths() > 0), ["the prompt is empty: give at least one character"]),
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
        return {"texts": tokenizer.decode(new_ids), "token_ids": new_ids}

    def generate(prompt, max_new_tokens, temperature, top_k, seed):
        outputs = generate_batch(prompt[None], max_new_tokens, temperature, top_k, seed)
        return {"text": outputs["texts"][0], "token_ids": outputs["token_ids"][0]}

    return generate, generate_batch

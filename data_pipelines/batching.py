"""The `tf.data` steps every pipeline shares: cache, shuffle, batch (fixed or length-bucketed), prefetch."""

from __future__ import annotations

from typing import Callable, Sequence

import tensorflow as tf

SHUFFLE_BUFFER = 10_000


def batch_for_training(
    dataset: tf.data.Dataset,
    batch_size: int,
    shuffle_seed: int | None = None,
    drop_remainder: bool = False,
    cache: bool = True,
) -> tf.data.Dataset:
    """Cache the examples once (unless they differ every epoch), reshuffle them every epoch (when a
    seed is given), batch, prefetch."""
    if cache:
        dataset = dataset.cache()
    if shuffle_seed is not None:
        dataset = dataset.shuffle(SHUFFLE_BUFFER, seed=shuffle_seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def bucket_by_length(
    dataset: tf.data.Dataset,
    bucket_lengths: Sequence[int],
    batch_size: int,
    length_fn: Callable[..., tf.Tensor],
    pad_value: int = 0,
) -> tf.data.Dataset:
    """Group variable-length examples into batches of similar length, each padded to its bucket's length.

    An example of length ``n`` goes to the first bucket whose length is >= ``n`` and is padded with
    ``pad_value`` to exactly that length, so a model only ever sees ``len(bucket_lengths)`` shapes
    (one compiled graph per bucket under XLA) and short sentences are not padded to the longest one.
    Every example comes out exactly once; the last batch of a bucket may be smaller. Examples longer
    than the largest bucket are an error: truncate them first.
    """
    lengths = sorted(set(int(length) for length in bucket_lengths))
    longest = lengths[-1]

    def checked_length(*example):
        length = tf.cast(length_fn(*example), tf.int32)
        tf.debugging.assert_less_equal(
            length, longest, message=f"example longer than the largest bucket ({longest}); truncate first"
        )
        return length

    return dataset.bucket_by_sequence_length(
        element_length_func=checked_length,
        bucket_boundaries=[length + 1 for length in lengths],
        bucket_batch_sizes=[batch_size] * (len(lengths) + 1),
        padding_values=pad_value,
        pad_to_bucket_boundary=True,
    )

"""Lines of text as masked-language-modelling batches: BERT's pretraining input.

Each line is tokenized once into ``[CLS] word pieces [SEP]`` (cut to ``max_length``) and cached;
batches group lines of similar length. Masking is *dynamic*: keras-hub's ``MaskedLMMaskGenerator``
picks new positions every epoch (15 % of the word pieces; of those 80 % become ``[MASK]``, 10 % a
random word piece, 10 % stay), so the model never sees the same puzzle twice. Held-out batches are
masked once and cached, so their loss is comparable from epoch to epoch.

For next-sentence prediction (`data_pipelines.next_sentence`) each pair is packed as
``[CLS] A [SEP] B [SEP]`` with segment ids 0 for ``[CLS] A [SEP]`` and 1 for ``B [SEP]`` (the
preprocessor trims the longer segment first), masked the same way, with its ``is_next`` label.
Training pairs are drawn anew each epoch, so they are tokenized each epoch too (not cached).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras_hub
import numpy as np
import tensorflow as tf

from data_pipelines.batching import as_dense, group_by_length, with_counted_length
from data_pipelines.next_sentence import PairCandidates, SentencePairs

TOKENIZE_BATCH = 1024


@dataclass(frozen=True)
class MaskingConfig:
    """How lines become masked batches; the token ids come from the vocabulary's special tokens."""

    vocab_size: int
    mask_id: int
    padding_id: int
    special_ids: tuple[int, ...]  # never masked: [PAD], [CLS], [SEP]
    max_length: int = 128
    batch_size: int = 32
    mask_rate: float = 0.15
    # A fixed number of predicted positions per example (padded with weight 0): fixed shapes for the
    # head; 8 covers 15 % of a line of up to 53 pieces (SST-2's lines average ~13). Segment pairs,
    # ~100 pieces, need more (app.tasks.mlm).
    mask_selection_length: int = 8


def packed_word_ids(lines: list[str], preprocessor, max_length: int) -> tf.data.Dataset:
    """Each line as ``[CLS] pieces [SEP]`` int32 ids at its own length, via the TF-Hub preprocessor."""

    def pack(texts):
        inputs = preprocessor.bert_pack_inputs([preprocessor.tokenize(texts)], seq_length=max_length)
        return tf.RaggedTensor.from_tensor(inputs["input_word_ids"], lengths=tf.reduce_sum(inputs["input_mask"], axis=1))

    return tf.data.Dataset.from_tensor_slices(lines).batch(TOKENIZE_BATCH).map(pack).unbatch().map(as_dense).cache()


def packed_pairs(pairs: SentencePairs | PairCandidates, preprocessor, max_length: int, seed: int = 0) -> tf.data.Dataset:
    """Each pair as ``([CLS] A [SEP] B [SEP]`` ids, their segment ids, ``is_next``) at its own length.

    Fixed `SentencePairs` are packed once and cached; `PairCandidates` are drawn anew (from ``seed``)
    each time the dataset is iterated, that is every epoch.
    """

    def pack(first, second, is_next):
        segments = [preprocessor.tokenize(first), preprocessor.tokenize(second)]
        inputs = preprocessor.bert_pack_inputs(segments, seq_length=max_length)
        lengths = tf.reduce_sum(inputs["input_mask"], axis=1)
        ragged = (tf.RaggedTensor.from_tensor(inputs[name], lengths=lengths) for name in ("input_word_ids", "input_type_ids"))
        return *ragged, is_next

    if isinstance(pairs, SentencePairs):
        slices = (pairs.first, pairs.second, tf.constant(pairs.is_next, tf.int32))
        return tf.data.Dataset.from_tensor_slices(slices).batch(TOKENIZE_BATCH).map(pack).unbatch().map(as_dense).cache()
    draws = np.random.default_rng(seed)

    def drawn_pairs():
        drawn = pairs.draw(draws)
        yield from zip(drawn.first, drawn.second, drawn.is_next)

    signature = (tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.int32))
    examples = tf.data.Dataset.from_generator(drawn_pairs, output_signature=signature)
    return examples.batch(TOKENIZE_BATCH).map(pack).unbatch().map(as_dense)


def masked_lm_batches(lines: list[str], preprocessor, config: MaskingConfig, shuffle_seed: int | None) -> tf.data.Dataset:
    """``(inputs, masked word ids, weights)`` batches for keras-hub's ``BertMaskedLM``.

    With ``shuffle_seed`` (training) the lines are reshuffled and re-masked every epoch; without it
    (held-out) the masks are drawn once and cached.
    """
    return _masked_batches(packed_word_ids(lines, preprocessor, config.max_length), config, shuffle_seed)


def masked_pair_batches(
    pairs: SentencePairs | PairCandidates, preprocessor, config: MaskingConfig, shuffle_seed: int | None
) -> tf.data.Dataset:
    """``(inputs, targets, weights)`` batches for `models.bert.masked_lm.build_pretrainer` with
    next-sentence prediction: targets and weights are keyed by its outputs ``mlm`` (masked
    word ids, 1 for the masked positions) and ``nsp`` (``is_next``, 1 for every pair). Training
    passes `PairCandidates` (new pairs each epoch), held-out scoring fixed `SentencePairs`."""
    return _masked_batches(packed_pairs(pairs, preprocessor, config.max_length, shuffle_seed or 0), config, shuffle_seed)


def _masked_batches(examples: tf.data.Dataset, config: MaskingConfig, shuffle_seed: int | None) -> tf.data.Dataset:
    """Length-grouped, masked batches of ``word_ids`` or ``(word_ids, segment_ids, is_next)`` examples."""
    masker = keras_hub.layers.MaskedLMMaskGenerator(
        vocabulary_size=config.vocab_size,
        mask_selection_rate=config.mask_rate,
        mask_token_id=config.mask_id,
        mask_selection_length=config.mask_selection_length,
        unselectable_token_ids=list(config.special_ids),
    )

    def mask(word_ids, *pair):
        masked = masker(word_ids)
        inputs = {
            "token_ids": masked["token_ids"],
            "segment_ids": pair[0] if pair else tf.zeros_like(word_ids),
            "padding_mask": tf.not_equal(word_ids, config.padding_id),
            "mask_positions": masked["mask_positions"],
        }
        if not pair:
            return inputs, masked["mask_ids"], masked["mask_weights"]
        is_next = pair[1]
        targets = {"mlm": masked["mask_ids"], "nsp": is_next}
        return inputs, targets, {"mlm": masked["mask_weights"], "nsp": tf.ones_like(is_next, tf.float32)}

    batched = group_by_length(
        examples,
        config.batch_size,
        length_fn=lambda word_ids, *pair: tf.shape(word_ids)[0],
        shuffle_seed=shuffle_seed,
        pad_value=config.padding_id,
    ).map(mask, num_parallel_calls=tf.data.AUTOTUNE)
    if shuffle_seed is None:
        batched = batched.cache()
    return with_counted_length(batched)

"""BERT's preprocessor, the official TF-Hub interface: raw strings -> word pieces (TF Text WordPiece,
lower-cased as BERT's reference tokenizer) -> packed ``input_word_ids`` / ``input_mask`` / ``input_type_ids``.

`build_preprocessor` is the TF-Hub object itself (``__call__``, ``tokenize``, ``bert_pack_inputs``,
``get_special_tokens_dict``, on the root and, as officially, on ``tokenize``; `app.exports.hub` saves
it after `trace_for_saving`); `BertTextPreprocessing` is the Keras layer that runs a loaded
preprocessor inside a serving model.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import keras
import tensorflow as tf
import tensorflow_text as tf_text

from data_pipelines.errors import DataError
from models.hub_layer import resolve_handle

BERT_INPUTS = ("input_word_ids", "input_mask", "input_type_ids")
DEFAULT_SEQ_LENGTH = 128
SPECIAL_TOKENS = ("[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]")
# get_special_tokens_dict()'s names, as in the official preprocessor, and their tokens.
SPECIAL_TOKEN_IDS = {"start_of_sequence_id": "[CLS]", "end_of_segment_id": "[SEP]", "padding_id": "[PAD]", "mask_id": "[MASK]"}


class BertPackInputs(tf.Module):
    """Pack one or two segments of word pieces into fixed-length BERT inputs: [CLS] a [SEP] (b [SEP])."""

    def __init__(self, cls_id: int, sep_id: int, pad_id: int):
        super().__init__()
        self.cls_id, self.sep_id, self.pad_id = cls_id, sep_id, pad_id

    def __call__(self, inputs, seq_length=DEFAULT_SEQ_LENGTH):
        segments = [segment.merge_dims(-2, -1) if segment.shape.rank == 3 else segment for segment in inputs]
        segments = [tf.cast(segment, tf.int32) for segment in segments]
        seq_length = tf.cast(seq_length, tf.int32)
        trimmed = tf_text.RoundRobinTrimmer(max_seq_length=seq_length - len(segments) - 1).trim(segments)
        word_ids, type_ids = tf_text.combine_segments(trimmed, start_of_sequence_id=self.cls_id, end_of_segment_id=self.sep_id)
        input_word_ids, input_mask = tf_text.pad_model_inputs(word_ids, max_seq_length=seq_length, pad_value=self.pad_id)
        input_type_ids, _ = tf_text.pad_model_inputs(type_ids, max_seq_length=seq_length, pad_value=0)
        return {"input_word_ids": input_word_ids, "input_mask": input_mask, "input_type_ids": input_type_ids}


class Tokenize(tf.Module):
    """The official preprocessor's ``tokenize`` object: called, strings [N] -> word pieces [N, words,
    pieces]; it also has ``get_special_tokens_dict()``, which code written for that handle may call here."""

    def __init__(self, tokenizer: tf_text.BertTokenizer, lower_case: bool, special_tokens: dict):
        super().__init__()
        self.tokenizer, self.lower_case, self.special_tokens = tokenizer, lower_case, special_tokens

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, text):
        if self.lower_case:
            text = uncased(text)
        return self.tokenizer.tokenize(text)

    @tf.function(input_signature=[])
    def get_special_tokens_dict(self):
        return {name: tf.constant(value, tf.int32) for name, value in self.special_tokens.items()}


def uncased(text: tf.Tensor) -> tf.Tensor:
    """Lower-case and strip accents exactly like BERT's reference BasicTokenizer (lower, NFD, drop marks)."""
    text = tf_text.normalize_utf8(tf.strings.lower(text, encoding="utf-8"), "NFD")
    return tf.strings.regex_replace(text, r"\p{Mn}", "")


def build_preprocessor(vocab_file: Path, lower_case: bool, seq_length: int = DEFAULT_SEQ_LENGTH) -> tf.Module:
    """The TF-Hub preprocessing object: ``__call__``, ``tokenize``, ``bert_pack_inputs``,
    ``get_special_tokens_dict`` and ``serve`` (see the module docstring). Used in memory too, to
    tokenize in ``tf.data`` pipelines."""
    vocabulary = vocab_file.read_text(encoding="utf-8").splitlines()
    missing = [token for token in SPECIAL_TOKENS if token not in vocabulary]
    if missing:
        raise DataError(f"{vocab_file} lacks the special tokens {missing}")
    special_tokens = {"vocab_size": len(vocabulary), **{name: vocabulary.index(token) for name, token in SPECIAL_TOKEN_IDS.items()}}
    table = tf.lookup.StaticVocabularyTable(
        tf.lookup.TextFileInitializer(
            str(vocab_file), tf.string, tf.lookup.TextFileIndex.WHOLE_LINE, tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER
        ),
        num_oov_buckets=1,
    )
    # Lower-casing is done as the checkpoint's own (Hugging Face) tokenizer does it, not with
    # tf_text's lower_case=True, whose NFKC case folding also rewrites e.g. full-width punctuation.
    tokenizer = tf_text.BertTokenizer(table, lower_case=False, token_out_type=tf.int32, unknown_token="[UNK]")
    pack = BertPackInputs(*(special_tokens[name] for name in ("start_of_sequence_id", "end_of_segment_id", "padding_id")))
    pack.__call__ = tf.function(pack.__call__)

    root = tf.Module()
    root.tokenize = tokenize = Tokenize(tokenizer, lower_case, special_tokens)
    root.vocab_file = tf.saved_model.Asset(str(vocab_file))
    root.bert_pack_inputs = pack

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def preprocess(text):
        return pack.__call__([tokenize(text)], seq_length)

    root.__call__ = root.serve = root.serving_default = preprocess
    root.get_special_tokens_dict = tokenize.get_special_tokens_dict
    return root


def trace_for_saving(preprocessor: tf.Module) -> tf.Module:
    """Trace ``bert_pack_inputs`` for one and two segments, of word pieces or of words' pieces, with
    ``seq_length`` a tensor, as the official handle offers it: a SavedModel keeps only traced forms.
    (In memory each call traces on demand, so `build_preprocessor` leaves this to the exporter.)"""
    for rank in (2, 3):
        segment = tf.RaggedTensorSpec([None] * rank, tf.int32, ragged_rank=rank - 1)
        for count in (1, 2):
            preprocessor.bert_pack_inputs.__call__.get_concrete_function([segment] * count, tf.TensorSpec([], tf.int32))
    return preprocessor


def load_preprocessor(handle: str) -> tf.Module:
    """The preprocessor SavedModel at ``handle``, loaded once per process: a load takes ~1 s (its
    many traced functions), and a training needs it for its data and again in the serving model it
    exports. A folder exported again since is loaded again."""
    path = resolve_handle(handle)
    written = os.stat(os.path.join(path, "saved_model.pb"))
    return _load_saved_model(path, written.st_mtime_ns, written.st_size)


@functools.lru_cache(maxsize=8)
def _load_saved_model(path: str, mtime_ns: int, size: int) -> tf.Module:
    return tf.saved_model.load(path)


class BertTextPreprocessing(keras.layers.Layer):
    """Raw strings -> BERT inputs with a TF-Hub preprocessor's ``tokenize`` and ``bert_pack_inputs``,
    cut at ``max_seq_length`` word pieces as in training, and padded only to the batch's longest
    sentence (a single short request does not pay for 128 positions). A list of two string tensors is
    a batch of sentence pairs (segments A and B)."""

    def __init__(self, handle: str, max_seq_length: int = 128, **kwargs):
        super().__init__(trainable=False, **kwargs)
        self.handle, self.max_seq_length = handle, max_seq_length
        self.preprocessor = load_preprocessor(handle)

    def call(self, text):
        segments = list(text) if isinstance(text, (list, tuple)) else [text]
        tokens = [self.preprocessor.tokenize(segment) for segment in segments]
        packed = self.preprocessor.bert_pack_inputs(tokens, seq_length=self.max_seq_length)
        longest = tf.reduce_max(tf.reduce_sum(packed["input_mask"], axis=1))
        return {name: packed[name][:, :longest] for name in BERT_INPUTS}

    def compute_output_spec(self, text):
        first = text[0] if isinstance(text, (list, tuple)) else text
        return {name: keras.KerasTensor((first.shape[0], None), dtype="int32") for name in BERT_INPUTS}

    def get_config(self):
        return {**super().get_config(), "handle": self.handle, "max_seq_length": self.max_seq_length}

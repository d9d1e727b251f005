"""Export a BERT checkpoint as two TF-Hub-format SavedModels: ``<out>/preprocessor`` and ``<out>/encoder``.

``python -m app.export_hub --checkpoint ../shared/models/all-MiniLM-L6-v2 --out saved_models/hub/minilm_l6``

They have the interface of the official TF-Hub BERT models (``bert_en_uncased_preprocess/3`` and
``bert_en_uncased_L-12_H-768_A-12/4``), so code written for those handles runs unchanged on these
local ones (``hub.KerasLayer``, ``hub.load``, Keras 3's ``keras.layers.TFSMLayer``):

- preprocessor: ``__call__`` strings [N] -> ``input_word_ids``, ``input_mask``, ``input_type_ids``
  (int32 [N, seq_length]); ``tokenize`` (strings -> ragged word pieces [N, words, pieces]);
  ``bert_pack_inputs(segments, seq_length)`` (one or two segments); ``get_special_tokens_dict()``
  (``vocab_size``, ``start_of_sequence_id``, ``end_of_segment_id``, ``padding_id``, ``mask_id``).
  WordPiece comes from ``tensorflow_text`` with the checkpoint's ``vocab.txt`` and lower-casing.
- encoder: ``__call__(inputs, training=False)``, that dict -> ``pooled_output`` [N, H] (also as
  ``default``), ``sequence_output`` [N, T, H] and ``encoder_outputs`` (one [N, T, H] per layer), weights
  from keras-hub's ``BertBackbone``; ``variables`` and ``trainable_variables`` for fine-tuning;
  ``vocab_file`` (asset) and ``do_lower_case`` (bool variable), which say how to tokenize; and, only
  when a masked-LM head is exported, ``mlm(inputs, training=False)``: the same inputs plus
  ``masked_lm_positions`` [N, P] -> ``mlm_logits`` [N, P, vocab] and the encoder outputs.
- both: a ``serving_default`` signature with flat outputs (the encoder's ``encoder_outputs_<i>``), and
  the same function as ``serve`` and ``serving_default`` attributes, so ``keras.layers.TFSMLayer(path)``
  loads either with its default ``call_endpoint`` (``"serve"``) or with ``"serving_default"``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Sequence

import keras
import tensorflow as tf
import tensorflow_text as tf_text

from app.cli import ArgumentParser, UsageError, positive_int, run_command
from data_pipelines.sources import REPO_ROOT
from models.bert_classifier import BERT_INPUTS

DEFAULT_CHECKPOINT = REPO_ROOT.parent / "shared" / "models" / "all-MiniLM-L6-v2"
DEFAULT_OUT = Path("saved_models") / "hub" / "minilm_l6"
DEFAULT_SEQ_LENGTH = 128
SPECIAL_TOKENS = ("[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]")
# get_special_tokens_dict()'s names, as in the official preprocessor, and their tokens.
SPECIAL_TOKEN_IDS = {"start_of_sequence_id": "[CLS]", "end_of_segment_id": "[SEP]", "padding_id": "[PAD]", "mask_id": "[MASK]"}


def read_vocabulary(checkpoint: Path) -> tuple[Path, bool]:
    """The checkpoint's WordPiece vocabulary file and whether its tokenizer lower-cases.

    Reads a Hugging Face BERT folder (``vocab.txt``, ``tokenizer_config.json``) or a keras-hub preset
    (``assets/tokenizer/vocabulary.txt``, ``tokenizer.json``).
    """
    huggingface_vocab, keras_hub_vocab = checkpoint / "vocab.txt", checkpoint / "assets" / "tokenizer" / "vocabulary.txt"
    if huggingface_vocab.is_file():
        config_path = checkpoint / "tokenizer_config.json"
        config = json.loads(config_path.read_text()) if config_path.is_file() else {}
        return huggingface_vocab, bool(config.get("do_lower_case", True))
    if keras_hub_vocab.is_file():
        config = json.loads((checkpoint / "tokenizer.json").read_text()).get("config", {})
        return keras_hub_vocab, bool(config.get("lowercase", True))
    raise UsageError(f"no WordPiece vocabulary in {checkpoint}: looked for {huggingface_vocab} and {keras_hub_vocab}")


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
        raise UsageError(f"{vocab_file} lacks the special tokens {missing}")
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
    for rank in (2, 3):
        segment = tf.RaggedTensorSpec([None] * rank, tf.int32, ragged_rank=rank - 1)
        for count in (1, 2):
            pack.__call__.get_concrete_function([segment] * count, tf.TensorSpec([], tf.int32))

    root = tf.Module()
    root.tokenizer = tokenizer
    root.vocab_file = tf.saved_model.Asset(str(vocab_file))
    root.bert_pack_inputs = pack

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize(text):
        if lower_case:
            text = uncased(text)
        return tokenizer.tokenize(text)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def preprocess(text):
        return pack.__call__([tokenize(text)], seq_length)

    @tf.function(input_signature=[])
    def get_special_tokens_dict():
        return {name: tf.constant(value, tf.int32) for name, value in special_tokens.items()}

    root.tokenize = tokenize
    root.__call__ = root.serve = root.serving_default = preprocess
    root.get_special_tokens_dict = get_special_tokens_dict
    return root


def build_encoder_model(backbone) -> keras.Model:
    """Rewire a keras-hub ``BertBackbone``'s own layers to TF-Hub's input and output names.

    Adds ``encoder_outputs`` (every transformer layer's output), which the backbone does not expose.
    """
    inputs = {name: keras.Input((None,), dtype="int32", name=name) for name in BERT_INPUTS}
    tokens = backbone.token_embedding(inputs["input_word_ids"])
    x = backbone.embeddings_add((tokens, backbone.position_embedding(tokens), backbone.segment_embedding(inputs["input_type_ids"])))
    x = backbone.embeddings_dropout(backbone.embeddings_layer_norm(x))
    encoder_outputs = []
    for transformer_layer in backbone.transformer_layers:
        x = transformer_layer(x, padding_mask=inputs["input_mask"])
        encoder_outputs.append(x)
    pooled_output = backbone.pooled_dense(x[:, backbone.cls_token_index, :])
    outputs = {"sequence_output": x, "pooled_output": pooled_output, "encoder_outputs": encoder_outputs}
    return keras.Model(inputs, outputs, name="bert_encoder")


def hub_callable(function, spec: dict, layers: list) -> tf.train.Checkpoint:
    """An object TF-Hub loads like a model: ``__call__(inputs, training=False)``, traced for both values
    of ``training``, and the ``variables`` and ``trainable_variables`` that ``hub.KerasLayer`` fine-tunes."""
    for training in (False, True):
        function.get_concrete_function(spec, training=training)
    # Layers may share variables (the masked-LM head reads the token embedding): list each once.
    variables = list({id(variable): variable for layer in layers for variable in layer.variables}.values())
    obj = tf.train.Checkpoint()
    obj.__call__ = function
    obj.variables = variables
    obj.trainable_variables = [variable for variable in variables if variable.trainable]
    return obj


def build_encoder(backbone, vocab_file: Path, lower_case: bool, masked_lm_head=None) -> tf.train.Checkpoint:
    """The TF-Hub encoder object (see the module docstring). ``masked_lm_head``: the keras-hub
    ``MaskedLMHead`` pretrained with ``backbone`` (``BertMaskedLM.masked_lm_head``, its output
    projection tied to the token embedding), exported as ``mlm``; without it there is no ``mlm``."""
    model = build_encoder_model(backbone)
    spec = {name: tf.TensorSpec([None, None], tf.int32, name=name) for name in BERT_INPUTS}

    @tf.function
    def encode(inputs, training=False):
        outputs = model(inputs, training=training)
        return {**outputs, "default": outputs["pooled_output"]}

    @tf.function(input_signature=[spec])
    def serve(inputs):
        """``encode`` with flat outputs, as signatures need them."""
        outputs = encode(inputs)
        layers = {f"encoder_outputs_{index}": output for index, output in enumerate(outputs.pop("encoder_outputs"))}
        return {**outputs, **layers}

    root = hub_callable(encode, spec, [model])
    root.model = model
    root.vocab_file = tf.saved_model.Asset(str(vocab_file))
    root.do_lower_case = tf.Variable(lower_case, trainable=False, name="do_lower_case")
    root.serve = root.serving_default = serve
    if masked_lm_head is not None:

        @tf.function
        def mlm(inputs, training=False):
            outputs = encode({name: inputs[name] for name in BERT_INPUTS}, training=training)
            return {**outputs, "mlm_logits": masked_lm_head(outputs["sequence_output"], inputs["masked_lm_positions"])}

        mlm_spec = {**spec, "masked_lm_positions": tf.TensorSpec([None, None], tf.int32, name="masked_lm_positions")}
        root.mlm = hub_callable(mlm, mlm_spec, [model, masked_lm_head])
        root.mlm.head = masked_lm_head
    return root


def float32_copies(backbone, masked_lm_head=None):
    """The backbone (and head) computing in float32, with the same weights.

    A model trained under ``mixed_bfloat16`` would otherwise be traced with its bf16 casts, and every
    user of the handle would compute in bf16: 22x slower on CPUs without bf16 instructions, and not
    convertible to LiteRT. A handle is for any machine, so it is always float32."""
    import keras_hub

    if backbone.dtype_policy.compute_dtype == "float32":
        return backbone, masked_lm_head
    copy = type(backbone).from_config({**backbone.get_config(), "dtype": "float32"})
    copy.set_weights(backbone.get_weights())
    if masked_lm_head is None:
        return copy, None
    head = keras_hub.models.BertMaskedLM(backbone=copy, preprocessor=None).masked_lm_head  # built, tied to copy's embedding
    head.set_weights(masked_lm_head.get_weights())
    return copy, head


def export_hub(
    backbone, vocab_file: Path, lower_case: bool, out: Path, seq_length: int = DEFAULT_SEQ_LENGTH, masked_lm_head=None
) -> dict:
    """Write ``out/preprocessor`` and ``out/encoder`` (with ``mlm`` when ``masked_lm_head`` is given);
    each is staged, then renamed into place, so a folder is never seen half-written."""
    backbone, masked_lm_head = float32_copies(backbone, masked_lm_head)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, obj in (
        ("preprocessor", build_preprocessor(vocab_file, lower_case, seq_length)),
        ("encoder", build_encoder(backbone, vocab_file, lower_case, masked_lm_head)),
    ):
        staging, target = out / f".{name}.staging", out / name
        shutil.rmtree(staging, ignore_errors=True)
        tf.saved_model.save(obj, str(staging), signatures={"serving_default": obj.serve})
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        written[name] = str(target)
    return written


def first_layers(backbone, num_layers: int):
    """A copy of ``backbone`` with only its first ``num_layers`` Transformer layers (embeddings, those
    layers and the pooler keep their weights): a smaller student that starts from its teacher's own
    weights, as DistilBERT's does."""
    if not 1 <= num_layers <= backbone.num_layers:
        raise UsageError(f"--num-layers must be between 1 and the checkpoint's {backbone.num_layers} layers, not {num_layers}")
    smaller = type(backbone).from_config({**backbone.get_config(), "num_layers": num_layers})
    for layer in smaller.layers:
        layer.set_weights(backbone.get_layer(layer.name).get_weights())
    return smaller


def load_backbone(checkpoint: Path, seed: int = 0):
    """The checkpoint as a keras-hub ``BertBackbone``. The seed fixes its dropout seed generators, which
    the export keeps: two exports of one checkpoint then fine-tune identically."""
    import keras_hub

    if not checkpoint.is_dir():
        raise UsageError(f"checkpoint folder not found: {checkpoint}")
    keras.utils.set_random_seed(seed)
    return keras_hub.models.BertBackbone.from_preset(str(checkpoint), dtype="float32")


def main(argv: Sequence[str] | None = None) -> dict:
    parser = ArgumentParser(prog="python -m app.export_hub", description="Export a BERT checkpoint in TF-Hub format.")
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="Hugging Face BERT folder or keras-hub preset")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--num-layers", type=positive_int, help="keep only the first N Transformer layers (a smaller student)")
    parser.add_argument("--seq-length", type=positive_int, default=DEFAULT_SEQ_LENGTH, help="preprocessor output length")
    args = parser.parse_args(argv)
    vocab_file, lower_case = read_vocabulary(args.checkpoint)
    backbone = load_backbone(args.checkpoint)
    if args.num_layers:
        backbone = first_layers(backbone, args.num_layers)
    written = export_hub(backbone, vocab_file, lower_case, args.out, args.seq_length)
    print(f"exported {args.checkpoint} to {written['preprocessor']} and {written['encoder']}")
    return {"checkpoint": str(args.checkpoint), **written, "lower_case": lower_case, "seq_length": args.seq_length}


if __name__ == "__main__":
    run_command(main)

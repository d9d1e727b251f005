"""Write a BERT encoder and its preprocessor as two TF-Hub-format SavedModels: ``<out>/preprocessor``
and ``<out>/encoder`` (`python -m app.export_hub`, `app.train mlm`).

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
  ``vocab_file`` (asset) and ``do_lower_case`` (bool variable), which say how to tokenize;
  ``assets/keras_backbone.json``, the keras-hub ``BertBackbone`` config, with which
  `models.bert.encoder.backbone_from_hub` rebuilds the encoder as Keras layers (for LoRA); and, only
  when a masked-LM head is exported, ``mlm(inputs, training=False)``: the same inputs plus
  ``masked_lm_positions`` [N, P] -> ``mlm_logits`` [N, P, vocab] and the encoder outputs.
- both: a ``serving_default`` signature with flat outputs (the encoder's ``encoder_outputs_<i>``), and
  the same function as ``serve`` and ``serving_default`` attributes, so ``keras.layers.TFSMLayer(path)``
  loads either with its default ``call_endpoint`` (``"serve"``) or with ``"serving_default"``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import keras

import tensorflow as tf

from app.exports.savedmodel import traced_as_saving
from models.bert.encoder import KERAS_BACKBONE_ASSET, build_encoder_model, load_backbone
from models.bert.preprocessor import BERT_INPUTS, DEFAULT_SEQ_LENGTH, build_preprocessor, trace_for_saving
from models.bert.vocabulary import read_vocabulary

# Beside an encoder exported by app.train mlm: the fine-tuning settings it was measured to need, which
# app.train bert uses where the user's flags do not say otherwise (TF-Hub and TF Serving ignore assets.extra/).
FINE_TUNING_FILE = Path("assets.extra") / "fine_tuning.json"


def read_fine_tuning(encoder_handle: str | Path) -> dict:
    """The encoder's recommended fine-tuning settings (``learning_rate``, ``freeze_word_embeddings``,
    ``why``), or {} for an encoder without them (a URL, the MiniLM, an older export)."""
    path = Path(str(encoder_handle)) / FINE_TUNING_FILE
    return json.loads(path.read_text()) if "://" not in str(encoder_handle) and path.is_file() else {}


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


def build_encoder(
    backbone, vocab_file: Path, lower_case: bool, backbone_config: Path, masked_lm_head=None
) -> tf.train.Checkpoint:
    """The TF-Hub encoder object (see the module docstring). ``backbone_config``: a file holding the
    backbone's Keras config (exported as the ``keras_backbone.json`` asset). ``masked_lm_head``: the
    keras-hub ``MaskedLMHead`` pretrained with ``backbone`` (``BertMaskedLM.masked_lm_head``, its output
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
    root.keras_backbone = tf.saved_model.Asset(str(backbone_config))
    root.do_lower_case = tf.Variable(lower_case, trainable=False, name="do_lower_case")
    root.serve = root.serving_default = serve
    if masked_lm_head is not None:

        @tf.function
        def mlm(inputs, training=False):
            outputs = encode({name: inputs[name] for name in BERT_INPUTS}, training=training)
            positions = inputs["masked_lm_positions"]
            logits = masked_lm_head(outputs["sequence_output"], positions)
            # Traced for any P, the head's Dense loses P in the graph's shape inference; this reshape
            # restates it from the positions, so a caller with static positions [N, 20] gets logits
            # [N, 20, vocab] statically, as from the official handle.
            logits = tf.reshape(logits, tf.concat([tf.shape(positions), [logits.shape[-1]]], axis=0))
            return {**outputs, "mlm_logits": logits}

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


def export_checkpoint(checkpoint: Path, out: Path) -> dict:
    """A keras-hub BERT checkpoint folder (the shared MiniLM, say) exported whole as handles under ``out``."""
    vocab_file, lower_case = read_vocabulary(checkpoint)
    return export_hub(load_backbone(checkpoint), vocab_file, lower_case, out)


def export_hub(
    backbone, vocab_file: Path, lower_case: bool, out: Path, seq_length: int = DEFAULT_SEQ_LENGTH, masked_lm_head=None,
    fine_tuning: dict | None = None,
) -> dict:
    """Write ``out/preprocessor`` and ``out/encoder`` (with ``mlm`` when ``masked_lm_head`` is given, and
    ``fine_tuning`` as its recommended settings, `read_fine_tuning`); each is staged, then renamed into
    place, so a folder is never seen half-written."""
    backbone, masked_lm_head = float32_copies(backbone, masked_lm_head)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    with tempfile.TemporaryDirectory() as scratch:
        backbone_config = Path(scratch) / KERAS_BACKBONE_ASSET
        backbone_config.write_text(json.dumps(keras.saving.serialize_keras_object(backbone), indent=1))
        with traced_as_saving():  # each function traced once, not again while saving
            preprocessor = trace_for_saving(build_preprocessor(vocab_file, lower_case, seq_length))
            encoder = build_encoder(backbone, vocab_file, lower_case, backbone_config, masked_lm_head)
        for name, obj in (("preprocessor", preprocessor), ("encoder", encoder)):
            staging, target = out / f".{name}.staging", out / name
            shutil.rmtree(staging, ignore_errors=True)
            tf.saved_model.save(obj, str(staging), signatures={"serving_default": obj.serve})
            if name == "encoder" and fine_tuning:
                (staging / FINE_TUNING_FILE).parent.mkdir()
                (staging / FINE_TUNING_FILE).write_text(json.dumps(fine_tuning, indent=1))
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
            written[name] = str(target)
    return written


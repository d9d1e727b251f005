"""TF-Hub-format export of a BERT checkpoint: same word pieces as the reference tokenizers, same
encoder outputs as keras-hub, the official interface, and a Keras 3 layer that fine-tunes it."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from data_pipelines.sources import SHARED_DATA_DIR
from models.hub_layer import HubLayer
from tests.support.commands import last_json_line, run_python
from tests.support.paths import MINILM


def varied_sentences() -> list[str]:
    """At least 50 sentences: SST-2 reviews, punctuation, accents, Chinese, emoji, a 600-word text."""
    reviews = pd.read_csv(SHARED_DATA_DIR / "sst2" / "dev.tsv", sep="\t")["sentence"].head(36).tolist()
    crafted = [
        "Hello, World!!! What's up?? (nothing...) -- ok; fine: yes/no",
        "Café naïve résumé — Ångström, São Paulo, Zürich, façade, jalapeño",
        "ÉCOLE Ça VA? Über MÜNCHEN",
        "中文字符测试：我爱自然语言处理。",
        "日本語のテキストと한국어 텍스트",
        "emoji 😀🎉👍🏽 and ❤️ hearts",
        "numbers 3.14159, 1,000,000 and 42%",
        "e-mail: someone@example.com, url https://example.org/path?q=1",
        "UPPER lower MiXeD CaSe",
        "tabs\tand\nnewlines   and   spaces",
        "unbelievably unaffordable antidisestablishmentarianism",
        "",
        "A",
        "don't won't can't it's o'clock rock'n'roll",
        "Worst. Movie. Ever!",
        "I'd give it 10/10 — no, 11/10.",
        "The (very) long-winded [director's] cut {sic} <b>bold</b>",
        "ＡＢＣ full-width ： colon",
    ]
    shakespeare = (SHARED_DATA_DIR / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8").split()
    return reviews + crafted + [" ".join(shakespeare[:600])]


def word_pieces(preprocessor, sentences):
    return preprocessor.tokenize(tf.constant(sentences)).merge_dims(-2, -1).to_list()


def test_tokenizer_matches_the_checkpoints_own_tokenizer(minilm_hub):
    tokenizers = pytest.importorskip("tokenizers")
    reference = tokenizers.Tokenizer.from_file(str(MINILM / "tokenizer.json"))
    reference.no_padding()
    reference.no_truncation()
    sentences = varied_sentences()
    assert len(sentences) >= 50
    preprocessor = tf.saved_model.load(str(minilm_hub / "preprocessor"))
    ours = word_pieces(preprocessor, sentences)
    for sentence, pieces in zip(sentences, ours):
        assert pieces == reference.encode(sentence, add_special_tokens=False).ids, sentence


def test_tokenizer_matches_keras_hub_on_text_without_accents_or_full_width_forms(minilm_hub):
    """keras-hub 0.32 reads this checkpoint without accent stripping and with NFKC case folding
    (full-width '：' becomes ':'), unlike the checkpoint's own tokenizer.json, which we follow."""
    import keras_hub

    reference = keras_hub.models.BertTokenizer.from_preset(str(MINILM))
    sentences = [
        s for s in varied_sentences() if unicodedata.normalize("NFD", s) == s == unicodedata.normalize("NFKC", s)
    ]
    assert len(sentences) >= 50
    preprocessor = tf.saved_model.load(str(minilm_hub / "preprocessor"))
    for sentence, pieces in zip(sentences, word_pieces(preprocessor, sentences)):
        assert pieces == np.asarray(reference(sentence)).tolist(), sentence


def test_preprocessor_has_the_official_interface(minilm_hub):
    preprocessor = tf.saved_model.load(str(minilm_hub / "preprocessor"))
    packed = preprocessor(tf.constant(["a gorgeous, witty film", "dull"]))
    assert {name: tensor.shape for name, tensor in packed.items()} == {
        name: (2, 128) for name in ("input_word_ids", "input_mask", "input_type_ids")
    }
    assert packed["input_word_ids"].dtype == tf.int32
    vocabulary = (MINILM / "vocab.txt").read_text(encoding="utf-8").splitlines()
    expected = [vocabulary.index(token) for token in ("[CLS]", "dull", "[SEP]")]
    assert packed["input_word_ids"][1, :3].numpy().tolist() == expected
    assert packed["input_mask"][1].numpy().sum() == 3

    first, second = (preprocessor.tokenize(tf.constant([text])) for text in ("the cast", "is superb"))
    pair = preprocessor.bert_pack_inputs([first, second], seq_length=16)
    assert pair["input_word_ids"].shape == (1, 16)
    assert pair["input_type_ids"][0, :7].numpy().tolist() == [0, 0, 0, 0, 1, 1, 1]
    long_text = tf.constant([" ".join(["word"] * 300)])
    truncated = preprocessor.bert_pack_inputs([preprocessor.tokenize(long_text)], seq_length=32)
    assert truncated["input_word_ids"][0, -1] == 102 and truncated["input_mask"][0].numpy().sum() == 32


def test_encoder_outputs_equal_the_keras_hub_backbone(minilm_hub):
    from models.bert.encoder import load_backbone

    out, backbone = minilm_hub, load_backbone(MINILM)
    encoder = tf.saved_model.load(str(out / "encoder"))
    preprocessor = tf.saved_model.load(str(out / "preprocessor"))
    inputs = preprocessor(tf.constant(["a gorgeous, witty film", "the plot is thin and the jokes fall flat"]))
    outputs = encoder(inputs)
    expected = backbone(
        {"token_ids": inputs["input_word_ids"], "padding_mask": inputs["input_mask"], "segment_ids": inputs["input_type_ids"]}
    )
    np.testing.assert_allclose(outputs["sequence_output"], expected["sequence_output"], atol=1e-4)
    np.testing.assert_allclose(outputs["pooled_output"], expected["pooled_output"], atol=1e-4)
    assert len(outputs["encoder_outputs"]) == 6
    np.testing.assert_allclose(outputs["encoder_outputs"][-1], outputs["sequence_output"], atol=1e-6)
    assert len(encoder.trainable_variables) > 0 and len(encoder.variables) >= len(encoder.trainable_variables)


def one_training_step(hub, encoder_handle: str, trainable: bool) -> tuple[list, list]:
    """Build the project's classifier on ``encoder_handle``; encoder weights (name, value) before and after one step."""
    from models.bert.classifier import BertClassifierConfig, build_bert_classifier

    model = build_bert_classifier(BertClassifierConfig(encoder_handle, trainable_encoder=trainable))
    encoder = model.get_layer("encoder")
    assert (len(encoder.trainable_weights) > 0) == trainable
    model.compile(optimizer=keras.optimizers.AdamW(1e-2), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    inputs = tf.saved_model.load(str(hub / "preprocessor"))(tf.constant(["good film", "bad film"]))
    before = [(weight.name, weight.numpy().copy()) for weight in encoder.weights]
    model.fit(inputs, np.array([1, 0]), epochs=1, verbose=0)
    return before, [(weight.name, weight.numpy()) for weight in encoder.weights]


@pytest.mark.parametrize("trainable", [False, True])
def test_classifier_fine_tunes_the_encoder_only_when_trainable(tiny_hub, trainable):
    before, after = one_training_step(tiny_hub, str(tiny_hub / "encoder"), trainable)
    changed = {name for (name, old), (_, new) in zip(before, after) if not np.array_equal(old, new)}
    assert bool(changed) == trainable
    # The word-piece table stays frozen: most of it is never seen in a small fine-tuning set.
    assert "token_embedding_embeddings" not in changed


def test_classifier_accepts_an_official_url_handle_through_the_tfhub_cache(tiny_hub, tmp_path, monkeypatch):
    """An official handle resolves to its TFHUB_CACHE_DIR folder (offline here: the cache is laid out by hand,
    as tensorflow_hub lays it out after a download)."""
    import hashlib
    import shutil

    handle = "https://tfhub.dev/tensorflow/bert_en_uncased_L-12_H-768_A-12/4"
    cache_folder = tmp_path / hashlib.sha1(handle.encode("utf8")).hexdigest()
    shutil.copytree(tiny_hub / "encoder", cache_folder)
    (tmp_path / f"{cache_folder.name}.descriptor.txt").write_text(f"Module: {handle}\n")
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))
    assert HubLayer(handle).get_config()["handle"] == handle
    before, after = one_training_step(tiny_hub, handle, trainable=True)
    assert any(not np.array_equal(old, new) for (_, old), (_, new) in zip(before, after))


def pretrained_hub(pretrained_tiny) -> tuple[Path, list[str]]:
    """The tiny pretrained encoder's TF-Hub folder (1 layer, 64 positions) and its vocabulary."""
    out = Path(pretrained_tiny.summary["export_dir"])
    return out, (out / "encoder" / "assets" / "vocab.txt").read_text(encoding="utf-8").splitlines()


# The TF-Hub documentation's code for the official BERT handles, as-is, under tf-keras (the TF-Hub docs'
# advice for TensorFlow >= 2.16): fine-tuning, sentence pairs, the masked-LM head and the vocabulary.
OFFICIAL_USAGE = """
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_hub as hub
import tensorflow_text  # noqa: F401

preprocessor_path, encoder_path = sys.argv[1:3]
text_input = tf.keras.layers.Input(shape=(), dtype=tf.string)
encoder_inputs = hub.KerasLayer(preprocessor_path)(text_input)
encoder_layer = hub.KerasLayer(encoder_path, trainable=True)
outputs = encoder_layer(encoder_inputs)
features = tf.keras.layers.Concatenate()([outputs["pooled_output"], outputs["default"]])
model = tf.keras.Model(text_input, tf.keras.layers.Dense(1)(features))
model.compile(optimizer=tf.keras.optimizers.Adam(1e-2), loss="mse")
before = [weight.numpy().copy() for weight in encoder_layer.trainable_weights]
model.fit(tf.constant(["a gorgeous film", "dull"]), np.array([1.0, 0.0]), epochs=1, verbose=0)
changed = sum(not np.array_equal(old, new.numpy()) for old, new in zip(before, encoder_layer.trainable_weights))

preprocessor = hub.load(preprocessor_path)
segments = [tf.keras.layers.Input(shape=(), dtype=tf.string) for _ in range(2)]
tokenize = hub.KerasLayer(preprocessor.tokenize)
bert_pack_inputs = hub.KerasLayer(preprocessor.bert_pack_inputs, arguments=dict(seq_length=16))
pair = tf.keras.Model(segments, bert_pack_inputs([tokenize(segment) for segment in segments]))(
    [tf.constant(["the film"]), tf.constant(["is good"])]
)

encoder = hub.load(encoder_path)
mlm_logits = encoder.mlm(dict(pair, masked_lm_positions=tf.constant([[1, 2, 4]])))["mlm_logits"]
mlm_layer = hub.KerasLayer(encoder.mlm, trainable=True)
# A fixed number of masked positions stays in the logits' static shape, in Keras and in a tf.function.
word_inputs = {name: tf.keras.layers.Input(shape=(None,), dtype=tf.int32) for name in pair}
positions = tf.keras.layers.Input(shape=(20,), dtype=tf.int32)
keras_mlm_shape = mlm_layer(dict(word_inputs, masked_lm_positions=positions))["mlm_logits"].shape
static_mlm = tf.function(lambda inputs: encoder.mlm(inputs)["mlm_logits"], input_signature=[
    dict({name: tf.TensorSpec([None, None], tf.int32) for name in pair}, masked_lm_positions=tf.TensorSpec([None, 20], tf.int32))
])
print(json.dumps({
    "keras": type(model).__module__,
    "encoder_trainable_weights": len(encoder_layer.trainable_weights),
    "changed_encoder_weights": int(changed),
    "pair_word_ids": pair["input_word_ids"][0].numpy().tolist(),
    "pair_type_ids": pair["input_type_ids"][0].numpy().tolist(),
    "mlm_logits_shape": mlm_logits.shape.as_list(),
    "mlm_trainable_weights": len(mlm_layer.trainable_weights),
    "static_mlm_logits_shapes": [keras_mlm_shape.as_list(), static_mlm.get_concrete_function().output_shapes.as_list()],
    "special_tokens": {name: int(value) for name, value in preprocessor.get_special_tokens_dict().items()},
    "tokenize_special_tokens": {name: int(value) for name, value in preprocessor.tokenize.get_special_tokens_dict().items()},
    "vocab_file": encoder.vocab_file.asset_path.numpy().decode(),
    "do_lower_case": bool(encoder.do_lower_case.numpy()),
}))
"""


def test_official_tfhub_usage_runs_unchanged_under_tf_keras(pretrained_tiny):
    out, vocabulary = pretrained_hub(pretrained_tiny)
    completed = run_python("-c", OFFICIAL_USAGE, str(out / "preprocessor"), str(out / "encoder"), env={"TF_USE_LEGACY_KERAS": "1"})
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = last_json_line(completed.stdout)
    assert report["keras"].startswith("tf_keras")
    assert report["changed_encoder_weights"] > 0 and report["encoder_trainable_weights"] > 0
    assert report["pair_word_ids"][:7] == [vocabulary.index(token) for token in "[CLS] the film [SEP] is good [SEP]".split()]
    assert report["pair_type_ids"][:8] == [0, 0, 0, 0, 1, 1, 1, 0]
    assert report["mlm_logits_shape"] == [1, 3, len(vocabulary)]
    assert report["mlm_trainable_weights"] > report["encoder_trainable_weights"]
    assert report["static_mlm_logits_shapes"] == [[None, 20, len(vocabulary)]] * 2
    assert report["special_tokens"] == {
        "vocab_size": len(vocabulary),
        **{name: vocabulary.index(token) for name, token in (
            ("start_of_sequence_id", "[CLS]"), ("end_of_segment_id", "[SEP]"), ("padding_id", "[PAD]"), ("mask_id", "[MASK]")
        )},
    } == report["tokenize_special_tokens"]
    assert Path(report["vocab_file"]).read_text(encoding="utf-8").splitlines() == vocabulary
    assert report["do_lower_case"] is True


def test_keras3_tfsm_layer_loads_both_handles_with_default_arguments(pretrained_tiny):
    """Keras 3.15's default ``call_endpoint`` is ``"serve"``; ``"serving_default"`` works too, dict inputs included."""
    out, _ = pretrained_hub(pretrained_tiny)
    text = tf.constant(["a gorgeous, witty film", "dull"])
    inputs = keras.layers.TFSMLayer(str(out / "preprocessor"))(text)
    assert inputs["input_word_ids"].shape == (2, 64)
    outputs = keras.layers.TFSMLayer(str(out / "encoder"))(inputs)
    assert set(outputs) == {"pooled_output", "sequence_output", "default", "encoder_outputs_0"}
    encoder = tf.saved_model.load(str(out / "encoder"))
    expected = encoder(inputs)
    np.testing.assert_allclose(outputs["pooled_output"], expected["pooled_output"], atol=1e-6)
    np.testing.assert_allclose(outputs["default"], expected["default"], atol=1e-6)
    np.testing.assert_allclose(outputs["encoder_outputs_0"], expected["sequence_output"], atol=1e-6)
    served = encoder.signatures["serving_default"](**inputs)
    np.testing.assert_allclose(served["pooled_output"], expected["pooled_output"], atol=1e-6)
    served = keras.layers.TFSMLayer(str(out / "encoder"), call_endpoint="serving_default")(inputs)
    np.testing.assert_allclose(served["pooled_output"], expected["pooled_output"], atol=1e-6)


def test_encoder_mlm_equals_the_keras_hub_masked_lm(pretrained_tiny):
    out, _ = pretrained_hub(pretrained_tiny)
    masked_lm = pretrained_tiny.model
    encoder, preprocessor = (tf.saved_model.load(str(out / name)) for name in ("encoder", "preprocessor"))
    inputs = preprocessor(tf.constant(["a gorgeous, witty film", "dull"]))
    positions = tf.constant([[1, 3], [1, 0]])
    outputs = encoder.mlm({**inputs, "masked_lm_positions": positions})
    expected = masked_lm(
        {"token_ids": inputs["input_word_ids"], "padding_mask": inputs["input_mask"],
         "segment_ids": inputs["input_type_ids"], "mask_positions": positions}
    )
    np.testing.assert_allclose(outputs["mlm_logits"], expected, atol=1e-5)
    np.testing.assert_allclose(outputs["pooled_output"], encoder(inputs)["pooled_output"], atol=1e-6)
    assert len(outputs["encoder_outputs"]) == 1
    assert len(encoder.mlm.trainable_variables) > len(encoder.trainable_variables)


def test_minilm_export_has_the_full_interface_but_no_mlm(minilm_hub):
    """The MiniLM checkpoint has no masked-LM head, so its encoder has no ``mlm``; the rest is there."""
    out = minilm_hub
    encoder, preprocessor = (tf.saved_model.load(str(out / name)) for name in ("encoder", "preprocessor"))
    assert not hasattr(encoder, "mlm")
    inputs = preprocessor(tf.constant(["a gorgeous, witty film"]))
    outputs = encoder(inputs)
    np.testing.assert_array_equal(outputs["default"], outputs["pooled_output"])
    assert Path(encoder.vocab_file.asset_path.numpy().decode()).read_bytes() == (MINILM / "vocab.txt").read_bytes()
    assert bool(encoder.do_lower_case.numpy()) and not encoder.do_lower_case.trainable
    assert {name: int(value) for name, value in preprocessor.get_special_tokens_dict().items()} == {
        "vocab_size": 30522, "start_of_sequence_id": 101, "end_of_segment_id": 102, "padding_id": 0, "mask_id": 103
    }
    served = preprocessor.signatures["serving_default"](text=tf.constant(["a gorgeous, witty film"]))
    np.testing.assert_array_equal(served["input_word_ids"], inputs["input_word_ids"])
    assert set(encoder.signatures["serving_default"].structured_outputs) == {"pooled_output", "sequence_output", "default"} | {
        f"encoder_outputs_{index}" for index in range(6)
    }


def test_a_vocabulary_without_a_special_token_is_rejected(tmp_path):
    from data_pipelines.errors import DataError
    from models.bert.preprocessor import build_preprocessor

    vocab_file = tmp_path / "vocab.txt"
    vocab_file.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "film"]) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"lacks the special tokens \['\[MASK\]'\]"):
        build_preprocessor(vocab_file, lower_case=True)


def test_a_model_trained_in_bfloat16_is_exported_computing_in_float32(tmp_path):
    """TF-Hub handles are for any machine: a bf16-trained encoder is exported without its bf16 casts
    (LiteRT converts it, CPUs without bf16 run it at full speed), its logits equal to a float32 copy."""
    import keras_hub
    from tensorflow.core.protobuf import saved_model_pb2

    from app.training import devices
    from app.exports.hub import export_hub, float32_copies
    from models.bert.vocabulary import read_vocabulary

    vocab_file, lower_case = read_vocabulary(MINILM)
    with devices.precision_kept():
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        backbone = keras_hub.models.BertBackbone(
            vocabulary_size=30522, num_layers=1, num_heads=2, hidden_dim=32, intermediate_dim=64, max_sequence_length=64
        )
        head = keras_hub.models.BertMaskedLM(backbone=backbone, preprocessor=None).masked_lm_head
        export_hub(backbone, vocab_file, lower_case, tmp_path, seq_length=64, masked_lm_head=head)
    graph = saved_model_pb2.SavedModel.FromString((tmp_path / "encoder" / "saved_model.pb").read_bytes())
    casts = [node.attr["DstT"].type for function in graph.meta_graphs[0].graph_def.library.function
             for node in function.node_def if node.op == "Cast"]
    assert tf.bfloat16.as_datatype_enum not in casts
    float_backbone, float_head = float32_copies(backbone, head)
    assert float_backbone.dtype_policy.name == "float32"
    encoder = tf.saved_model.load(str(tmp_path / "encoder"))
    inputs = {"input_word_ids": tf.constant([[101, 2023, 102]]), "input_mask": tf.ones((1, 3), tf.int32),
              "input_type_ids": tf.zeros((1, 3), tf.int32)}
    positions = tf.constant([[1]])
    expected = float_head(float_backbone({"token_ids": inputs["input_word_ids"], "padding_mask": inputs["input_mask"],
                                          "segment_ids": inputs["input_type_ids"]})["sequence_output"], positions)
    np.testing.assert_allclose(encoder.mlm({**inputs, "masked_lm_positions": positions})["mlm_logits"], expected, atol=1e-5)


def test_a_student_keeps_the_first_layers_and_their_weights():
    import keras_hub

    from models.bert.encoder import first_layers

    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=100, num_layers=3, num_heads=2, hidden_dim=16, intermediate_dim=32, max_sequence_length=32
    )
    student = first_layers(backbone, 1)
    assert student.num_layers == 1 and len(student.transformer_layers) == 1
    for name in ("token_embedding", "transformer_layer_0", "pooled_dense"):
        for mine, theirs in zip(student.get_layer(name).get_weights(), backbone.get_layer(name).get_weights()):
            np.testing.assert_array_equal(mine, theirs)
    with pytest.raises(ValueError, match="between 1 and the checkpoint's 3 layers"):
        first_layers(backbone, 4)

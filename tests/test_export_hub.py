"""TF-Hub-format export of a BERT checkpoint: same word pieces as the reference tokenizers, same
encoder outputs as keras-hub, the official interface, and a Keras 3 layer that fine-tunes it."""

from __future__ import annotations

import unicodedata

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from data_pipelines.sources import SHARED_DATA_DIR
from models.hub_layer import HubLayer
from tests.conftest import MINILM


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
    preprocessor = tf.saved_model.load(str(minilm_hub[0] / "preprocessor"))
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
    preprocessor = tf.saved_model.load(str(minilm_hub[0] / "preprocessor"))
    for sentence, pieces in zip(sentences, word_pieces(preprocessor, sentences)):
        assert pieces == np.asarray(reference(sentence)).tolist(), sentence


def test_preprocessor_has_the_official_interface(minilm_hub):
    preprocessor = tf.saved_model.load(str(minilm_hub[0] / "preprocessor"))
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
    out, backbone = minilm_hub
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
    from models.bert_classifier import BertClassifierConfig, build_bert_classifier

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

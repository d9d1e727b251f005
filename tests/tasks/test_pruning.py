"""Structured pruning (``python -m app.compress --prune-heads F --prune-ffn F``): the smaller encoder
computes what the full one does without the removed heads and units, importance finds a head that
contributes nothing, the pruned export keeps the classifier's signatures, and bad requests fail clearly."""

from __future__ import annotations

import json

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from app.exports.savedmodel import read_metadata, resolve_version
from models.bert.classifier import BertClassifierConfig, build_bert_classifier
from models.bert.encoder import build_encoder_model
from models.bert.pruning import PruningPlan, pruned_transformer_layers
from tests.support.commands import assert_one_line_error, last_json_line, run_in_process

INPUTS = {
    "input_word_ids": tf.constant([[101, 2023, 3185, 2001, 102, 0], [101, 11757, 102, 0, 0, 0]]),
    "input_mask": tf.constant([[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]]),
    "input_type_ids": tf.zeros([2, 6], tf.int32),
}


def small_backbone():
    keras.utils.set_random_seed(1)
    return keras_hub.models.BertBackbone(
        vocabulary_size=30522, num_layers=2, num_heads=4, hidden_dim=32, intermediate_dim=64, max_sequence_length=16, dropout=0.0
    )


def silence(backbone, plan: PruningPlan) -> None:
    """Zero the output rows of every head and unit ``plan`` removes: the full encoder then computes the pruned one."""
    for layer, heads, units in zip(backbone.transformer_layers, plan.heads, plan.units):
        for dense, kept in ((layer._self_attention_layer._output_dense, heads), (layer._feedforward_output_dense, units)):
            kernel, bias = dense.get_weights()
            kernel[[index for index in range(kernel.shape[0]) if index not in kept]] = 0
            dense.set_weights([kernel, bias])


def test_a_pruned_encoder_computes_what_the_full_one_does_with_those_heads_and_units_silenced():
    backbone = small_backbone()
    full = build_encoder_model(backbone)
    everything = PruningPlan(heads=((0, 1, 2, 3),) * 2, units=(tuple(range(64)),) * 2)
    same = build_encoder_model(backbone, "same", pruned_transformer_layers(backbone, everything))
    np.testing.assert_array_equal(same(INPUTS)["sequence_output"], full(INPUTS)["sequence_output"])

    plan = PruningPlan(heads=((1, 3), (0, 2)), units=(tuple(range(0, 64, 2)), tuple(range(32))))
    pruned = build_encoder_model(backbone, "pruned", pruned_transformer_layers(backbone, plan))
    query = pruned.get_layer("transformer_layer_0").attention._query_dense.kernel
    assert tuple(query.shape) == (32, 2, 8)  # 2 heads of 8, not 1 head of 16
    assert tuple(pruned.get_layer("transformer_layer_1").intermediate.kernel.shape) == (32, 32)
    silence(backbone, plan)
    for name in ("sequence_output", "pooled_output"):
        np.testing.assert_allclose(pruned(INPUTS)[name], full(INPUTS)[name], atol=1e-5)


def test_importance_finds_the_heads_and_units_that_contribute_nothing():
    from app.tasks.pruning import head_and_unit_importance

    backbone = small_backbone()
    classifier = build_bert_classifier(BertClassifierConfig("unused", 2), build_encoder_model(backbone, "encoder"))
    silence(backbone, PruningPlan(heads=((0, 1, 3), (0, 1, 2, 3)), units=(tuple(range(32, 64)), tuple(range(64)))))
    batches = tf.data.Dataset.from_tensors((INPUTS, tf.constant([[1.0, 0, 0], [0.0, 0, 0]])))
    heads, units = head_and_unit_importance(classifier, backbone, batches)
    assert heads.shape == (2, 4) and units.shape == (2, 64)
    assert heads[0, 2] == 0 and heads[0, [0, 1, 3]].min() > 0
    assert not units[0, :32].any() and units[0, 32:].min() > 0


def test_app_compress_prunes_recovers_and_exports_the_same_signatures(trained_bert, small_sst2, tmp_path):
    source = resolve_version(trained_bert[0].summary["export_dir"])
    result = run_in_process(
        "app.compress", "--model-dir", str(source), "--prune-heads", "0.5", "--prune-ffn", "0.5", "--quantization", "int8",
        "--data-dir", str(small_sst2.parent), "--out", str(tmp_path / "saved"), "--runs-dir", str(tmp_path / "runs"), "--quiet",
    )
    assert result.returncode == 0, result.stderr
    report = last_json_line(result.stdout)
    export_dir = resolve_version(tmp_path / "saved" / "bert_sst2_pruned")
    assert report["export_dir"] == str(export_dir) and report["model"] == "prune"
    pruning = read_metadata(export_dir)["pruning"]
    assert pruning == report["pruning"] and pruning["pruned_from"] == str(source)
    assert [len(heads) for heads in pruning["heads_kept"]] == [1, 1] and pruning["ffn_units_kept_per_layer"] == [32, 32]
    loaded, original = tf.saved_model.load(str(export_dir)), tf.saved_model.load(str(source))
    assert set(loaded.signatures) == set(original.signatures)
    shapes = {variable.name: tuple(variable.shape) for variable in loaded.variables}
    assert shapes["transformer_layer_0/self_attention_layer/query/kernel:0"] == (32, 1, 16)
    assert shapes["transformer_layer_1/feedforward_intermediate_dense/kernel:0"] == (32, 32)
    answer = loaded.signatures["serving_default"](text=tf.constant(["a gorgeous, witty film", "dull"]))
    np.testing.assert_allclose(answer["probabilities"].numpy().sum(axis=1), 1, atol=1e-5)
    assert (export_dir / "litert" / "int8.tflite").stat().st_size == report["litert"]["int8"]["bytes"]
    assert report["litert"]["int8"]["max_probability_difference"] < 0.05


def test_bad_pruning_requests_are_one_clear_error(trained_bert, tmp_path):
    source = trained_bert[0].summary["export_dir"]
    mnist = tmp_path / "mnist" / "1"
    (mnist / "assets.extra").mkdir(parents=True)
    (mnist / "saved_model.pb").write_bytes(b"")
    (mnist / "assets.extra" / "fromzero.json").write_text(json.dumps({"name": "mnist", "task": "mnist"}))
    cases = {
        "a fraction in [0, 1), not 1": ["--model-dir", source, "--prune-heads", "1"],
        "a fraction in [0, 1), not -0.5": ["--model-dir", source, "--prune-ffn", "-0.5"],
        "--prune-heads 0.8 removes all 2 heads of each layer": ["--model-dir", source, "--prune-heads", "0.8"],
        "is a 'mnist' export": ["--model-dir", str(mnist.parent), "--prune-heads", "0.5"],
    }
    for message, args in cases.items():
        assert_one_line_error(run_in_process("app.compress", *args, "--out", str(tmp_path / "out")), message)

"""The exporter every task uses (`app.exports.savedmodel.export_model`), on a small Keras model."""

from __future__ import annotations

import collections

import keras
import numpy as np
import tensorflow as tf

from app.exports.savedmodel import Endpoint, ExportSpec, export_model, read_metadata, traced_as_saving


def test_each_signature_is_traced_once_and_answers_like_the_model(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input([3]), keras.layers.Dense(4), keras.layers.Dense(2)])
    traces = collections.Counter()  # a Python body runs once per trace

    def scores(features):
        traces["scores"] += 1
        return {"scores": model(features, training=False)}

    def best(features):
        traces["best"] += 1
        return {"best": tf.argmax(model(features, training=False), axis=-1)}

    spec = ExportSpec(endpoints=[
        Endpoint("serving_default", scores, [tf.TensorSpec([None, 3], tf.float32, name="features")]),
        Endpoint("best", best, [tf.TensorSpec([None, 3], tf.float32, name="features")]),
    ], metadata={"task": "toy"})
    export_dir = export_model(model, spec, tmp_path, "toy")

    assert traces == {"scores": 1, "best": 1}  # Keras's variable search and TensorFlow's save share one trace
    assert export_dir == tmp_path / "toy" / "1" and read_metadata(export_dir)["signatures"] == ["serving_default", "best"]
    loaded = tf.saved_model.load(str(export_dir))
    features = np.random.default_rng(0).normal(size=(5, 3)).astype("float32")
    expected = model(features).numpy()
    np.testing.assert_allclose(loaded.signatures["serving_default"](features=features)["scores"].numpy(), expected, atol=1e-6)
    assert (loaded.signatures["best"](features=features)["best"].numpy() == expected.argmax(-1)).all()
    assert len(loaded.variables) == len(model.variables)


def test_functions_traced_as_saving_are_not_traced_again_by_tf_saved_model_save(tmp_path):
    traces = collections.Counter()
    module = tf.Module()
    module.scale = tf.Variable(2.0)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def serve(values):
        traces["serve"] += 1
        return {"scaled": values * module.scale}

    module.serve = serve
    with traced_as_saving():  # as the TF-Hub exporter builds its objects
        serve.get_concrete_function()
    tf.saved_model.save(module, str(tmp_path / "saved"), signatures={"serving_default": serve})
    assert traces == {"serve": 1}
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    assert loaded.signatures["serving_default"](values=tf.constant([1.5]))["scaled"].numpy().tolist() == [3.0]

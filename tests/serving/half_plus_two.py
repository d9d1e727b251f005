"""TF1-style "half plus two" SavedModels, rebuilt with our own code, for the TF Serving conformance tests.

TensorFlow Serving's tests run against small SavedModels that compute ``y = 0.5 * x + 2``. They are made by
``tensorflow_serving/servables/tensorflow/testdata/saved_model_half_plus_two.py`` in the tensorflow/serving
repository (a ``tf.compat.v1`` graph saved with ``SavedModelBuilder``); the copies checked in there
(``saved_model_half_plus_two_2_versions/0000012{3,4}``, ``saved_model_half_plus_three/00000123``) are what the
expected answers and the expected metadata JSON of its tests were produced from. This module builds the same
graphs, with the same tensor names and the same signatures, so that our server can be checked against those
expectations without copying TF Serving's binary test data.

The graph (``_half_plus_graph``)::

    tf_example: string placeholder (serialized tf.Example protos, unknown rank)
    parse_example with {"x": float[1], "x2": float[1] default 0.0}
    x  = identity(parsed["x"])            # "x:0",  float32 [-1, 1]
    y  = a * x + b                        # "y:0"   (a = 0.5, b = 2: half plus two)
    y2 = a * x + c                        # "y2:0"  (c = 3)
    x2 = identity(parsed["x2"])           # "x2:0"
    y3 = a2 * x2 + c2                     # "y3:0"  (separate variables a2 = 0.5, c2 = 3)

and its signatures (names as in TF Serving's script; the input/output keys are the TF constants
``inputs``/``outputs``/``scores``)::

    serving_default     predict   x: x:0                 -> y: y:0
    regress_x_to_y      regress   inputs: tf_example:0   -> outputs: y:0
    regress_x_to_y2     regress   inputs: tf_example:0   -> outputs: y2:0
    regress_x2_to_y3    regress   inputs: x2:0           -> outputs: y3:0
    classify_x_to_y     classify  inputs: tf_example:0   -> scores: y:0
    classify_x2_to_y3   classify  inputs: x2:0           -> scores: y3:0

Two details follow the checked-in ``saved_model_half_plus_two_2_versions`` export (which the expected
``saved_model_half_plus_two_2_versions_metadata.json`` describes) rather than today's version of the script:
the ``tf_example`` placeholder has unknown rank (the script now says ``shape=[None]``), and
``classify_x2_to_y3`` is present (the script's TF1 branch no longer adds it; its TF2 branch still does).

Like the original, the graph carries an asset file (``assets/foo.txt``) and a main op that assigns the asset's
file name to a variable, so loading exercises assets and the main op too.

``build_half_plus_three`` rebuilds ``saved_model_half_plus_three`` (``y = 0.5 * x + 3``), the model of TF
Serving's REST API guide (g3doc/api_rest.md): a ``serving_default`` predict signature and a regress signature
named ``tensorflow/serving/regress`` (the signature set read from its checked-in saved_model.pb).

Versions go into zero-padded folders as in TF Serving's testdata: ``<base>/<model>/00000123/``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

tf1 = tf.compat.v1

PREDICT = tf1.saved_model.signature_constants.PREDICT_METHOD_NAME  # "tensorflow/serving/predict"
REGRESS = tf1.saved_model.signature_constants.REGRESS_METHOD_NAME  # "tensorflow/serving/regress"
CLASSIFY = tf1.saved_model.signature_constants.CLASSIFY_METHOD_NAME  # "tensorflow/serving/classify"
DEFAULT_SIGNATURE = tf1.saved_model.signature_constants.DEFAULT_SERVING_SIGNATURE_DEF_KEY  # "serving_default"
ALL_SIGNATURES = (
    "serving_default",
    "regress_x_to_y",
    "regress_x_to_y2",
    "regress_x2_to_y3",
    "classify_x_to_y",
    "classify_x2_to_y3",
)


def version_dir(base: str | Path, model_name: str, version: int) -> Path:
    """``<base>/<model_name>/<version as 8 digits>`` (TF Serving's testdata spelling, e.g. ``00000123``)."""
    return Path(base) / model_name / f"{version:08d}"


def _tensor_info(tensor) -> meta_graph_pb2.TensorInfo:
    """What ``build_tensor_info`` records: the tensor's name, dtype and static shape."""
    return meta_graph_pb2.TensorInfo(
        name=tensor.name, dtype=tensor.dtype.as_datatype_enum, tensor_shape=tensor.shape.as_proto()
    )


def _signature(method: str, inputs: dict, outputs: dict) -> meta_graph_pb2.SignatureDef:
    signature = meta_graph_pb2.SignatureDef(method_name=method)
    for key, tensor in inputs.items():
        signature.inputs[key].CopyFrom(_tensor_info(tensor))
    for key, tensor in outputs.items():
        signature.outputs[key].CopyFrom(_tensor_info(tensor))
    return signature


def _add_asset(scratch: Path):
    """Write ``foo.txt`` and register it as an asset; returns the op that assigns its name (the main op)."""
    asset = scratch / "foo.txt"
    asset.write_text("asset-file-contents")
    tf1.add_to_collection(tf1.GraphKeys.ASSET_FILEPATHS, tf.constant(str(asset)))
    filename = tf1.Variable("foo.txt", name="filename_tensor", trainable=False, collections=[])
    return filename.assign("foo.txt")


def _half_plus_graph(b: float):
    """The half-plus-``b`` graph; returns its named tensors."""
    a = tf1.Variable(0.5, name="a")
    b_var = tf1.Variable(float(b), name="b")
    c = tf1.Variable(3.0, name="c")
    tf_example = tf1.placeholder(tf.string, name="tf_example")  # unknown rank, as in the 2_versions export
    with tf.device("/cpu:0"):
        parsed = tf1.io.parse_example(
            tf_example,
            {
                "x": tf1.io.FixedLenFeature([1], dtype=tf.float32),
                "x2": tf1.io.FixedLenFeature([1], dtype=tf.float32, default_value=[0.0]),
            },
        )
    # With an unknown-rank input, today's parse_example cannot infer the batch shape that the checked-in
    # exports record for x/x2 ([-1, 1]); state it (static shape only: nothing is checked at run time).
    parsed["x"].set_shape([None, 1])
    parsed["x2"].set_shape([None, 1])
    x = tf.identity(parsed["x"], name="x")
    y = tf.identity(tf.add(tf.multiply(a, x), b_var), name="y")
    y2 = tf.identity(tf.add(tf.multiply(a, x), c), name="y2")
    x2 = tf.identity(parsed["x2"], name="x2")
    # Separate constants for the x2 path, as in the original (keeps optimizers from fusing the paths).
    a2 = tf1.Variable(0.5, name="a2")
    c2 = tf1.Variable(3.0, name="c2")
    y3 = tf.identity(tf.add(tf.multiply(a2, x2), c2), name="y3")
    return {"tf_example": tf_example, "x": x, "y": y, "y2": y2, "x2": x2, "y3": y3}


def _save(export_dir: Path, build_signatures, b: float, as_text: bool) -> Path:
    export_dir = Path(export_dir)
    if export_dir.exists():
        raise FileExistsError(f"{export_dir} already exists")
    builder = tf1.saved_model.Builder(str(export_dir))
    graph = tf.Graph()
    # The builder copies the asset into <export_dir>/assets/; the original only needs to live until save().
    with tempfile.TemporaryDirectory() as scratch, graph.as_default(), tf1.Session(graph=graph) as session:
        tensors = _half_plus_graph(b)
        main_op = tf.group(_add_asset(Path(scratch)))  # built before the session first runs the graph
        signatures = build_signatures(tensors)
        session.run(tf1.global_variables_initializer())
        builder.add_meta_graph_and_variables(
            session,
            [tf1.saved_model.tag_constants.SERVING],
            signature_def_map=signatures,
            assets_collection=tf1.get_collection(tf1.GraphKeys.ASSET_FILEPATHS),
            main_op=main_op,
        )
        builder.save(as_text=as_text)
    return export_dir


def build_half_plus_two(export_dir: str | os.PathLike, *, b: float = 2.0, as_text: bool = False) -> Path:
    """Export the half_plus_two SavedModel (``y = 0.5 * x + b``, b = 2 by default) into ``export_dir``.

    ``b`` lets a test build a *different* version of the same graph (e.g. ``b=3``), so that which version
    answered is visible in the numbers; TF Serving's own two versions are identical copies.
    """

    def signatures(t):
        return {
            "regress_x_to_y": _signature(REGRESS, {"inputs": t["tf_example"]}, {"outputs": t["y"]}),
            "regress_x_to_y2": _signature(REGRESS, {"inputs": t["tf_example"]}, {"outputs": t["y2"]}),
            "regress_x2_to_y3": _signature(REGRESS, {"inputs": t["x2"]}, {"outputs": t["y3"]}),
            "classify_x_to_y": _signature(CLASSIFY, {"inputs": t["tf_example"]}, {"scores": t["y"]}),
            "classify_x2_to_y3": _signature(CLASSIFY, {"inputs": t["x2"]}, {"scores": t["y3"]}),
            DEFAULT_SIGNATURE: _signature(PREDICT, {"x": t["x"]}, {"y": t["y"]}),
        }

    return _save(Path(export_dir), signatures, b, as_text)


def build_half_plus_three(export_dir: str | os.PathLike) -> Path:
    """Export half_plus_three (``y = 0.5 * x + 3``) with the signatures of TF Serving's
    ``saved_model_half_plus_three``: ``serving_default`` (x -> y) and ``tensorflow/serving/regress``
    (serialized tf.Example ``inputs`` -> ``outputs``)."""

    def signatures(t):
        return {
            DEFAULT_SIGNATURE: _signature(PREDICT, {"x": t["x"]}, {"y": t["y"]}),
            REGRESS: _signature(REGRESS, {"inputs": t["tf_example"]}, {"outputs": t["y"]}),
        }

    return _save(Path(export_dir), signatures, 3.0, False)


def build_test_models(base: str | Path) -> Path:
    """The conformance suite's model folder::

        <base>/half_plus_two/00000123     y = 0.5x + 2   (TF Serving's half_plus_two)
        <base>/half_plus_two/00000124     y = 0.5x + 3   (same graph, b = 3: a distinguishable next version)
        <base>/half_plus_three/00000123   y = 0.5x + 3   (TF Serving's half_plus_three)
    """
    base = Path(base)
    build_half_plus_two(version_dir(base, "half_plus_two", 123))
    build_half_plus_two(version_dir(base, "half_plus_two", 124), b=3.0)
    build_half_plus_three(version_dir(base, "half_plus_three", 123))
    return base


if __name__ == "__main__":
    import sys

    print(build_test_models(sys.argv[1] if len(sys.argv) > 1 else "/tmp/half_plus_two_models"))

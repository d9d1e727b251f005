"""TF Serving's Classify, Regress and MultiInference APIs: tf.Example inputs through classification and
regression signatures, for the REST ``:classify`` / ``:regress`` JSON and the gRPC requests alike.

The rules and messages are TF Serving's: tf.Example JSON (tensorflow_serving/util/json_tensor.cc,
``MakeExampleFromJsonObject``), examples serialized with their context in front
(servables/tensorflow/util.cc), signature checks and results (classifier.cc, regressor.cc,
multi_inference.cc).
"""

from __future__ import annotations

import base64
import binascii
import json

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import classification_pb2, inference_pb2, input_pb2, regression_pb2

from app.serving.errors import InvalidRequest, Unimplemented
from app.serving.servable import DEFAULT_SIGNATURE, Servable
from app.serving.tensors import Signature

CLASSIFY, REGRESS = "tensorflow/serving/classify", "tensorflow/serving/regress"


def _debug(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _json_type(value: object) -> str:
    """rapidjson's type names, as TF Serving's messages print them."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    return {dict: "Object", list: "Array", str: "String"}.get(type(value), "Number")


def _add_value(feature: tf.train.Feature, name: str, value: object) -> None:
    """One JSON value into a Feature: numbers with a fraction -> float_list, integers and booleans ->
    int64_list, strings and {"b64": ...} -> bytes_list; one kind per feature."""
    if isinstance(value, bool) or (isinstance(value, int) and not isinstance(value, bool)):
        kind, item = "int64_list", int(value)
        if item >= 2**63:
            raise InvalidRequest(f"Feature: {name} has uint64_t element. Only int64_t is supported.")
    elif isinstance(value, float):
        kind, item = "float_list", value
    elif isinstance(value, str):
        kind, item = "bytes_list", value.encode("utf-8")
    elif isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        kind = "bytes_list"
        try:
            item = base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest("Unable to base64 decode") from None
    else:
        raise InvalidRequest(f"Feature: {name} has element with unexpected JSON type: {_json_type(value)}")
    current = feature.WhichOneof("kind")
    if current not in (None, kind):
        expected = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64"}[current]
        raise InvalidRequest(f"Unexpected element type in feature: {name} expecting type: {expected}")
    getattr(feature, kind).value.append(item)


def example_from_json(value: object) -> tf.train.Example:
    if not isinstance(value, dict):
        raise InvalidRequest(f"Example must be JSON object but got JSON {_json_type(value)}")
    example = tf.train.Example()
    for name, content in value.items():
        feature = example.features.feature[name]
        for item in content if isinstance(content, list) else [content]:
            _add_value(feature, name, item)
    return example


def input_from_json(body: dict) -> input_pb2.Input:
    """The ``Input`` of a ``:classify`` / ``:regress`` body: ``examples`` and an optional ``context``."""
    request = input_pb2.Input()
    if "context" in body:
        request.example_list_with_context.context.CopyFrom(example_from_json(body["context"]))
    examples = body.get("examples")
    if examples is None:
        raise InvalidRequest(f"JSON Value: {_debug(body)} When method is classify, key 'examples' is expected and was not found")
    if not isinstance(examples, list):
        raise InvalidRequest(f"JSON Value: {_debug(body)} Expecting 'examples' value to be an list/array")
    if not examples:
        raise InvalidRequest(f"JSON Value: {_debug(body)} 'examples' value is an empty array")
    target = request.example_list_with_context if "context" in body else request.example_list
    for value in examples:
        target.examples.add().CopyFrom(example_from_json(value))
    return request


def serialized_examples(request: input_pb2.Input) -> np.ndarray:
    """The [batch] string tensor a classify/regress signature takes; the context goes in front of each
    example, so the example's own features win where both have one."""
    kind = request.WhichOneof("kind")
    if kind == "example_list_with_context":
        context = request.example_list_with_context.context.SerializeToString()
        examples = [context + example.SerializeToString() for example in request.example_list_with_context.examples]
    elif kind == "example_list":
        examples = [example.SerializeToString() for example in request.example_list.examples]
    else:
        examples = []
    if not examples:
        raise InvalidRequest("Input is empty.")
    return np.array(examples, dtype=object)


def signature_for(servable: Servable, signature_name: str, method: str) -> Signature:
    """The classification or regression signature a request names, checked as TF Serving checks it
    (``PreProcessClassification`` / ``PreProcessRegression``; its method-name check is off by default)."""
    name = signature_name or DEFAULT_SIGNATURE
    if name not in servable.signatures:
        raise InvalidRequest(f"No signature was found with the name: {name}")
    signature = servable.signatures[name]
    debug = text_format.MessageToString(servable.signature_defs.signature_def[name])
    what = "classification" if method == CLASSIFY else "regression"
    if len(signature.inputs) != 1:
        raise InvalidRequest("Expected one input Tensor.")
    if method == CLASSIFY and len(signature.outputs) not in (1, 2):
        raise InvalidRequest(f"Expected one or two output Tensors, found {len(signature.outputs)}")
    if method == REGRESS and len(signature.outputs) != 1:
        raise InvalidRequest("Expected one output Tensor.")
    if "inputs" not in signature.inputs:
        raise InvalidRequest(f"No {what} inputs found in SignatureDef: {debug}")
    if method == CLASSIFY and not {"classes", "scores"} & set(signature.outputs):
        raise InvalidRequest(f'Expected classification signature outputs to contain at least one of "classes" or "scores". Signature was: {debug}')
    if method == REGRESS and "outputs" not in signature.outputs:
        raise InvalidRequest(f"No regression outputs found in SignatureDef: {debug}")
    return signature


def classification_result(outputs: dict[str, np.ndarray], rows: int) -> classification_pb2.ClassificationResult:
    """``classes`` (strings) and/or ``scores`` (floats), each [batch, num_classes], as Class lists."""
    classes, scores = outputs.get("classes"), outputs.get("scores")
    for name, array in (("classes", classes), ("scores", scores)):
        if array is not None and (array.ndim != 2 or array.shape[0] != rows):
            raise InvalidRequest(f"Expected Tensor shape: [batch_size num_classes] but got {list(array.shape)}")
    result = classification_pb2.ClassificationResult()
    num_classes = (classes if classes is not None else scores).shape[1]
    for row in range(rows):
        classifications = result.classifications.add()
        for column in range(num_classes):
            entry = classifications.classes.add()
            if classes is not None:
                entry.label = classes[row, column].decode("utf-8", errors="replace")
            if scores is not None:
                entry.score = float(scores[row, column])
    return result


def regression_result(outputs: dict[str, np.ndarray], rows: int) -> regression_pb2.RegressionResult:
    """One float per example from the single output, [batch] or [batch, 1]."""
    array = outputs["outputs"]
    if not (array.ndim == 1 or (array.ndim == 2 and array.shape[1] == 1)):
        raise InvalidRequest(f"Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got {list(array.shape)}")
    if array.shape[0] != rows:
        raise InvalidRequest(f"Input batch size did not match output batch size: {rows} vs. {array.shape[0]}")
    result = regression_pb2.RegressionResult()
    for value in array.reshape(-1):
        result.regressions.add(value=float(value))
    return result


async def run_inference(runner, servable: Servable, signature_name: str, method: str, request: input_pb2.Input):
    """Classify or regress ``request``'s examples; returns the ClassificationResult / RegressionResult."""
    signature = signature_for(servable, signature_name, method)
    examples = serialized_examples(request)
    outputs = await runner.run(servable, signature, {next(iter(signature.inputs)): examples})
    build = classification_result if method == CLASSIFY else regression_result
    return build(outputs, len(examples))


async def multi_inference(runner, servable: Servable, request: inference_pb2.MultiInferenceRequest) -> inference_pb2.MultiInferenceResponse:
    """Several classify/regress tasks of one model on the same examples (multi_inference.cc's checks)."""
    if not request.tasks:
        raise InvalidRequest("Tasks is empty.")
    seen = set()
    for task in request.tasks:
        if not task.model_spec.name:
            raise InvalidRequest("Found ModelSpec with an empty model name.")
        if task.model_spec.name != request.tasks[0].model_spec.name:
            raise InvalidRequest("All ModelSpecs in a MultiInferenceRequest must access the same model name.")
        name = task.model_spec.signature_name or DEFAULT_SIGNATURE
        if name in seen:
            raise InvalidRequest(f"Duplicate evaluation of signature: {name}")
        seen.add(name)
        if name not in servable.signatures:
            raise InvalidRequest(f"Requested signature not found in model graph: {name}")
        if task.method_name not in (CLASSIFY, REGRESS):
            raise Unimplemented(f"Unsupported signature method_name: {task.method_name}")
    response = inference_pb2.MultiInferenceResponse()
    for task in request.tasks:
        result = await run_inference(runner, servable, task.model_spec.signature_name, task.method_name, request.input)
        entry = response.results.add()
        entry.model_spec.CopyFrom(task.model_spec)
        entry.model_spec.version.value = servable.version
        (entry.classification_result if task.method_name == CLASSIFY else entry.regression_result).CopyFrom(result)
    return response

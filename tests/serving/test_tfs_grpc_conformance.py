"""Conformance of ``python -m app.serve``'s gRPC API with TensorFlow Serving's.

Each case cites the ``file:line`` of the tensorflow/serving test or source it follows (abbreviations and
the served models: ``tests/serving/tfs.py``). One test id per case, named after it; one server for the module.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from tests.serving.tfs import EXPECTED_SIGNATURE_DEF_MAP, HP2, HP3, RPC_TIMEOUT, TWO

AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE


@pytest.fixture(scope="module")
def prediction_stub(tfs_server):
    channel = grpc.insecure_channel(tfs_server.grpc_address)
    yield prediction_service_pb2_grpc.PredictionServiceStub(channel)
    channel.close()


@pytest.fixture(scope="module")
def model_stub(tfs_server):
    channel = grpc.insecure_channel(tfs_server.grpc_address)
    yield model_service_pb2_grpc.ModelServiceStub(channel)
    channel.close()


# ------------------------------------------------------------------------------------------------ requests


def float_tensor(values, dims=None) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=values)
    if dims is not None:
        proto.tensor_shape.CopyFrom(
            tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims])
        )
    return proto


def examples_input(*xs: float, feature: str = "x"):
    """An Input with one tf.Example per value, feature ``x`` a float (server_test:148-149)."""
    request = regression_pb2.RegressionRequest()
    for x in xs:
        request.input.example_list.examples.add().features.feature[feature].float_list.value.append(x)
    return request.input


def predict_request(name=HP2, inputs=None, output_filter=(), **spec) -> predict_pb2.PredictRequest:
    """A PredictRequest for ``name`` (``version`` / ``version_label`` / ``signature_name`` in ``spec``), by
    default with the input x = 2.0 (a scalar: no tensor_shape)."""
    request = predict_pb2.PredictRequest()
    request.model_spec.SetInParent()
    request.model_spec.name = name
    for key, value in spec.items():
        if key == "version":
            request.model_spec.version.value = value
        else:
            setattr(request.model_spec, key, value)
    for key, tensor in ({"x": float_tensor([2.0])} if inputs is None else inputs).items():
        request.inputs[key].CopyFrom(tensor)
    request.output_filter.extend(output_filter)
    return request


def with_input(request: Message, name=HP2, signature_name: str | None = None) -> Message:
    """A classify or regress ``request`` for ``name`` / ``signature_name`` with the input x = 2.0."""
    request.model_spec.name = name
    if signature_name is not None:
        request.model_spec.signature_name = signature_name
    request.input.CopyFrom(examples_input(2.0))
    return request


def add_task(request, signature_name, method_name, model_name=HP2):
    """multi_inference_test.cc:137-144 (PopulateTask)."""
    task = request.tasks.add()
    task.model_spec.name = model_name
    task.model_spec.signature_name = signature_name
    task.method_name = method_name
    return task


def multi_request(*tasks, with_input=True) -> inference_pb2.MultiInferenceRequest:
    request = inference_pb2.MultiInferenceRequest()
    for task in tasks:
        add_task(request, *task)
    if with_input:
        request.input.CopyFrom(examples_input(2.0))
    return request


def rpc_error(method, request) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        method(request, timeout=RPC_TIMEOUT)
    return info.value.code(), info.value.details()


def cases(table):
    return pytest.mark.parametrize("case", table, ids=[case.name for case in table])


# ------------------------------------------------------------------------------------------------ errors


@dataclass(frozen=True)
class RpcErrorCase:
    """A request TF Serving refuses: its status ``code`` and ``message`` (None: only the code is TF
    Serving's, the message comes from TensorFlow). ``rpc`` names the method; GetModelStatus is on
    the ModelService, the others on the PredictionService."""

    name: str
    source: str
    rpc: str
    request: Message
    code: grpc.StatusCode
    message: str | None


INVALID, NOT_FOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
REGRESS = ("regress_x_to_y", "tensorflow/serving/regress")
STRING_KEY = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[b"any_key"])
STRING_X = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[b"any_key"])
STRING_X.tensor_shape.dim.add().size = 1
SIGNATURE_DEF = ("signature_def",)


def metadata_request(name=None, fields=()) -> get_model_metadata_pb2.GetModelMetadataRequest:
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    if name is not None:
        request.model_spec.name = name
    request.metadata_field.extend(fields)
    return request


def status_request(name=None, version=None) -> get_model_status_pb2.GetModelStatusRequest:
    request = get_model_status_pb2.GetModelStatusRequest()
    if name is not None:
        request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    return request


RPC_ERRORS = [
    RpcErrorCase("predict without a model spec", "predict_impl_test.cc:113-118 (predict_impl.cc:37-40)", "Predict",
                 predict_pb2.PredictRequest(), INVALID, "Missing ModelSpec"),
    RpcErrorCase("predict without a model name", "predict_impl_test.cc:120-127 (server_core.cc:843-844)", "Predict",
                 predict_request(name=""), INVALID, "ModelSpec has no name specified."),
    RpcErrorCase("predict on an unknown model", "predict_impl_test.cc:129-134 (basic_manager.cc:139-140)", "Predict",
                 predict_request(name="test"), NOT_FOUND, "Servable not found for request: Latest(test)"),
    RpcErrorCase("predict on a version not loaded", "predict_impl_test.cc:129-134 (basic_manager.cc:139-140)", "Predict",
                 predict_request(version=124), NOT_FOUND, f"Servable not found for request: Specific({HP2}, 124)"),
    RpcErrorCase("predict with an unknown label", "server_core.cc:873-891", "Predict", predict_request(name=TWO, version_label="nope"),
                 INVALID, "Unrecognized servable version label: nope"),
    # FAILED_PRECONDITION over gRPC (the REST handler checks first, with its own message)
    RpcErrorCase("predict with an unknown signature", "predict_util.cc:90-93", "Predict", predict_request(signature_name="nope"),
                 grpc.StatusCode.FAILED_PRECONDITION, 'Serving signature key "nope" not found.'),
    RpcErrorCase("predict without inputs", "predict_impl_test.cc:137-151 (predict_util.cc:53-71)", "Predict", predict_request(inputs={}),
                 INVALID, "input size does not match signature: 0!=1 len({}) != len({x}). Sent extra: {}. Missing but required: {x}."),
    RpcErrorCase("predict with an extra input", "predict_impl_test.cc:137-151 (predict_util.cc:53-71)", "Predict",
                 predict_request(inputs={"x": float_tensor([2.0]), "z": float_tensor([1.0])}), INVALID,
                 "input size does not match signature: 2!=1 len({x,z}) != len({x}). Sent extra: {z}. Missing but required: {}."),
    RpcErrorCase("predict with an input the signature does not have", "predict_impl_test.cc:153-173 (message from TensorFlow)",
                 "Predict", predict_request(inputs={"key": STRING_KEY}), INVALID, None),
    RpcErrorCase("predict with an input of the wrong type", "predict_impl_test.cc:209-230", "Predict",
                 predict_request(inputs={"x": STRING_X}), INVALID, None),
    RpcErrorCase("predict with an unknown output filter", "predict_impl_test.cc:175-207 (predict_util.cc:135-153)", "Predict",
                 predict_request(output_filter=["output_filter"]), INVALID,
                 "output tensor alias not found in signature: output_filter Outputs expected to be in the set {y}."),
    RpcErrorCase("predict with a duplicate output filter", "predict_impl_test.cc:175-207 (predict_util.cc:135-153)", "Predict",
                 predict_request(output_filter=["y", "y"]), INVALID, "duplicate output tensor alias: y"),
    RpcErrorCase("regress without input", "servables/tensorflow/util.cc:165-167 (multi_inference_test.cc:156-178)", "Regress",
                 regression_pb2.RegressionRequest(model_spec={"name": HP2, "signature_name": "regress_x_to_y"}), INVALID,
                 "Input is empty."),
    RpcErrorCase("regress with an unknown signature", "regressor.cc:152-155", "Regress",
                 with_input(regression_pb2.RegressionRequest(), signature_name="nope"), INVALID,
                 "No signature was found with the name: nope"),
    RpcErrorCase("classify with an unknown signature", "classifier.cc:157-160", "Classify",
                 with_input(classification_pb2.ClassificationRequest(), signature_name="nope"), INVALID,
                 "No signature was found with the name: nope"),
    RpcErrorCase("classify without a model spec", "classification_service.cc:35-39", "Classify", classification_pb2.ClassificationRequest(),
                 INVALID, "Missing ModelSpec"),
    RpcErrorCase("multi-inference without input", "multi_inference_test.cc:156-178 (util.cc:165-167)", "MultiInference",
                 multi_request(REGRESS, with_input=False), INVALID, "Input is empty."),
    RpcErrorCase("multi-inference with an unknown signature", "multi_inference_test.cc:180-204 (multi_inference.cc:66-70)",
                 "MultiInference", multi_request(("ThisSignatureDoesNotExist", "tensorflow/serving/regress")), INVALID,
                 "Requested signature not found in model graph: ThisSignatureDoesNotExist"),
    RpcErrorCase("multi-inference over two models", "multi_inference_test.cc:207-239 (multi_inference.cc:49-53)", "MultiInference",
                 multi_request(REGRESS, ("regress_x_to_y", "tensorflow/serving/regress", "ModelDoesNotExist")), INVALID,
                 "All ModelSpecs in a MultiInferenceRequest must access the same model name."),
    RpcErrorCase("multi-inference with a signature twice", "multi_inference_test.cc:241-266 (multi_inference.cc:60-63)",
                 "MultiInference", multi_request(REGRESS, REGRESS), INVALID, "Duplicate evaluation of signature: regress_x_to_y"),
    RpcErrorCase("multi-inference on a predict signature", "multi_inference_test.cc:268-291 (multi_inference.cc:80-83)",
                 "MultiInference", multi_request(("serving_default", "tensorflow/serving/predict")), grpc.StatusCode.UNIMPLEMENTED,
                 "Unsupported signature method_name: tensorflow/serving/predict"),
    RpcErrorCase("metadata without a model spec", "get_model_metadata_impl.cc:76-80", "GetModelMetadata", metadata_request(), INVALID,
                 "Missing ModelSpec"),
    RpcErrorCase("metadata without a field", "get_model_metadata_impl.cc:35-38", "GetModelMetadata", metadata_request(HP2), INVALID,
                 "GetModelMetadataRequest must specify at least one metadata_field"),
    RpcErrorCase("metadata of an unsupported field", "get_model_metadata_impl.cc:40-44", "GetModelMetadata",
                 metadata_request(HP2, ["foo"]), INVALID, "Metadata field foo is not supported"),
    RpcErrorCase("metadata of an unknown model", "get_model_metadata_impl.cc:53-54 (basic_manager.cc:139-140)", "GetModelMetadata",
                 metadata_request("nope", SIGNATURE_DEF), NOT_FOUND, "Servable not found for request: Latest(nope)"),
    RpcErrorCase("status without a model spec", "get_model_status_impl_test.cc:94-103 (get_model_status_impl.cc:69-70)",
                 "GetModelStatus", status_request(), INVALID, "Missing ModelSpec"),
    RpcErrorCase("status of an unknown model", "get_model_status_impl_test.cc:105-119 (get_model_status_impl.cc:99-100)",
                 "GetModelStatus", status_request("nope"), NOT_FOUND, "Could not find any versions of model nope"),
    RpcErrorCase("status of an unknown version", "get_model_status_impl_test.cc:121-135 (get_model_status_impl.cc:89-90)",
                 "GetModelStatus", status_request(TWO, 125), NOT_FOUND, f"Could not find version 125 of model {TWO}"),
]


@cases(RPC_ERRORS)
def test_grpc_error(prediction_stub, model_stub, case):
    method = getattr(model_stub if case.rpc == "GetModelStatus" else prediction_stub, case.rpc)
    if case.message is None:
        assert rpc_error(method, case.request)[0] == case.code, case.source
    else:
        assert rpc_error(method, case.request) == (case.code, case.message), case.source


# ------------------------------------------------------------------------------------------------ predict


@dataclass(frozen=True)
class VerifyPredict:
    name: str
    source: str
    model: str
    output: float
    version: int
    specify_output: bool = True


@cases([
    # server_test:282-288 / 290-298 (testGoodModelConfig): with and without output_filter
    VerifyPredict("half_plus_two with output filter", "server_test:282-288", HP2, 3.0, 123),
    VerifyPredict("half_plus_three with output filter", "server_test:282-288", HP3, 4.0, 123),
    VerifyPredict("half_plus_two without output filter", "server_test:290-298", HP2, 3.0, 123, specify_output=False),
    VerifyPredict("half_plus_three without output filter", "server_test:290-298", HP3, 4.0, 123, specify_output=False),
    # versions: latest of two_versions is 124 (0.5x + 3)
    VerifyPredict("latest of two versions", "test_base:251-286", TWO, 4.0, 124),
])
def test_grpc_verify_predict_request(prediction_stub, case):
    """test_base:251-286 (VerifyPredictRequest) and test_base:351-369 (_VerifyModelSpec)."""
    signature_name = "serving_default"
    request = predict_pb2.PredictRequest()
    request.model_spec.name = case.model
    request.model_spec.signature_name = signature_name
    request.inputs["x"].CopyFrom(float_tensor([2.0], dims=[1]))  # test_base:267-270
    if case.specify_output:
        request.output_filter.append("y")  # test_base:274-275
    result = prediction_stub.Predict(request, RPC_TIMEOUT)
    assert "y" in result.outputs  # test_base:281
    assert result.outputs["y"].dtype == types_pb2.DT_FLOAT  # test_base:282
    assert list(result.outputs["y"].float_val) == [case.output]  # test_base:283-284
    assert (result.model_spec.name, result.model_spec.signature_name, result.model_spec.version.value) == (
        case.model,
        signature_name,
        case.version,
    )  # test_base:367-369
    # Tensors are returned as typed fields, not tensor_content (predict_util.cc:177-181, 196-205: the default is
    # kAsProtoField), with the output's shape ([1] here, like the input).
    assert result.outputs["y"].tensor_content == b""
    assert [d.size for d in result.outputs["y"].tensor_shape.dim] == [1]


def exact_predict(signature_name: str | None, output_key: str, inputs_key: str) -> tuple[Message, Message]:
    """A request on version 123 with the scalar input 2.0 and the whole response TF Serving sends back."""
    spec = {"signature_name": signature_name} if signature_name else {}
    request = predict_request(version=123, inputs={inputs_key: float_tensor([2.0])}, **spec)
    expected = predict_pb2.PredictResponse()
    expected.model_spec.CopyFrom(request.model_spec)
    expected.model_spec.signature_name = signature_name or "serving_default"
    expected.outputs[output_key].CopyFrom(float_tensor([3.0 if signature_name is None else 4.0], dims=[]))
    return request, expected


@pytest.mark.parametrize(
    ("request_", "expected", "source"),
    [
        # a scalar input (no tensor_shape) gives a scalar output; the default signature name is filled in
        (*exact_predict(None, "y", "x"), "predict_impl_test.cc:232-258 (PredictionSuccess)"),
        # 0.5 * 2 + 3 = 4
        (*exact_predict("regress_x2_to_y3", "outputs", "inputs"), "predict_impl_test.cc:262-286"),
        (*exact_predict("classify_x2_to_y3", "scores", "inputs"), "predict_impl_test.cc:290-316"),
    ],
    ids=["PredictionSuccess", "predict on regress_x2_to_y3", "predict on classify_x2_to_y3"],
)
def test_grpc_predict_exact_response(prediction_stub, request_, expected, source):
    """The whole response is compared (EqualsProto)."""
    assert prediction_stub.Predict(request_, RPC_TIMEOUT) == expected, source


@pytest.mark.parametrize(("label", "version", "output"), [("stable", 123, 3.0), ("canary", 124, 4.0)])
def test_grpc_predict_version_label(prediction_stub, label, version, output):
    """model_spec.version_label selects a version (serving_config.md:157-162, server_core.cc:853-863); the
    response names the version that answered."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = TWO
    request.model_spec.version_label = label
    request.inputs["x"].CopyFrom(float_tensor([2.0], dims=[1]))
    result = prediction_stub.Predict(request, RPC_TIMEOUT)
    assert (list(result.outputs["y"].float_val), result.model_spec.version.value) == ([output], version), label
    assert result.model_spec.signature_name == "serving_default"  # util.cc:261-275 (MakeModelSpec)


# ------------------------------------------------------------------------------------------------ classify, regress


def test_grpc_classify(prediction_stub):
    # server_test:137-163 (_TestClassify)
    request = with_input(classification_pb2.ClassificationRequest(), signature_name="classify_x_to_y")
    result = prediction_stub.Classify(request, RPC_TIMEOUT)
    assert len(result.result.classifications) == 1  # server_test:156
    assert len(result.result.classifications[0].classes) == 1  # server_test:157
    assert result.result.classifications[0].classes[0].score == 3.0  # server_test:158-160
    assert result.result.classifications[0].classes[0].label == ""  # scores only: no label (api_rest.md:141-143)
    assert (result.model_spec.name, result.model_spec.signature_name, result.model_spec.version.value) == (
        HP2,
        "classify_x_to_y",
        123,
    )  # server_test:161-163


def test_grpc_regress(prediction_stub):
    # server_test:173-197 (_TestRegress)
    request = with_input(regression_pb2.RegressionRequest(), signature_name="regress_x_to_y")
    result = prediction_stub.Regress(request, RPC_TIMEOUT)
    assert [r.value for r in result.result.regressions] == [3.0]  # server_test:192-194
    assert (result.model_spec.name, result.model_spec.signature_name, result.model_spec.version.value) == (
        HP2,
        "regress_x_to_y",
        123,
    )  # server_test:195-197


def test_grpc_regress_version_label(prediction_stub):
    """version_label on Regress (serving_config.md:157-162): two_versions' canary = 124 adds 3."""
    request = with_input(regression_pb2.RegressionRequest(), TWO, signature_name="regress_x_to_y")
    request.model_spec.version_label = "canary"
    result = prediction_stub.Regress(request, RPC_TIMEOUT)
    assert ([r.value for r in result.result.regressions], result.model_spec.version.value) == ([4.0], 124)


# ------------------------------------------------------------------------------------------------ multi-inference


def test_grpc_multi_inference(prediction_stub):
    # server_test:207-242 (_TestMultiInference): regress and classify on one input
    request = multi_request(REGRESS, ("classify_x_to_y", "tensorflow/serving/classify"))
    result = prediction_stub.MultiInference(request, RPC_TIMEOUT)
    assert len(result.results) == 2  # server_test:231
    assert result.results[0].regression_result.regressions[0].value == 3.0  # server_test:232-234
    assert result.results[1].classification_result.classifications[0].classes[0].score == 3.0  # server_test:235-237
    for i in range(2):  # server_test:238-242
        spec = result.results[i].model_spec
        assert (spec.name, spec.signature_name, spec.version.value) == (HP2, request.tasks[i].model_spec.signature_name, 123)


def test_grpc_multi_inference_exact_response(prediction_stub):
    """multi_inference_test.cc:323-361: regress_x_to_y (0.5x + 2) and regress_x_to_y2 (0.5x + 3), whole
    response compared; and 364-401 for regress + classify."""
    request = multi_request(
        REGRESS, ("regress_x_to_y2", "tensorflow/serving/regress"), ("classify_x_to_y", "tensorflow/serving/classify")
    )
    expected = inference_pb2.MultiInferenceResponse()
    for task, value in zip(request.tasks, (3.0, 4.0, 3.0)):
        result = expected.results.add()
        result.model_spec.CopyFrom(task.model_spec)
        result.model_spec.version.value = 123
        if task.method_name.endswith("regress"):
            result.regression_result.regressions.add().value = value
        else:
            result.classification_result.classifications.add().classes.add().score = value
    assert prediction_stub.MultiInference(request, RPC_TIMEOUT) == expected


# ------------------------------------------------------------------------------------------------ metadata, status


def test_grpc_get_model_metadata(prediction_stub):
    # server_test:116-135 (testGetModelMetadata)
    result = prediction_stub.GetModelMetadata(metadata_request(HP2, SIGNATURE_DEF), RPC_TIMEOUT)
    assert result.model_spec.name == HP2  # server_test:131
    assert result.model_spec.version.value == 123  # server_test:132-133
    assert list(result.metadata) == ["signature_def"]  # server_test:134-135
    # get_model_metadata_impl.cc:55-65: a SignatureDefMap packed in an Any, the same map the REST API prints
    signature_defs = get_model_metadata_pb2.SignatureDefMap()
    assert result.metadata["signature_def"].Unpack(signature_defs)
    as_json = json_format.MessageToDict(
        signature_defs, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    assert as_json == EXPECTED_SIGNATURE_DEF_MAP


def test_grpc_get_model_metadata_version_label(prediction_stub):
    """version_label resolves like the other APIs (get_model_metadata_impl.cc:53-54)."""
    request = metadata_request(TWO, SIGNATURE_DEF)
    request.model_spec.version_label = "stable"
    assert prediction_stub.GetModelMetadata(request, RPC_TIMEOUT).model_spec.version.value == 123


def test_grpc_get_model_status(model_stub):
    # server_test:97-114 (testGetModelStatus)
    result = model_stub.GetModelStatus(status_request(HP2), RPC_TIMEOUT)
    assert len(result.model_version_status) == 1  # server_test:111
    assert result.model_version_status[0].version == 123  # server_test:112
    assert result.model_version_status[0].status.error_code == 0  # server_test:113-114
    assert result.model_version_status[0].state == AVAILABLE


def test_grpc_get_model_status_of_every_version(model_stub):
    """get_model_status_impl_test.cc:137-161: both versions, OK, empty messages (newest first:
    servable_state_monitor.h:68-69)."""
    result = model_stub.GetModelStatus(status_request(TWO), RPC_TIMEOUT)
    assert [(s.version, s.state, s.status.error_code, s.status.error_message) for s in result.model_version_status] == [
        (124, AVAILABLE, 0, ""),
        (123, AVAILABLE, 0, ""),
    ]


def test_grpc_get_model_status_of_one_version(model_stub):
    """get_model_status_impl_test.cc:163-179."""
    result = model_stub.GetModelStatus(status_request(TWO, 123), RPC_TIMEOUT)
    assert [(s.version, s.status.error_code) for s in result.model_version_status] == [(123, 0)]

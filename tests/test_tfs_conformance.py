"""Conformance of ``python -m app.serve`` with TensorFlow Serving's REST and gRPC APIs.

TF Serving's own tests and sources are the specification here. Every expectation below is taken from the
tensorflow/serving repository and cites ``file:line`` of it (paths shortened: ``handler_test`` is
``tensorflow_serving/model_servers/http_rest_api_handler_test.cc``, ``server_test`` is
``tensorflow_serving/model_servers/tensorflow_model_server_test.py``, ``test_base`` is
``tensorflow_serving/model_servers/test_util/tensorflow_model_server_test_base.py``, ``api_rest.md`` and
``serving_config.md`` are under ``tensorflow_serving/g3doc/``, other ``.cc`` files are under
``tensorflow_serving/{model_servers,servables/tensorflow,util,core}/``). Status codes of REST errors follow
``http_server.cc:46-87`` (INVALID_ARGUMENT and FAILED_PRECONDITION -> 400, NOT_FOUND -> 404,
UNIMPLEMENTED -> 501); gRPC errors carry the TF status code and message unchanged (``grpc_status_util.cc:24-34``).

One server process serves, from a ``--model_config_file`` (``test_base:200-201``), three models built by
``tests/half_plus_two.py``:

* ``saved_model_half_plus_two_2_versions``: the model of handler_test (``handler_test:54-58``, ``85-115``):
  policy ``specific {123}``, label ``Version_Label`` -> 123. Its folder also holds version 124, which
  computes ``0.5x + 3``; the policy must keep it unloaded, so every handler_test answer (``0.5x + 2``) holds.
* ``two_versions``: the same folder with policy ``specific {123, 124}`` (both loaded, as in
  ``get_model_status_impl_test.cc:60-70``) and labels ``stable`` -> 123, ``canary`` -> 124
  (``serving_config.md:138-155``). Version 124 deliberately differs (``0.5x + 3``; TF Serving's two versions are
  identical copies), so that which version answered shows in the numbers.
* ``half_plus_three``: the model of the REST guide (``api_rest.md:411-498``), default (latest) policy.

Labels are assigned at start-up, which TF Serving only allows with
``--allow_version_labels_for_unavailable_models`` (``serving_config.md:196-199``, ``server_core.cc:574-583``).
"""

from __future__ import annotations

import http.client
import json
import math
import time
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import pytest
from google.protobuf import json_format
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

from app.serving.process import start_server
from tests.half_plus_two import build_test_models

HP2 = "saved_model_half_plus_two_2_versions"  # handler_test:55
HP3 = "half_plus_three"
TWO = "two_versions"
RPC_TIMEOUT = 20.0  # server_test:57

MODEL_CONFIG = """
model_config_list {{
  config {{
    name: "{hp2}"
    base_path: "{base}/half_plus_two"
    model_platform: "tensorflow"
    model_version_policy {{ specific {{ versions: 123 }} }}
    version_labels {{ key: "Version_Label" value: 123 }}
  }}
  config {{
    name: "{two}"
    base_path: "{base}/half_plus_two"
    model_platform: "tensorflow"
    model_version_policy {{ specific {{ versions: 123 versions: 124 }} }}
    version_labels {{ key: "stable" value: 123 }}
    version_labels {{ key: "canary" value: 124 }}
  }}
  config {{
    name: "{hp3}"
    base_path: "{base}/half_plus_three"
    model_platform: "tensorflow"
  }}
}}
"""


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = build_test_models(tmp_path_factory.mktemp("tfs_models"))
    config = Path(base) / "models.config"
    config.write_text(MODEL_CONFIG.format(hp2=HP2, two=TWO, hp3=HP3, base=base))
    proc = start_server(
        None,
        f"--model_config_file={config}",
        "--allow_version_labels_for_unavailable_models=true",
        "--mixed-precision",
        "off",
    )
    try:
        _wait_until_available(proc, {HP2: 1, TWO: 2, HP3: 1})
        yield proc
    finally:
        proc.stop()


def _wait_until_available(proc, expected_versions: dict[str, int], timeout: float = 60) -> None:
    """Like test_base:71-87 (WaitForServerReady): poll until every model reports its versions AVAILABLE.
    Gives up quietly after ``timeout`` (the status tests then say what is wrong)."""
    deadline = time.monotonic() + timeout
    while True:
        ready = True
        for name, count in expected_versions.items():
            try:
                status, _, body = rest(proc, "GET", f"/v1/models/{name}")
                states = [v["state"] for v in json.loads(body)["model_version_status"]] if status == 200 else []
            except (OSError, ValueError, KeyError, TypeError):
                states = []
            ready = ready and states.count("AVAILABLE") == count
        if ready or time.monotonic() > deadline:
            return
        time.sleep(0.5)


@pytest.fixture(scope="module")
def prediction_stub(server):
    channel = grpc.insecure_channel(server.grpc_address)
    yield prediction_service_pb2_grpc.PredictionServiceStub(channel)
    channel.close()


@pytest.fixture(scope="module")
def model_stub(server):
    channel = grpc.insecure_channel(server.grpc_address)
    yield model_service_pb2_grpc.ModelServiceStub(channel)
    channel.close()


# ------------------------------------------------------------------------------------------------ helpers


def rest(proc, method: str, path: str, body: str | bytes | None = None, headers: dict | None = None):
    """One HTTP request with the path sent exactly as given; returns (status, headers, body text).

    No Content-Type is sent: TF Serving reads the body bytes whatever the headers say (http_server.cc:152-182).
    """
    url = urlsplit(proc.rest_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read().decode()
    finally:
        connection.close()


def post(proc, path: str, body):
    """POST a JSON body (a str is sent verbatim) and return (status, parsed JSON body)."""
    status, headers, text = rest(proc, "POST", path, body if isinstance(body, str) else json.dumps(body))
    return status, _parse(text)


def get(proc, path: str):
    status, headers, text = rest(proc, "GET", path)
    return status, _parse(text)


def _parse(text: str):
    # TF Serving's JSON may carry NaN/Infinity tokens (api_rest.md:388-409); Python's json reads them.
    try:
        return json.loads(text)
    except ValueError:
        return {"<not JSON>": text}


def expect_error(result, status: int, message: str, *, exact: bool = True) -> None:
    """An error answer: the HTTP status and the body {"error": message} (api_rest.md:12-19,
    json_tensor.cc:1129-1139); ``exact=False`` checks a substring, as TF Serving's tests do (HasSubstr)."""
    got_status, body = result
    error = body.get("error") if isinstance(body, dict) else None
    matches = isinstance(error, str) and (error == message if exact else message in error)
    assert got_status == status and matches, (
        f"expected {status} with error {'' if exact else 'containing '}{message!r}, got {got_status} {body!r}"
    )


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


def rpc_error(method, request) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        method(request, timeout=RPC_TIMEOUT)
    return info.value.code(), info.value.details()


def _tensor_info(name: str, dtype: str = "DT_FLOAT", unknown_rank: bool = False) -> dict:
    shape = (
        {"dim": [], "unknown_rank": True}
        if unknown_rank
        else {"dim": [{"size": "-1", "name": ""}, {"size": "1", "name": ""}], "unknown_rank": False}
    )
    return {"dtype": dtype, "tensor_shape": shape, "name": name}


def _signature(method: str, inputs: dict, outputs: dict) -> dict:
    return {"inputs": inputs, "outputs": outputs, "method_name": f"tensorflow/serving/{method}", "defaults": {}}


_EXAMPLE = _tensor_info("tf_example:0", "DT_STRING", unknown_rank=True)
# tensorflow_serving/servables/tensorflow/testdata/saved_model_half_plus_two_2_versions_metadata.json:1-238
# (the file handler_test:526-531 compares against), written out with two helpers for brevity.
EXPECTED_SIGNATURE_DEF_MAP = {
    "signature_def": {
        # ..._metadata.json:10-51
        "regress_x2_to_y3": _signature("regress", {"inputs": _tensor_info("x2:0")}, {"outputs": _tensor_info("y3:0")}),
        # ..._metadata.json:52-93
        "serving_default": _signature("predict", {"x": _tensor_info("x:0")}, {"y": _tensor_info("y:0")}),
        # ..._metadata.json:94-126
        "classify_x_to_y": _signature("classify", {"inputs": _EXAMPLE}, {"scores": _tensor_info("y:0")}),
        # ..._metadata.json:127-168
        "classify_x2_to_y3": _signature("classify", {"inputs": _tensor_info("x2:0")}, {"scores": _tensor_info("y3:0")}),
        # ..._metadata.json:169-201
        "regress_x_to_y2": _signature("regress", {"inputs": _EXAMPLE}, {"outputs": _tensor_info("y2:0")}),
        # ..._metadata.json:202-234
        "regress_x_to_y": _signature("regress", {"inputs": _EXAMPLE}, {"outputs": _tensor_info("y:0")}),
    }
}


def expected_metadata(name: str, version: int) -> dict:
    # ..._metadata.json:2-9: model_spec with an empty signature_name and the version as a JSON string, then
    # "metadata": {"signature_def": <SignatureDefMap>} with no "@type" (http_rest_api_util.cc:147-201).
    return {
        "model_spec": {"name": name, "signature_name": "", "version": str(version)},
        "metadata": {"signature_def": EXPECTED_SIGNATURE_DEF_MAP},
    }


def status_json(*versions: int) -> dict:
    # handler_test:459-470 (one entry per version; newest first: servable_state_monitor.h:68-69)
    return {
        "model_version_status": [
            {"version": str(v), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
            for v in versions
        ]
    }


# ------------------------------------------------------------------------------------------------ REST: predict


def test_rest_predict_handler_test_cases(server):
    """handler_test:330-385 (Predict), verbatim, including the JSON Content-Type of every answer."""
    cases = [
        # handler_test:335-340: latest version; [2, 2] input to a [-1, 1] signature is fed as is (no shape check)
        (f"/v1/models/{HP2}:predict", '{"instances": [[1.0, 2.0], [3.0, 4.0]]}', {"predictions": [[2.5, 3.0], [3.5, 4.0]]}),
        # handler_test:345-350: specific version
        (f"/v1/models/{HP2}/versions/123:predict", '{"instances": [1.0, 2.0]}', {"predictions": [2.5, 3.0]}),
        # handler_test:355-360: version label
        (f"/v1/models/{HP2}/labels/Version_Label:predict", '{"instances": [1.0, 2.0]}', {"predictions": [2.5, 3.0]}),
        # handler_test:365-371: explicit signature_name
        (
            f"/v1/models/{HP2}/versions/123:predict",
            '{"signature_name": "serving_default", "instances": [3.0, 4.0]}',
            {"predictions": [3.5, 4.0]},
        ),
        # handler_test:376-382: columnar inputs -> "outputs"
        (
            f"/v1/models/{HP2}/versions/123:predict",
            '{"signature_name": "serving_default", "inputs": [3.0, 4.0]}',
            {"outputs": [3.5, 4.0]},
        ),
    ]
    for path, body, expected in cases:
        status, headers, text = rest(server, "POST", path, body)
        assert (status, _parse(text)) == (200, expected), (path, body)
        # handler_test:341-342 (and after every case): the only header the handler adds
        assert headers.get("Content-Type") == "application/json", (path, headers.get("Content-Type"))


def test_rest_predict_model_server_test_cases(server):
    # server_test:486-498 (testPredictREST)
    assert post(server, f"/v1/models/{HP2}:predict", {"instances": [2.0, 3.0, 4.0]}) == (
        200,
        {"predictions": [3.0, 3.5, 4.0]},
    )
    # server_test:507-519 (testPredictColumnarREST)
    assert post(server, f"/v1/models/{HP2}:predict", {"inputs": [2.0, 3.0, 4.0]}) == (200, {"outputs": [3.0, 3.5, 4.0]})


def test_rest_predict_api_rest_md_example(server):
    # api_rest.md:470-473: {"instances": [1.0,2.0,5.0]} on half_plus_three
    assert post(server, f"/v1/models/{HP3}:predict", '{"instances": [1.0,2.0,5.0]}') == (
        200,
        {"predictions": [3.5, 4.0, 5.5]},
    )


def test_rest_predict_named_inputs(server):
    """Row format as a list of objects (api_rest.md:219-244) and columnar format as an object
    (api_rest.md:256-271); one output tensor, so its name is left out (api_rest.md:291-294, 305-306)."""
    assert post(server, f"/v1/models/{HP2}:predict", {"instances": [{"x": 1.0}, {"x": 2.0}]}) == (
        200,
        {"predictions": [2.5, 3.0]},
    )
    assert post(server, f"/v1/models/{HP2}:predict", {"inputs": {"x": [1.0, 2.0]}}) == (200, {"outputs": [2.5, 3.0]})
    # api_rest.md:188 + 301: "inputs" may be a single value, "outputs" then is one (a scalar tensor)
    assert post(server, f"/v1/models/{HP2}:predict", {"inputs": 2.0}) == (200, {"outputs": 3.0})


def test_rest_predict_other_signatures(server):
    """Predict runs classify and regress signatures too (predict_impl_test.cc:262-316, predict_util.cc:38-49):
    regress_x2_to_y3 / classify_x2_to_y3 compute 0.5 * x2 + 3."""
    for signature in ("regress_x2_to_y3", "classify_x2_to_y3"):
        body = {"signature_name": signature, "instances": [2.0]}
        assert post(server, f"/v1/models/{HP2}:predict", body) == (200, {"predictions": [4.0]}), signature


def test_rest_predict_versions_and_labels(server):
    """Version and label routing (api_rest.md:168-173; serving_config.md:212-221); two_versions' 124 adds 3."""
    body = {"instances": [1.0, 2.0]}
    assert post(server, f"/v1/models/{TWO}:predict", body) == (200, {"predictions": [3.5, 4.0]})  # latest = 124
    assert post(server, f"/v1/models/{TWO}/versions/123:predict", body) == (200, {"predictions": [2.5, 3.0]})
    assert post(server, f"/v1/models/{TWO}/versions/124:predict", body) == (200, {"predictions": [3.5, 4.0]})
    assert post(server, f"/v1/models/{TWO}/labels/stable:predict", body) == (200, {"predictions": [2.5, 3.0]})
    assert post(server, f"/v1/models/{TWO}/labels/canary:predict", body) == (200, {"predictions": [3.5, 4.0]})


def test_rest_predict_float_output_precision(server):
    """Floats are written with six significant digits (json_tensor_test.cc:922-948):
    0.5 * float32(0.1) + 2 = 2.04999995... is written 2.05."""
    status, headers, text = rest(server, "POST", f"/v1/models/{HP2}:predict", '{"instances": [0.1]}')
    assert (status, json.loads(text)) == (200, {"predictions": [2.05]}), text


def test_rest_predict_non_finite_values(server):
    """NaN and +-Infinity are accepted in requests and written in answers (api_rest.md:388-409,
    json_tensor.cc:483-485 kParseNanAndInfFlag, json_tensor_test.cc:951-974)."""
    status, headers, text = rest(server, "POST", f"/v1/models/{HP2}:predict", '{"instances": [NaN, Infinity, -Infinity]}')
    assert status == 200, text
    predictions = json.loads(text)["predictions"]
    assert math.isnan(predictions[0]) and predictions[1:] == [math.inf, -math.inf], text


def test_rest_predict_request_errors(server):
    path = f"/v1/models/{HP2}:predict"
    # handler_test:291-295 (json_tensor.cc:474-476)
    expect_error(post(server, path, ""), 400, "JSON Parse error: The document is empty")
    # handler_test:298-301 (json_tensor.cc:486-489: "... at offset: N")
    expect_error(post(server, path, "instances = [1, 2]"), 400, "JSON Parse error: Invalid value", exact=False)
    # handler_test:304-308 (json_tensor.cc:262-266), wrapped per element by json_tensor.cc:583-586 as
    # "Failed to process element: 0 of 'instances' list. Error: <status.ToString()>"
    result = post(server, path, '{ "instances": ["x", "y"] }')
    expect_error(result, 400, "Failed to process element: 0 of 'instances' list. Error: ", exact=False)
    expect_error(result, 400, 'JSON Value: "x" Type: String is not of expected type: float', exact=False)
    # handler_test:322-327 (json_tensor.cc:280-283)
    expect_error(
        post(server, path, '{ "signature_name": 100 }'), 400, "'signature_name' key must be a string value.", exact=False
    )
    # json_tensor.cc:498-499: the document must be an object
    expect_error(post(server, path, "[1.0, 2.0]"), 400, "Is not object", exact=False)
    # json_tensor.cc:704
    expect_error(post(server, path, "{}"), 400, "Missing 'inputs' or 'instances' key")
    # json_tensor_test.cc:663-670 (json_tensor.cc:677-681)
    expect_error(
        post(server, path, '{"instances": [1.0], "inputs": [1.0]}'),
        400,
        "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist",
        exact=False,
    )
    # json_tensor.cc:683-685 and 687-689
    expect_error(post(server, path, '{"instances": 1.0}'), 400, "Expecting 'instances' to be an list/array", exact=False)
    expect_error(post(server, path, '{"instances": []}'), 400, "No values in 'instances' array", exact=False)
    # json_tensor_test.cc:672-678 (json_tensor.cc:462-464; element 2 fails: json_tensor.cc:583-586)
    result = post(server, path, '{"instances": [[1,2],[3,4],[5,6,7]]}')
    expect_error(result, 400, "Failed to process element: 2 of 'instances' list. Error: ", exact=False)
    expect_error(result, 400, "Expecting tensor size: 2 but got: 3", exact=False)
    # json_tensor_test.cc:688-694 (json_tensor.cc:465-468)
    result = post(server, path, '{"instances": [1, [1]]}')
    expect_error(result, 400, "Failed to process element: 1 of 'instances' list. Error: ", exact=False)
    expect_error(result, 400, "Expecting shape", exact=False)


def test_rest_predict_unknown_signature(server):
    # http_rest_api_handler.cc:233-238 (GetInfoMap): INVALID_ARGUMENT -> 400
    expect_error(
        post(server, f"/v1/models/{HP2}:predict", {"signature_name": "nope", "instances": [1.0]}),
        400,
        'Serving signature name: "nope" not found in signature def',
    )


def test_rest_model_name_version_and_label_errors(server):
    # handler_test:265-268; message: basic_manager.cc:139-140 + manager.h:150-161; NOT_FOUND -> 404
    expect_error(
        post(server, "/v1/models/foo:predict", '{ "instances": [1] }'), 404, "Servable not found for request: Latest(foo)"
    )
    # handler_test:271-274
    expect_error(
        post(server, "/v1/models/foo/versions/50:predict", '{ "instances": [1] }'),
        404,
        "Servable not found for request: Specific(foo, 50)",
    )
    # handler_test:276-280 (a valid name, a version that is not loaded)
    expect_error(
        post(server, f"/v1/models/{HP2}/versions/99:predict", '{ "instances": [1] }'),
        404,
        f"Servable not found for request: Specific({HP2}, 99)",
    )
    # The specific policy keeps version 124 of this model unloaded (it is on disk).
    expect_error(
        post(server, f"/v1/models/{HP2}/versions/124:predict", '{ "instances": [1] }'),
        404,
        f"Servable not found for request: Specific({HP2}, 124)",
    )
    # api_rest.md:490-497
    status, headers, text = rest(server, "POST", "/v1/models/half:predict", '{"instances": [1.0,5.0]}')
    assert (status, headers.get("Content-Type"), json.loads(text)) == (
        404,
        "application/json",
        {"error": "Servable not found for request: Latest(half)"},
    )
    # handler_test:311-319; server_core.cc:890-891
    expect_error(
        post(server, f"/v1/models/{HP2}/labels/Version_Nonexistent:predict", '{ "instances": ["x", "y"] }'),
        400,
        "Unrecognized servable version label: Version_Nonexistent",
    )


# ------------------------------------------------------------------------------------------------ REST: classify, regress


def test_rest_regress_and_classify_handler_test_cases(server):
    regress = '{"signature_name": "regress_x_to_y", "examples": [ { "x": 80.0 } ] }'
    # handler_test:392-396 (latest), 401-407 (version 123), 412-418 (label)
    for path in (
        f"/v1/models/{HP2}:regress",
        f"/v1/models/{HP2}/versions/123:regress",
        f"/v1/models/{HP2}/labels/Version_Label:regress",
    ):
        status, headers, text = rest(server, "POST", path, regress)
        assert (status, _parse(text)) == (200, {"results": [42]}), path
        assert headers.get("Content-Type") == "application/json"  # handler_test:397-398
    # handler_test:428-432
    classify = '{"signature_name": "classify_x_to_y", "examples": [ { "x": 20.0 } ] }'
    assert post(server, f"/v1/models/{HP2}:classify", classify) == (200, {"results": [[["", 12]]]})
    # handler_test:437-443
    classify = '{"signature_name": "classify_x_to_y", "examples": [ { "x": 10.0 } ] }'
    assert post(server, f"/v1/models/{HP2}/labels/Version_Label:classify", classify) == (200, {"results": [[["", 7]]]})


def test_rest_regress_and_classify_model_server_test_cases(server):
    # server_test:446-457 (testClassifyREST)
    body = {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]}
    assert post(server, f"/v1/models/{HP2}:classify", body) == (200, {"results": [[["", 3.0]]]})
    # server_test:466-477 (testRegressREST)
    body = {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]}
    assert post(server, f"/v1/models/{HP2}:regress", body) == (200, {"results": [3.0]})
    # api_rest.md:479-483 (half_plus_three's regress signature is named "tensorflow/serving/regress")
    body = '{"signature_name": "tensorflow/serving/regress", "examples": [{"x": 1.0}, {"x": 2.0}]}'
    assert post(server, f"/v1/models/{HP3}:regress", body) == (200, {"results": [3.5, 4.0]})


def test_rest_regress_examples_forms_and_context(server):
    """Feature values may be a value or a list (api_rest.md:96-115, json_tensor_test.cc:1242-1310); features in
    "context" are shared by every example (api_rest.md:89-94, json_tensor_test.cc:1312-1443): TF Serving
    prefixes the serialized context to each serialized example (servables/tensorflow/util.cc:183-203)."""
    body = {"signature_name": "regress_x_to_y", "examples": [{"x": [1.0]}, {"x": 2.0}, {"x": [5.0]}]}
    assert post(server, f"/v1/models/{HP2}:regress", body) == (200, {"results": [2.5, 3.0, 4.5]})
    body = {"signature_name": "regress_x_to_y", "context": {"x": 4.0}, "examples": [{"x2": 1.0}, {"x2": 2.0}]}
    assert post(server, f"/v1/models/{HP2}:regress", body) == (200, {"results": [4.0, 4.0]})
    body = {"signature_name": "classify_x_to_y", "context": {"x2": 7.0}, "examples": [{"x": 1.0}, {"x": 2.0}]}
    assert post(server, f"/v1/models/{HP2}:classify", body) == (200, {"results": [[["", 2.5]], [["", 3.0]]]})
    # Version routing for regress (two_versions' 124 adds 3)
    body = {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]}
    assert post(server, f"/v1/models/{TWO}/labels/canary:regress", body) == (200, {"results": [4.0]})
    assert post(server, f"/v1/models/{TWO}/versions/123:regress", body) == (200, {"results": [3.0]})


def test_rest_classify_regress_request_errors(server):
    path = f"/v1/models/{HP2}:regress"
    # json_tensor_test.cc:1447-1455 (json_tensor.cc:280-283)
    expect_error(
        post(server, path, '{"signature_name": [ "hello" ], "examples": [ { "x": [ 1.0 ] } ]}'),
        400,
        "'signature_name' key must be a string",
        exact=False,
    )
    # json_tensor_test.cc:1458-1464 (json_tensor.cc:798-800)
    expect_error(
        post(server, path, '{"context": [ { "x": [ 1.0 ] } ]}'), 400, "Example must be JSON object but got JSON Array"
    )
    # json_tensor.cc:838-841 (the message says "classify" for regress too)
    expect_error(
        post(server, path, '{"signature_name": "regress_x_to_y"}'),
        400,
        "When method is classify, key 'examples' is expected and was not found",
        exact=False,
    )
    # json_tensor_test.cc:1467-1473 (json_tensor.cc:843-846)
    expect_error(post(server, path, '{"examples": { "x": [ 1.0 ] }}'), 400, "list/array", exact=False)
    # json_tensor.cc:848-850
    expect_error(post(server, path, '{"examples": []}'), 400, "'examples' value is an empty array", exact=False)
    # json_tensor_test.cc:1476-1482
    expect_error(
        post(server, path, '{"examples": [ [ { "x": [ 1.0 ] } ] ]}'), 400, "Example must be JSON object but got JSON Array"
    )
    # json_tensor_test.cc:1485-1492 (json_tensor.cc:740-743)
    expect_error(
        post(server, path, '{"examples": [ { "x": [ 10, null ] } ]}'),
        400,
        "Feature: x has element with unexpected JSON type: Null",
    )
    # json_tensor_test.cc:1495-1502 (json_tensor.cc:731-732)
    expect_error(
        post(server, path, '{"examples": [ { "x": [ 10, 10.0 ] } ]}'),
        400,
        "Unexpected element type in feature: x expecting type: int64",
    )
    # json_tensor_test.cc:1505-1512 and 1515-1522 (json_tensor.cc:751-756, 763-766)
    expect_error(
        post(server, path, '{"examples": [ { "x": [ 10, { "test": 10 } ] } ]}'),
        400,
        "Feature: x has element with unexpected JSON type: Object",
    )
    expect_error(
        post(server, path, '{"examples": [ { "x": [ [10], 20 ] } ]}'),
        400,
        "Feature: x has element with unexpected JSON type: Array",
    )
    # json_tensor_test.cc:1525-1531 (json_tensor.cc:784-787)
    expect_error(
        post(server, path, '{"examples": [ { "x": [ 20, 18446744073709551603 ] } ]}'),
        400,
        "Feature: x has uint64_t element. Only int64_t is supported.",
    )


def test_rest_regress_integer_feature_is_int64(server):
    """A whole JSON number becomes an int64_list feature (json_tensor.cc:774-790, json_tensor_test.cc:1250,
    1280-1284): it is not turned into a float, so parsing it as the float feature "x" fails in the model."""
    status, body = post(server, f"/v1/models/{HP2}:regress", {"signature_name": "regress_x_to_y", "examples": [{"x": 2}]})
    assert status == 400 and "error" in body, (status, body)


def test_rest_classify_regress_signature_errors(server):
    # regressor.cc:152-155 / classifier.cc:157-160: INVALID_ARGUMENT -> 400
    body = {"signature_name": "nope", "examples": [{"x": 1.0}]}
    expect_error(post(server, f"/v1/models/{HP2}:regress", body), 400, "No signature was found with the name: nope")
    expect_error(post(server, f"/v1/models/{HP2}:classify", body), 400, "No signature was found with the name: nope")
    # Without signature_name, serving_default (a predict signature with input "x") is used; with the method
    # name check off by default (server.h:102), its inputs are checked: regressor.cc:186-190, classifier.cc:194-198
    body = {"examples": [{"x": 1.0}]}
    expect_error(
        post(server, f"/v1/models/{HP2}:regress", body), 400, "No regression inputs found in SignatureDef: ", exact=False
    )
    expect_error(
        post(server, f"/v1/models/{HP2}:classify", body),
        400,
        "No classification inputs found in SignatureDef: ",
        exact=False,
    )
    # classifier.cc:204-211: a regress signature has neither "classes" nor "scores"
    body = {"signature_name": "regress_x_to_y", "examples": [{"x": 1.0}]}
    expect_error(
        post(server, f"/v1/models/{HP2}:classify", body),
        400,
        'Expected classification signature outputs to contain at least one of "classes" or "scores". Signature was: ',
        exact=False,
    )


# ------------------------------------------------------------------------------------------------ REST: status, metadata


def test_rest_model_status(server):
    # handler_test:454-470 (all versions), 473-491 (/versions/123), 494-512 (/labels/Version_Label)
    for path in (f"/v1/models/{HP2}", f"/v1/models/{HP2}/versions/123", f"/v1/models/{HP2}/labels/Version_Label"):
        status, headers, text = rest(server, "GET", path)
        assert (status, _parse(text)) == (200, status_json(123)), path
        assert headers.get("Content-Type") == "application/json"  # handler_test:457-458
    # api_rest.md:451-464
    assert get(server, f"/v1/models/{HP3}") == (200, status_json(123))
    # get_model_status_impl_test.cc:137-161: every loaded version; newest first (servable_state_monitor.h:68-69)
    assert get(server, f"/v1/models/{TWO}") == (200, status_json(124, 123))
    # get_model_status_impl_test.cc:163-179
    assert get(server, f"/v1/models/{TWO}/versions/124") == (200, status_json(124))


def test_rest_model_status_ignores_label(server):
    """GetModelStatus looks at model_spec.version only (get_model_status_impl.cc:82-107): with a label, the
    status of every version comes back, even for a label that does not exist."""
    assert get(server, f"/v1/models/{TWO}/labels/stable") == (200, status_json(124, 123))
    assert get(server, f"/v1/models/{TWO}/labels/no_such_label") == (200, status_json(124, 123))


def test_rest_model_status_errors(server):
    # get_model_status_impl_test.cc:105-119; message get_model_status_impl.cc:99-100
    expect_error(get(server, "/v1/models/nope"), 404, "Could not find any versions of model nope")
    # get_model_status_impl_test.cc:121-135; message get_model_status_impl.cc:89-90
    expect_error(get(server, f"/v1/models/{TWO}/versions/125"), 404, f"Could not find version 125 of model {TWO}")
    # The specific policy never loads 124 of this model, so its state is unknown
    expect_error(get(server, f"/v1/models/{HP2}/versions/124"), 404, f"Could not find version 124 of model {HP2}")
    # handler_test:193-196 (http_rest_api_handler.cc:187-188)
    expect_error(get(server, "/v1/models"), 400, "Missing model name in request.")


def test_rest_model_metadata(server):
    # handler_test:521-531: compared after JSON parsing with ..._2_versions_metadata.json
    status, headers, text = rest(server, "GET", f"/v1/models/{HP2}/metadata")
    assert (status, _parse(text)) == (200, expected_metadata(HP2, 123))
    assert headers.get("Content-Type") == "application/json"  # handler_test:524-525
    # api_rest.md:50-55: /versions/N and /labels/L select the version (get_model_metadata_impl.cc:53-62)
    assert get(server, f"/v1/models/{HP2}/labels/Version_Label/metadata") == (200, expected_metadata(HP2, 123))
    assert get(server, f"/v1/models/{TWO}/metadata") == (200, expected_metadata(TWO, 124))
    assert get(server, f"/v1/models/{TWO}/versions/123/metadata") == (200, expected_metadata(TWO, 123))
    assert get(server, f"/v1/models/{TWO}/labels/canary/metadata") == (200, expected_metadata(TWO, 124))
    # Errors go through GetServableHandle (get_model_metadata_impl.cc:53-54)
    expect_error(get(server, "/v1/models/nope/metadata"), 404, "Servable not found for request: Latest(nope)")
    expect_error(
        get(server, f"/v1/models/{TWO}/versions/125/metadata"), 404, f"Servable not found for request: Specific({TWO}, 125)"
    )
    expect_error(
        get(server, f"/v1/models/{TWO}/labels/nope/metadata"), 400, "Unrecognized servable version label: nope"
    )


# ------------------------------------------------------------------------------------------------ REST: paths


@pytest.mark.parametrize(
    ("method", "path", "source"),
    [
        ("GET", "/v1/foo", "handler_test:183-186"),
        ("POST", "/v1/foo", "handler_test:188-191"),
        ("GET", "/v1/models/debug/model_name", "handler_test:197-200"),
        ("POST", "/v1/models", "handler_test:202-205"),
        ("GET", "/v1/models/foo:predict", "handler_test:207-210"),
        ("GET", "/v1/models/foo/version/50:predict", "handler_test:212-215"),
        ("POST", "/v1/models/foo/version/50:regress", "handler_test:217-220"),
        ("POST", "/v1/models/foo/versions/HELLO:regress", "handler_test:222-226"),
        ("POST", "/v1/models/foo/metadata", "handler_test:236-239"),
        ("POST", "/v1/models/foo/label/some_label:regress", "handler_test:241-245"),
        # Version and label together cannot match the path regex (http_rest_api_util.cc:31-34), so
        # FillModelSpecWithNameVersionAndLabel's "Both model version ... cannot be supplied." is never reached.
        ("POST", "/v1/models/foo/versions/50/labels/some_label:regress", "handler_test:247-251"),
        ("POST", "/v1/models/foo/versions/some_label:regress", "handler_test:253-257"),
        ("POST", f"/v1/models/{HP2}:explain", "http_rest_api_util.cc:32 (classify|regress|predict only)"),
        ("GET", f"/v1/models/{HP2}/", "http_rest_api_util.cc:33-34 (no trailing slash)"),
    ],
)
def test_rest_malformed_paths(server, method, path, source):
    # http_rest_api_handler.cc:74-75: the status stays "Malformed request: <METHOD> <path>" (INVALID_ARGUMENT)
    body = '{"instances": [1.0]}' if method == "POST" else None
    status, headers, text = rest(server, method, path, body)
    assert (status, _parse(text)) == (400, {"error": f"Malformed request: {method} {path}"}), source


def test_rest_version_that_does_not_fit_int64(server):
    # handler_test:228-234 (http_rest_api_util.cc:115-120)
    path = "/v1/models/foo/versions/18446744073709551615:regress"
    expect_error(post(server, path, ""), 400, "Failed to convert version: 18446744073709551615 to numeric.")


def test_rest_paths_are_case_insensitive(server):
    """The path regexes are "(?i)" (http_rest_api_util.cc:31-34, http_rest_api_util.h:33); the model name
    and label are used as written, and are URL-decoded (http_rest_api_util.cc:109-129)."""
    assert post(server, f"/V1/MODELS/{HP2}/VERSIONS/123:predict", {"instances": [1.0]}) == (200, {"predictions": [2.5]})
    assert post(server, f"/v1/Models/{TWO}/Labels/canary:predict", {"instances": [1.0]}) == (200, {"predictions": [3.5]})
    assert get(server, f"/V1/MODELS/{HP3}") == (200, status_json(123))
    assert get(server, "/v1/models/two%5Fversions/versions/123") == (200, status_json(123))
    assert get(server, "/v1/models/nope%20model") == (404, {"error": "Could not find any versions of model nope model"})


def test_rest_method_names_compare_case_sensitively(server):
    """The regex matches ":PREDICT" and "/METADATA", but the dispatch compares the captured words with
    "predict" and "metadata" exactly (http_rest_api_handler.cc:85-104): ":PREDICT" stays a malformed request,
    and "/Metadata" is answered as a status request."""
    path = f"/v1/models/{HP2}:PREDICT"
    expect_error(post(server, path, {"instances": [1.0]}), 400, f"Malformed request: POST {path}")
    assert get(server, f"/v1/models/{HP2}/Metadata") == (200, status_json(123))


def test_rest_paths_outside_v1_are_not_found(server):
    """Only paths matching "(?i)/v1/.*" reach the API handler (http_server.cc:140-148, handler_test:173-177);
    the HTTP server answers others 404 (evhttp_server_test.cc:109-114)."""
    for path in ("/statuspage", "/index", "/v2/models/foo"):
        status, headers, text = rest(server, "GET", path)
        assert status == 404, (path, status, text)


def test_rest_cors_preflight(server):
    """OPTIONS is a CORS preflight: OK with an http(s) Origin, else FAILED_PRECONDITION -> 400, with an empty
    body because the handler never runs (http_server.cc:170-193)."""
    status, headers, text = rest(server, "OPTIONS", f"/v1/models/{HP2}:predict", headers={"Origin": "http://example.com"})
    assert (status, text) == (200, "")
    status, headers, text = rest(server, "OPTIONS", f"/v1/models/{HP2}:predict")
    assert (status, text) == (400, "")


# ------------------------------------------------------------------------------------------------ gRPC: predict


def _verify_predict_request(
    stub, model_name, expected_output, expected_version, specify_output=True, signature_name="serving_default"
):
    """test_base:251-286 (VerifyPredictRequest) and test_base:351-369 (_VerifyModelSpec)."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    request.inputs["x"].CopyFrom(float_tensor([2.0], dims=[1]))  # test_base:267-270
    if specify_output:
        request.output_filter.append("y")  # test_base:274-275
    result = stub.Predict(request, RPC_TIMEOUT)
    assert "y" in result.outputs  # test_base:281
    assert result.outputs["y"].dtype == types_pb2.DT_FLOAT  # test_base:282
    assert list(result.outputs["y"].float_val) == [expected_output]  # test_base:283-284
    assert (result.model_spec.name, result.model_spec.signature_name, result.model_spec.version.value) == (
        model_name,
        signature_name,
        expected_version,
    )  # test_base:367-369
    # Tensors are returned as typed fields, not tensor_content (predict_util.cc:177-181, 196-205: the default is
    # kAsProtoField), with the output's shape ([1] here, like the input).
    assert result.outputs["y"].tensor_content == b""
    assert [d.size for d in result.outputs["y"].tensor_shape.dim] == [1]


def test_grpc_predict_verify_predict_request(prediction_stub):
    # server_test:282-288 / 290-298 (testGoodModelConfig): with and without output_filter
    for specify_output in (True, False):
        _verify_predict_request(prediction_stub, HP2, 3.0, 123, specify_output)
        _verify_predict_request(prediction_stub, HP3, 4.0, 123, specify_output)
    # versions: latest of two_versions is 124 (0.5x + 3)
    _verify_predict_request(prediction_stub, TWO, 4.0, 124)


def test_grpc_predict_exact_response(prediction_stub):
    """predict_impl_test.cc:232-258 (PredictionSuccess): a scalar input (no tensor_shape) gives a scalar output;
    the whole response is compared (EqualsProto), with the default signature name filled in."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = HP2
    request.model_spec.version.value = 123
    request.inputs["x"].CopyFrom(float_tensor([2.0]))
    expected = predict_pb2.PredictResponse()
    expected.model_spec.CopyFrom(request.model_spec)
    expected.model_spec.signature_name = "serving_default"
    expected.outputs["y"].CopyFrom(float_tensor([3.0], dims=[]))
    assert prediction_stub.Predict(request, RPC_TIMEOUT) == expected


def test_grpc_predict_classify_and_regress_signatures(prediction_stub):
    # predict_impl_test.cc:262-286 (regress_x2_to_y3) and 290-316 (classify_x2_to_y3): 0.5 * 2 + 3 = 4
    for signature, output_key in (("regress_x2_to_y3", "outputs"), ("classify_x2_to_y3", "scores")):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = HP2
        request.model_spec.version.value = 123
        request.model_spec.signature_name = signature
        request.inputs["inputs"].CopyFrom(float_tensor([2.0]))
        expected = predict_pb2.PredictResponse()
        expected.model_spec.CopyFrom(request.model_spec)
        expected.outputs[output_key].CopyFrom(float_tensor([4.0], dims=[]))
        assert prediction_stub.Predict(request, RPC_TIMEOUT) == expected, signature


def test_grpc_predict_version_label(prediction_stub):
    """model_spec.version_label selects a version (serving_config.md:157-162, server_core.cc:853-863); the
    response names the version that answered."""
    for label, version, output in (("stable", 123, 3.0), ("canary", 124, 4.0)):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = TWO
        request.model_spec.version_label = label
        request.inputs["x"].CopyFrom(float_tensor([2.0], dims=[1]))
        result = prediction_stub.Predict(request, RPC_TIMEOUT)
        assert (list(result.outputs["y"].float_val), result.model_spec.version.value) == ([output], version), label
        assert result.model_spec.signature_name == "serving_default"  # util.cc:261-275 (MakeModelSpec)


def test_grpc_predict_errors(prediction_stub):
    def request_for(name=HP2, **spec):
        request = predict_pb2.PredictRequest()
        request.model_spec.SetInParent()
        request.model_spec.name = name
        for key, value in spec.items():
            if key == "version":
                request.model_spec.version.value = value
            else:
                setattr(request.model_spec, key, value)
        request.inputs["x"].CopyFrom(float_tensor([2.0]))
        return request

    predict = prediction_stub.Predict
    # predict_impl_test.cc:113-118 (predict_impl.cc:37-40)
    assert rpc_error(predict, predict_pb2.PredictRequest()) == (grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
    # predict_impl_test.cc:120-127 (server_core.cc:843-844)
    assert rpc_error(predict, request_for(name="")) == (grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified.")
    # predict_impl_test.cc:129-134 (basic_manager.cc:139-140)
    assert rpc_error(predict, request_for(name="test")) == (
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Latest(test)",
    )
    assert rpc_error(predict, request_for(version=124)) == (
        grpc.StatusCode.NOT_FOUND,
        f"Servable not found for request: Specific({HP2}, 124)",
    )
    # server_core.cc:873-891
    assert rpc_error(predict, request_for(name=TWO, version_label="nope")) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Unrecognized servable version label: nope",
    )
    # predict_util.cc:90-93: FAILED_PRECONDITION over gRPC (the REST handler checks first, with its own message)
    assert rpc_error(predict, request_for(signature_name="nope")) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        'Serving signature key "nope" not found.',
    )
    # predict_impl_test.cc:137-151 (predict_util.cc:53-71)
    empty = request_for()
    del empty.inputs["x"]
    assert rpc_error(predict, empty) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "input size does not match signature: 0!=1 len({}) != len({x}). Sent extra: {}. Missing but required: {x}.",
    )
    extra = request_for()
    extra.inputs["z"].CopyFrom(float_tensor([1.0]))
    assert rpc_error(predict, extra) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "input size does not match signature: 2!=1 len({x,z}) != len({x}). Sent extra: {z}. Missing but required: {}.",
    )
    # predict_impl_test.cc:153-173: an input the signature does not have (message from TensorFlow)
    wrong_key = request_for()
    del wrong_key.inputs["x"]
    wrong_key.inputs["key"].CopyFrom(tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[b"any_key"]))
    assert rpc_error(predict, wrong_key)[0] == grpc.StatusCode.INVALID_ARGUMENT
    # predict_impl_test.cc:209-230: an input of the wrong type
    wrong_type = request_for()
    wrong_type.inputs["x"].CopyFrom(tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[b"any_key"]))
    wrong_type.inputs["x"].tensor_shape.dim.add().size = 1
    assert rpc_error(predict, wrong_type)[0] == grpc.StatusCode.INVALID_ARGUMENT
    # predict_impl_test.cc:175-207 (predict_util.cc:135-153)
    unknown_output = request_for()
    unknown_output.output_filter.append("output_filter")
    assert rpc_error(predict, unknown_output) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "output tensor alias not found in signature: output_filter Outputs expected to be in the set {y}.",
    )
    duplicate_output = request_for()
    duplicate_output.output_filter.extend(["y", "y"])
    assert rpc_error(predict, duplicate_output) == (grpc.StatusCode.INVALID_ARGUMENT, "duplicate output tensor alias: y")


# ------------------------------------------------------------------------------------------------ gRPC: classify, regress


def test_grpc_classify(prediction_stub):
    # server_test:137-163 (_TestClassify)
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = HP2
    request.model_spec.signature_name = "classify_x_to_y"
    request.input.CopyFrom(examples_input(2.0))
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
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = HP2
    request.model_spec.signature_name = "regress_x_to_y"
    request.input.CopyFrom(examples_input(2.0))
    result = prediction_stub.Regress(request, RPC_TIMEOUT)
    assert [r.value for r in result.result.regressions] == [3.0]  # server_test:192-194
    assert (result.model_spec.name, result.model_spec.signature_name, result.model_spec.version.value) == (
        HP2,
        "regress_x_to_y",
        123,
    )  # server_test:195-197
    # version_label on Regress (two_versions' canary = 124 adds 3)
    request.model_spec.name = TWO
    request.model_spec.version_label = "canary"
    result = prediction_stub.Regress(request, RPC_TIMEOUT)
    assert ([r.value for r in result.result.regressions], result.model_spec.version.value) == ([4.0], 124)


def test_grpc_classify_regress_errors(prediction_stub):
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = HP2
    request.model_spec.signature_name = "regress_x_to_y"
    # servables/tensorflow/util.cc:165-167 (multi_inference_test.cc:156-178 shows the same for MultiInference)
    assert rpc_error(prediction_stub.Regress, request) == (grpc.StatusCode.INVALID_ARGUMENT, "Input is empty.")
    request.input.CopyFrom(examples_input(2.0))
    request.model_spec.signature_name = "nope"
    # regressor.cc:152-155
    assert rpc_error(prediction_stub.Regress, request) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "No signature was found with the name: nope",
    )
    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name = HP2
    classify.model_spec.signature_name = "nope"
    classify.input.CopyFrom(examples_input(2.0))
    # classifier.cc:157-160
    assert rpc_error(prediction_stub.Classify, classify) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "No signature was found with the name: nope",
    )
    # classification_service.cc:35-39
    assert rpc_error(prediction_stub.Classify, classification_pb2.ClassificationRequest()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Missing ModelSpec",
    )


# ------------------------------------------------------------------------------------------------ gRPC: multi-inference


def _task(request, signature_name, method_name, model_name=HP2):
    """multi_inference_test.cc:137-144 (PopulateTask)."""
    task = request.tasks.add()
    task.model_spec.name = model_name
    task.model_spec.signature_name = signature_name
    task.method_name = method_name
    return task


def test_grpc_multi_inference(prediction_stub):
    # server_test:207-242 (_TestMultiInference): regress and classify on one input
    request = inference_pb2.MultiInferenceRequest()
    _task(request, "regress_x_to_y", "tensorflow/serving/regress")
    _task(request, "classify_x_to_y", "tensorflow/serving/classify")
    request.input.CopyFrom(examples_input(2.0))
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
    request = inference_pb2.MultiInferenceRequest()
    _task(request, "regress_x_to_y", "tensorflow/serving/regress")
    _task(request, "regress_x_to_y2", "tensorflow/serving/regress")
    _task(request, "classify_x_to_y", "tensorflow/serving/classify")
    request.input.CopyFrom(examples_input(2.0))
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


def test_grpc_multi_inference_errors(prediction_stub):
    def request_with(*tasks, with_input=True):
        request = inference_pb2.MultiInferenceRequest()
        for task in tasks:
            _task(request, *task)
        if with_input:
            request.input.CopyFrom(examples_input(2.0))
        return request

    multi = prediction_stub.MultiInference
    regress = ("regress_x_to_y", "tensorflow/serving/regress")
    # multi_inference_test.cc:156-178 (util.cc:165-167)
    assert rpc_error(multi, request_with(regress, with_input=False)) == (grpc.StatusCode.INVALID_ARGUMENT, "Input is empty.")
    # multi_inference_test.cc:180-204 (multi_inference.cc:66-70)
    assert rpc_error(multi, request_with(("ThisSignatureDoesNotExist", "tensorflow/serving/regress"))) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Requested signature not found in model graph: ThisSignatureDoesNotExist",
    )
    # multi_inference_test.cc:207-239 (multi_inference.cc:49-53)
    assert rpc_error(multi, request_with(regress, ("regress_x_to_y", "tensorflow/serving/regress", "ModelDoesNotExist"))) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "All ModelSpecs in a MultiInferenceRequest must access the same model name.",
    )
    # multi_inference_test.cc:241-266 (multi_inference.cc:60-63)
    assert rpc_error(multi, request_with(regress, regress)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Duplicate evaluation of signature: regress_x_to_y",
    )
    # multi_inference_test.cc:268-291 (multi_inference.cc:80-83)
    assert rpc_error(multi, request_with(("serving_default", "tensorflow/serving/predict"))) == (
        grpc.StatusCode.UNIMPLEMENTED,
        "Unsupported signature method_name: tensorflow/serving/predict",
    )


# ------------------------------------------------------------------------------------------------ gRPC: metadata, status


def test_grpc_get_model_metadata(prediction_stub):
    # server_test:116-135 (testGetModelMetadata)
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = HP2
    request.metadata_field.append("signature_def")
    result = prediction_stub.GetModelMetadata(request, RPC_TIMEOUT)
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
    # version_label resolves like the other APIs (get_model_metadata_impl.cc:53-54)
    request.model_spec.name = TWO
    request.model_spec.version_label = "stable"
    assert prediction_stub.GetModelMetadata(request, RPC_TIMEOUT).model_spec.version.value == 123


def test_grpc_get_model_metadata_errors(prediction_stub):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    # get_model_metadata_impl.cc:76-80
    assert rpc_error(prediction_stub.GetModelMetadata, request) == (grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
    request.model_spec.name = HP2
    # get_model_metadata_impl.cc:35-38
    assert rpc_error(prediction_stub.GetModelMetadata, request) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "GetModelMetadataRequest must specify at least one metadata_field",
    )
    request.metadata_field.append("foo")
    # get_model_metadata_impl.cc:40-44
    assert rpc_error(prediction_stub.GetModelMetadata, request) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Metadata field foo is not supported",
    )
    del request.metadata_field[:]
    request.metadata_field.append("signature_def")
    request.model_spec.name = "nope"
    assert rpc_error(prediction_stub.GetModelMetadata, request) == (
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Latest(nope)",
    )


def test_grpc_get_model_status(model_stub):
    # server_test:97-114 (testGetModelStatus)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = HP2
    result = model_stub.GetModelStatus(request, RPC_TIMEOUT)
    assert len(result.model_version_status) == 1  # server_test:111
    assert result.model_version_status[0].version == 123  # server_test:112
    assert result.model_version_status[0].status.error_code == 0  # server_test:113-114
    assert result.model_version_status[0].state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    # get_model_status_impl_test.cc:137-161: both versions, OK, empty messages (newest first:
    # servable_state_monitor.h:68-69)
    request.model_spec.name = TWO
    result = model_stub.GetModelStatus(request, RPC_TIMEOUT)
    assert [(s.version, s.state, s.status.error_code, s.status.error_message) for s in result.model_version_status] == [
        (124, get_model_status_pb2.ModelVersionStatus.AVAILABLE, 0, ""),
        (123, get_model_status_pb2.ModelVersionStatus.AVAILABLE, 0, ""),
    ]
    # get_model_status_impl_test.cc:163-179
    request.model_spec.version.value = 123
    result = model_stub.GetModelStatus(request, RPC_TIMEOUT)
    assert [(s.version, s.status.error_code) for s in result.model_version_status] == [(123, 0)]


def test_grpc_get_model_status_errors(model_stub):
    status = model_stub.GetModelStatus
    # get_model_status_impl_test.cc:94-103 (get_model_status_impl.cc:69-70)
    assert rpc_error(status, get_model_status_pb2.GetModelStatusRequest()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Missing ModelSpec",
    )
    # get_model_status_impl_test.cc:105-119 (get_model_status_impl.cc:99-100)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "nope"
    assert rpc_error(status, request) == (grpc.StatusCode.NOT_FOUND, "Could not find any versions of model nope")
    # get_model_status_impl_test.cc:121-135 (get_model_status_impl.cc:89-90)
    request.model_spec.name = TWO
    request.model_spec.version.value = 125
    assert rpc_error(status, request) == (grpc.StatusCode.NOT_FOUND, f"Could not find version 125 of model {TWO}")

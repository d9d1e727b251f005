"""Conformance of ``python -m app.serve``'s REST API with TensorFlow Serving's.

Each case is one request and what TF Serving answers, with the ``file:line`` of the tensorflow/serving
test or source that says so (abbreviations and the served models: ``tests/serving/tfs.py``). One test
id per case, named after it; one server for the module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from tests.serving.tfs import HP2, HP3, TWO, expected_metadata, status_json
from tests.support.http import request


@dataclass(frozen=True)
class Rest:
    """One request (``body`` None = GET, a str is sent verbatim, anything else as JSON) and TF Serving's
    answer: ``status`` and the whole parsed ``answer``, or an ``error`` message (exact) and/or error
    substrings (``containing``, as TF Serving's tests use HasSubstr), or the status alone."""

    name: str
    source: str
    path: str
    body: object = None
    status: int = 200
    answer: object = None
    error: str | None = None
    containing: tuple[str, ...] = ()
    json_content_type: bool = False  # also check the Content-Type: application/json header
    method: str | None = None  # default: POST with a body, GET without

    @property
    def verb(self) -> str:
        return self.method or ("GET" if self.body is None else "POST")


def expect_error(result, status: int, message: str, *, exact: bool = True) -> None:
    """An error answer: the HTTP status and the body {"error": message} (api_rest.md:12-19,
    json_tensor.cc:1129-1139); ``exact=False`` checks a substring, as TF Serving's tests do (HasSubstr)."""
    got_status, body = result
    error = body.get("error") if isinstance(body, dict) else None
    matches = isinstance(error, str) and (error == message if exact else message in error)
    assert got_status == status and matches, (
        f"expected {status} with error {'' if exact else 'containing '}{message!r}, got {got_status} {body!r}"
    )


def check(server, case: Rest) -> None:
    status, body, headers = request(server.rest_url, case.verb, case.path, case.body)
    if case.error is not None:
        expect_error((status, body), case.status, case.error)
    for part in case.containing:
        expect_error((status, body), case.status, part, exact=False)
    if case.answer is not None:
        assert (status, body) == (case.status, case.answer), case.source
    elif case.error is None and not case.containing:
        assert status == case.status, (case.source, status, body)
    if case.json_content_type:
        # handler_test:341-342 (and after every case): the only header the handler adds
        assert headers.get("Content-Type") == "application/json", (case.source, headers.get("Content-Type"))


def cases(*table: Rest):
    return pytest.mark.parametrize("case", table, ids=[case.name for case in table])


PREDICT = f"/v1/models/{HP2}:predict"
REGRESS = f"/v1/models/{HP2}:regress"
CLASSIFY = f"/v1/models/{HP2}:classify"
X = {"instances": [1.0, 2.0]}
REGRESS_X = {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]}


# ------------------------------------------------------------------------------------------------ predict


@cases(
    # handler_test:330-385 (Predict), verbatim, including the JSON Content-Type of every answer.
    Rest("handler_test latest version, a [2, 2] input fed as is", "handler_test:335-340 (no shape check)", PREDICT,
         '{"instances": [[1.0, 2.0], [3.0, 4.0]]}', answer={"predictions": [[2.5, 3.0], [3.5, 4.0]]}, json_content_type=True),
    Rest("handler_test specific version", "handler_test:345-350", f"/v1/models/{HP2}/versions/123:predict",
         '{"instances": [1.0, 2.0]}', answer={"predictions": [2.5, 3.0]}, json_content_type=True),
    Rest("handler_test version label", "handler_test:355-360", f"/v1/models/{HP2}/labels/Version_Label:predict",
         '{"instances": [1.0, 2.0]}', answer={"predictions": [2.5, 3.0]}, json_content_type=True),
    Rest("handler_test explicit signature_name", "handler_test:365-371", f"/v1/models/{HP2}/versions/123:predict",
         '{"signature_name": "serving_default", "instances": [3.0, 4.0]}', answer={"predictions": [3.5, 4.0]},
         json_content_type=True),
    Rest("handler_test columnar inputs give outputs", "handler_test:376-382", f"/v1/models/{HP2}/versions/123:predict",
         '{"signature_name": "serving_default", "inputs": [3.0, 4.0]}', answer={"outputs": [3.5, 4.0]}, json_content_type=True),
    Rest("testPredictREST", "server_test:486-498", PREDICT, {"instances": [2.0, 3.0, 4.0]}, answer={"predictions": [3.0, 3.5, 4.0]}),
    Rest("testPredictColumnarREST", "server_test:507-519", PREDICT, {"inputs": [2.0, 3.0, 4.0]}, answer={"outputs": [3.0, 3.5, 4.0]}),
    Rest("api_rest.md half_plus_three example", "api_rest.md:470-473", f"/v1/models/{HP3}:predict", '{"instances": [1.0,2.0,5.0]}',
         answer={"predictions": [3.5, 4.0, 5.5]}),
    # Row format as a list of objects (api_rest.md:219-244) and columnar format as an object (api_rest.md:256-271);
    # one output tensor, so its name is left out (api_rest.md:291-294, 305-306).
    Rest("rows as named objects", "api_rest.md:219-244", PREDICT, {"instances": [{"x": 1.0}, {"x": 2.0}]},
         answer={"predictions": [2.5, 3.0]}),
    Rest("columns as a named object", "api_rest.md:256-271", PREDICT, {"inputs": {"x": [1.0, 2.0]}}, answer={"outputs": [2.5, 3.0]}),
    # "inputs" may be a single value, "outputs" then is one (a scalar tensor)
    Rest("a single value as inputs", "api_rest.md:188 + 301", PREDICT, {"inputs": 2.0}, answer={"outputs": 3.0}),
    # Predict runs classify and regress signatures too; regress_x2_to_y3 / classify_x2_to_y3 compute 0.5 * x2 + 3.
    Rest("predict on regress_x2_to_y3", "predict_impl_test.cc:262-316, predict_util.cc:38-49", PREDICT,
         {"signature_name": "regress_x2_to_y3", "instances": [2.0]}, answer={"predictions": [4.0]}),
    Rest("predict on classify_x2_to_y3", "predict_impl_test.cc:262-316, predict_util.cc:38-49", PREDICT,
         {"signature_name": "classify_x2_to_y3", "instances": [2.0]}, answer={"predictions": [4.0]}),
    # Version and label routing (api_rest.md:168-173; serving_config.md:212-221); two_versions' 124 adds 3.
    Rest("latest of two versions is 124", "api_rest.md:168-173", f"/v1/models/{TWO}:predict", X, answer={"predictions": [3.5, 4.0]}),
    Rest("version 123 of two", "api_rest.md:168-173", f"/v1/models/{TWO}/versions/123:predict", X, answer={"predictions": [2.5, 3.0]}),
    Rest("version 124 of two", "api_rest.md:168-173", f"/v1/models/{TWO}/versions/124:predict", X, answer={"predictions": [3.5, 4.0]}),
    Rest("label stable is 123", "serving_config.md:212-221", f"/v1/models/{TWO}/labels/stable:predict", X,
         answer={"predictions": [2.5, 3.0]}),
    Rest("label canary is 124", "serving_config.md:212-221", f"/v1/models/{TWO}/labels/canary:predict", X,
         answer={"predictions": [3.5, 4.0]}),
    # Floats are written with six significant digits: 0.5 * float32(0.1) + 2 = 2.04999995... is written 2.05.
    Rest("floats written with six digits", "json_tensor_test.cc:922-948", PREDICT, '{"instances": [0.1]}',
         answer={"predictions": [2.05]}),
)
def test_rest_predict(tfs_server, case):
    check(tfs_server, case)


def test_rest_predict_non_finite_values(tfs_server):
    """NaN and +-Infinity are accepted in requests and written in answers (api_rest.md:388-409,
    json_tensor.cc:483-485 kParseNanAndInfFlag, json_tensor_test.cc:951-974)."""
    status, body, _ = request(tfs_server.rest_url, "POST", PREDICT, '{"instances": [NaN, Infinity, -Infinity]}')
    assert status == 200, body
    predictions = body["predictions"]
    assert math.isnan(predictions[0]) and predictions[1:] == [math.inf, -math.inf], body


@cases(
    Rest("empty document", "handler_test:291-295 (json_tensor.cc:474-476)", PREDICT, "", 400,
         error="JSON Parse error: The document is empty"),
    Rest("not JSON", 'handler_test:298-301 (json_tensor.cc:486-489: "... at offset: N")', PREDICT, "instances = [1, 2]", 400,
         containing=("JSON Parse error: Invalid value",)),
    # wrapped per element by json_tensor.cc:583-586 as "Failed to process element: 0 of 'instances' list. Error: <status>"
    Rest("strings for floats", "handler_test:304-308 (json_tensor.cc:262-266)", PREDICT, '{ "instances": ["x", "y"] }', 400,
         containing=("Failed to process element: 0 of 'instances' list. Error: ",
                     'JSON Value: "x" Type: String is not of expected type: float')),
    Rest("signature_name not a string", "handler_test:322-327 (json_tensor.cc:280-283)", PREDICT, '{ "signature_name": 100 }', 400,
         containing=("'signature_name' key must be a string value.",)),
    Rest("document not an object", "json_tensor.cc:498-499", PREDICT, "[1.0, 2.0]", 400, containing=("Is not object",)),
    Rest("neither inputs nor instances", "json_tensor.cc:704", PREDICT, "{}", 400, error="Missing 'inputs' or 'instances' key"),
    Rest("both inputs and instances", "json_tensor_test.cc:663-670 (json_tensor.cc:677-681)", PREDICT,
         '{"instances": [1.0], "inputs": [1.0]}', 400,
         containing=("Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist",)),
    Rest("instances not a list", "json_tensor.cc:683-685", PREDICT, '{"instances": 1.0}', 400,
         containing=("Expecting 'instances' to be an list/array",)),
    Rest("instances empty", "json_tensor.cc:687-689", PREDICT, '{"instances": []}', 400, containing=("No values in 'instances' array",)),
    Rest("ragged instances", "json_tensor_test.cc:672-678 (json_tensor.cc:462-464; element 2 fails: json_tensor.cc:583-586)",
         PREDICT, '{"instances": [[1,2],[3,4],[5,6,7]]}', 400,
         containing=("Failed to process element: 2 of 'instances' list. Error: ", "Expecting tensor size: 2 but got: 3")),
    Rest("scalar and list instances mixed", "json_tensor_test.cc:688-694 (json_tensor.cc:465-468)", PREDICT,
         '{"instances": [1, [1]]}', 400, containing=("Failed to process element: 1 of 'instances' list. Error: ", "Expecting shape")),
    Rest("unknown signature", "http_rest_api_handler.cc:233-238 (GetInfoMap): INVALID_ARGUMENT -> 400", PREDICT,
         {"signature_name": "nope", "instances": [1.0]}, 400, error='Serving signature name: "nope" not found in signature def'),
    # message: basic_manager.cc:139-140 + manager.h:150-161; NOT_FOUND -> 404
    Rest("unknown model", "handler_test:265-268", "/v1/models/foo:predict", '{ "instances": [1] }', 404,
         error="Servable not found for request: Latest(foo)"),
    Rest("unknown model and version", "handler_test:271-274", "/v1/models/foo/versions/50:predict", '{ "instances": [1] }', 404,
         error="Servable not found for request: Specific(foo, 50)"),
    Rest("version not loaded", "handler_test:276-280 (a valid name, a version that is not loaded)",
         f"/v1/models/{HP2}/versions/99:predict", '{ "instances": [1] }', 404,
         error=f"Servable not found for request: Specific({HP2}, 99)"),
    Rest("version kept unloaded by the policy", "the specific policy keeps 124 of this model unloaded (it is on disk)",
         f"/v1/models/{HP2}/versions/124:predict", '{ "instances": [1] }', 404,
         error=f"Servable not found for request: Specific({HP2}, 124)"),
    Rest("api_rest.md unknown model example", "api_rest.md:490-497", "/v1/models/half:predict", '{"instances": [1.0,5.0]}', 404,
         answer={"error": "Servable not found for request: Latest(half)"}, json_content_type=True),
    Rest("unknown label", "handler_test:311-319; server_core.cc:890-891", f"/v1/models/{HP2}/labels/Version_Nonexistent:predict",
         '{ "instances": ["x", "y"] }', 400, error="Unrecognized servable version label: Version_Nonexistent"),
)
def test_rest_predict_error(tfs_server, case):
    check(tfs_server, case)


# ------------------------------------------------------------------------------------------------ classify, regress

REGRESS_80 = '{"signature_name": "regress_x_to_y", "examples": [ { "x": 80.0 } ] }'


@cases(
    Rest("handler_test regress latest", "handler_test:392-396", REGRESS, REGRESS_80, answer={"results": [42]}, json_content_type=True),
    Rest("handler_test regress version", "handler_test:401-407", f"/v1/models/{HP2}/versions/123:regress", REGRESS_80,
         answer={"results": [42]}, json_content_type=True),
    Rest("handler_test regress label", "handler_test:412-418", f"/v1/models/{HP2}/labels/Version_Label:regress", REGRESS_80,
         answer={"results": [42]}, json_content_type=True),
    Rest("handler_test classify", "handler_test:428-432", CLASSIFY,
         '{"signature_name": "classify_x_to_y", "examples": [ { "x": 20.0 } ] }', answer={"results": [[["", 12]]]}),
    Rest("handler_test classify label", "handler_test:437-443", f"/v1/models/{HP2}/labels/Version_Label:classify",
         '{"signature_name": "classify_x_to_y", "examples": [ { "x": 10.0 } ] }', answer={"results": [[["", 7]]]}),
    Rest("testClassifyREST", "server_test:446-457", CLASSIFY, {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]},
         answer={"results": [[["", 3.0]]]}),
    Rest("testRegressREST", "server_test:466-477", REGRESS, REGRESS_X, answer={"results": [3.0]}),
    Rest("api_rest.md half_plus_three regress", "api_rest.md:479-483 (its regress signature is named tensorflow/serving/regress)",
         f"/v1/models/{HP3}:regress", '{"signature_name": "tensorflow/serving/regress", "examples": [{"x": 1.0}, {"x": 2.0}]}',
         answer={"results": [3.5, 4.0]}),
    # Feature values may be a value or a list; features in "context" are shared by every example: TF Serving
    # prefixes the serialized context to each serialized example (servables/tensorflow/util.cc:183-203).
    Rest("feature values as a value or a list", "api_rest.md:96-115, json_tensor_test.cc:1242-1310", REGRESS,
         {"signature_name": "regress_x_to_y", "examples": [{"x": [1.0]}, {"x": 2.0}, {"x": [5.0]}]}, answer={"results": [2.5, 3.0, 4.5]}),
    Rest("regress with a context", "api_rest.md:89-94, json_tensor_test.cc:1312-1443", REGRESS,
         {"signature_name": "regress_x_to_y", "context": {"x": 4.0}, "examples": [{"x2": 1.0}, {"x2": 2.0}]},
         answer={"results": [4.0, 4.0]}),
    Rest("classify with a context", "api_rest.md:89-94, json_tensor_test.cc:1312-1443", CLASSIFY,
         {"signature_name": "classify_x_to_y", "context": {"x2": 7.0}, "examples": [{"x": 1.0}, {"x": 2.0}]},
         answer={"results": [[["", 2.5]], [["", 3.0]]]}),
    # Version routing for regress (two_versions' 124 adds 3)
    Rest("regress by label", "api_rest.md:168-173", f"/v1/models/{TWO}/labels/canary:regress", REGRESS_X, answer={"results": [4.0]}),
    Rest("regress by version", "api_rest.md:168-173", f"/v1/models/{TWO}/versions/123:regress", REGRESS_X, answer={"results": [3.0]}),
)
def test_rest_classify_and_regress(tfs_server, case):
    check(tfs_server, case)


NOPE = {"signature_name": "nope", "examples": [{"x": 1.0}]}


@cases(
    Rest("signature_name not a string", "json_tensor_test.cc:1447-1455 (json_tensor.cc:280-283)", REGRESS,
         '{"signature_name": [ "hello" ], "examples": [ { "x": [ 1.0 ] } ]}', 400, containing=("'signature_name' key must be a string",)),
    Rest("context not an object", "json_tensor_test.cc:1458-1464 (json_tensor.cc:798-800)", REGRESS,
         '{"context": [ { "x": [ 1.0 ] } ]}', 400, error="Example must be JSON object but got JSON Array"),
    Rest("no examples", 'json_tensor.cc:838-841 (the message says "classify" for regress too)', REGRESS,
         '{"signature_name": "regress_x_to_y"}', 400,
         containing=("When method is classify, key 'examples' is expected and was not found",)),
    Rest("examples not a list", "json_tensor_test.cc:1467-1473 (json_tensor.cc:843-846)", REGRESS, '{"examples": { "x": [ 1.0 ] }}', 400,
         containing=("list/array",)),
    Rest("examples empty", "json_tensor.cc:848-850", REGRESS, '{"examples": []}', 400, containing=("'examples' value is an empty array",)),
    Rest("example not an object", "json_tensor_test.cc:1476-1482", REGRESS, '{"examples": [ [ { "x": [ 1.0 ] } ] ]}', 400,
         error="Example must be JSON object but got JSON Array"),
    Rest("null feature value", "json_tensor_test.cc:1485-1492 (json_tensor.cc:740-743)", REGRESS, '{"examples": [ { "x": [ 10, null ] } ]}',
         400, error="Feature: x has element with unexpected JSON type: Null"),
    Rest("mixed int and float feature", "json_tensor_test.cc:1495-1502 (json_tensor.cc:731-732)", REGRESS,
         '{"examples": [ { "x": [ 10, 10.0 ] } ]}', 400, error="Unexpected element type in feature: x expecting type: int64"),
    Rest("object feature value", "json_tensor_test.cc:1505-1512 (json_tensor.cc:751-756, 763-766)", REGRESS,
         '{"examples": [ { "x": [ 10, { "test": 10 } ] } ]}', 400, error="Feature: x has element with unexpected JSON type: Object"),
    Rest("array feature value", "json_tensor_test.cc:1515-1522 (json_tensor.cc:751-756, 763-766)", REGRESS,
         '{"examples": [ { "x": [ [10], 20 ] } ]}', 400, error="Feature: x has element with unexpected JSON type: Array"),
    Rest("uint64 feature value", "json_tensor_test.cc:1525-1531 (json_tensor.cc:784-787)", REGRESS,
         '{"examples": [ { "x": [ 20, 18446744073709551603 ] } ]}', 400,
         error="Feature: x has uint64_t element. Only int64_t is supported."),
    # A whole JSON number becomes an int64_list feature: it is not turned into a float, so parsing it as the
    # float feature "x" fails in the model (any message).
    Rest("integer feature is int64", "json_tensor.cc:774-790, json_tensor_test.cc:1250, 1280-1284", REGRESS,
         {"signature_name": "regress_x_to_y", "examples": [{"x": 2}]}, 400, containing=("",)),
    Rest("regress unknown signature", "regressor.cc:152-155: INVALID_ARGUMENT -> 400", REGRESS, NOPE, 400,
         error="No signature was found with the name: nope"),
    Rest("classify unknown signature", "classifier.cc:157-160: INVALID_ARGUMENT -> 400", CLASSIFY, NOPE, 400,
         error="No signature was found with the name: nope"),
    # Without signature_name, serving_default (a predict signature with input "x") is used; with the method
    # name check off by default (server.h:102), its inputs are checked.
    Rest("regress on a predict signature", "regressor.cc:186-190", REGRESS, {"examples": [{"x": 1.0}]}, 400,
         containing=("No regression inputs found in SignatureDef: ",)),
    Rest("classify on a predict signature", "classifier.cc:194-198", CLASSIFY, {"examples": [{"x": 1.0}]}, 400,
         containing=("No classification inputs found in SignatureDef: ",)),
    Rest("classify on a regress signature", 'classifier.cc:204-211: a regress signature has neither "classes" nor "scores"', CLASSIFY,
         {"signature_name": "regress_x_to_y", "examples": [{"x": 1.0}]}, 400,
         containing=('Expected classification signature outputs to contain at least one of "classes" or "scores". Signature was: ',)),
)
def test_rest_classify_and_regress_error(tfs_server, case):
    check(tfs_server, case)


# ------------------------------------------------------------------------------------------------ status, metadata


@cases(
    Rest("handler_test all versions", "handler_test:454-470", f"/v1/models/{HP2}", answer=status_json(123), json_content_type=True),
    Rest("handler_test one version", "handler_test:473-491", f"/v1/models/{HP2}/versions/123", answer=status_json(123),
         json_content_type=True),
    Rest("handler_test label", "handler_test:494-512", f"/v1/models/{HP2}/labels/Version_Label", answer=status_json(123),
         json_content_type=True),
    Rest("api_rest.md half_plus_three status", "api_rest.md:451-464", f"/v1/models/{HP3}", answer=status_json(123)),
    Rest("every loaded version, newest first", "get_model_status_impl_test.cc:137-161, servable_state_monitor.h:68-69",
         f"/v1/models/{TWO}", answer=status_json(124, 123)),
    Rest("one of two versions", "get_model_status_impl_test.cc:163-179", f"/v1/models/{TWO}/versions/124", answer=status_json(124)),
    # GetModelStatus looks at model_spec.version only: with a label, the status of every version comes back,
    # even for a label that does not exist.
    Rest("status ignores a label", "get_model_status_impl.cc:82-107", f"/v1/models/{TWO}/labels/stable", answer=status_json(124, 123)),
    Rest("status ignores an unknown label", "get_model_status_impl.cc:82-107", f"/v1/models/{TWO}/labels/no_such_label",
         answer=status_json(124, 123)),
    Rest("status of an unknown model", "get_model_status_impl_test.cc:105-119; get_model_status_impl.cc:99-100", "/v1/models/nope",
         status=404, error="Could not find any versions of model nope"),
    Rest("status of an unknown version", "get_model_status_impl_test.cc:121-135; get_model_status_impl.cc:89-90",
         f"/v1/models/{TWO}/versions/125", status=404, error=f"Could not find version 125 of model {TWO}"),
    Rest("status of a version the policy never loads",
         "specific policy: 124 is never loaded, its state unknown (get_model_status_impl.cc:89-90)",
         f"/v1/models/{HP2}/versions/124", status=404, error=f"Could not find version 124 of model {HP2}"),
    Rest("status without a model name", "handler_test:193-196 (http_rest_api_handler.cc:187-188)", "/v1/models", status=400,
         error="Missing model name in request."),
    Rest("handler_test metadata", "handler_test:521-531 (..._2_versions_metadata.json)", f"/v1/models/{HP2}/metadata",
         answer=expected_metadata(HP2, 123), json_content_type=True),
    # /versions/N and /labels/L select the version (get_model_metadata_impl.cc:53-62)
    Rest("metadata by label", "api_rest.md:50-55", f"/v1/models/{HP2}/labels/Version_Label/metadata", answer=expected_metadata(HP2, 123)),
    Rest("metadata of the latest version", "api_rest.md:50-55", f"/v1/models/{TWO}/metadata", answer=expected_metadata(TWO, 124)),
    Rest("metadata by version", "api_rest.md:50-55", f"/v1/models/{TWO}/versions/123/metadata", answer=expected_metadata(TWO, 123)),
    Rest("metadata by label of two", "api_rest.md:50-55", f"/v1/models/{TWO}/labels/canary/metadata", answer=expected_metadata(TWO, 124)),
    # Errors go through GetServableHandle (get_model_metadata_impl.cc:53-54)
    Rest("metadata of an unknown model", "get_model_metadata_impl.cc:53-54", "/v1/models/nope/metadata", status=404,
         error="Servable not found for request: Latest(nope)"),
    Rest("metadata of an unknown version", "get_model_metadata_impl.cc:53-54", f"/v1/models/{TWO}/versions/125/metadata", status=404,
         error=f"Servable not found for request: Specific({TWO}, 125)"),
    Rest("metadata of an unknown label", "get_model_metadata_impl.cc:53-54", f"/v1/models/{TWO}/labels/nope/metadata", status=400,
         error="Unrecognized servable version label: nope"),
)
def test_rest_status_and_metadata(tfs_server, case):
    check(tfs_server, case)


# ------------------------------------------------------------------------------------------------ paths


def malformed(name: str, method: str, path: str, source: str) -> Rest:
    """http_rest_api_handler.cc:74-75: the status stays "Malformed request: <METHOD> <path>" (INVALID_ARGUMENT)."""
    body = '{"instances": [1.0]}' if method == "POST" else None
    return Rest(name, source, path, body, 400, answer={"error": f"Malformed request: {method} {path}"}, method=method)


OUTSIDE_V1 = "http_server.cc:140-148, handler_test:173-177, evhttp_server_test.cc:109-114"


@cases(
    malformed("GET unknown resource", "GET", "/v1/foo", "handler_test:183-186"),
    malformed("POST unknown resource", "POST", "/v1/foo", "handler_test:188-191"),
    malformed("GET debug path", "GET", "/v1/models/debug/model_name", "handler_test:197-200"),
    malformed("POST without a model name", "POST", "/v1/models", "handler_test:202-205"),
    malformed("GET on predict", "GET", "/v1/models/foo:predict", "handler_test:207-210"),
    malformed("GET with version singular", "GET", "/v1/models/foo/version/50:predict", "handler_test:212-215"),
    malformed("POST with version singular", "POST", "/v1/models/foo/version/50:regress", "handler_test:217-220"),
    malformed("non-numeric version", "POST", "/v1/models/foo/versions/HELLO:regress", "handler_test:222-226"),
    malformed("POST on metadata", "POST", "/v1/models/foo/metadata", "handler_test:236-239"),
    malformed("label singular", "POST", "/v1/models/foo/label/some_label:regress", "handler_test:241-245"),
    # Version and label together cannot match the path regex (http_rest_api_util.cc:31-34), so
    # FillModelSpecWithNameVersionAndLabel's "Both model version ... cannot be supplied." is never reached.
    malformed("version and label", "POST", "/v1/models/foo/versions/50/labels/some_label:regress", "handler_test:247-251"),
    malformed("label as version", "POST", "/v1/models/foo/versions/some_label:regress", "handler_test:253-257"),
    malformed("unknown method", "POST", f"/v1/models/{HP2}:explain", "http_rest_api_util.cc:32 (classify|regress|predict only)"),
    malformed("trailing slash", "GET", f"/v1/models/{HP2}/", "http_rest_api_util.cc:33-34 (no trailing slash)"),
    Rest("version that does not fit int64", "handler_test:228-234 (http_rest_api_util.cc:115-120)",
         "/v1/models/foo/versions/18446744073709551615:regress", "", 400,
         error="Failed to convert version: 18446744073709551615 to numeric."),
    # The path regexes are "(?i)" (http_rest_api_util.cc:31-34, http_rest_api_util.h:33); the model name and
    # label are used as written, and are URL-decoded (http_rest_api_util.cc:109-129).
    Rest("capital path", "http_rest_api_util.cc:31-34", f"/V1/MODELS/{HP2}/VERSIONS/123:predict", {"instances": [1.0]},
         answer={"predictions": [2.5]}),
    Rest("capitalised label path", "http_rest_api_util.cc:31-34", f"/v1/Models/{TWO}/Labels/canary:predict", {"instances": [1.0]},
         answer={"predictions": [3.5]}),
    Rest("capital status path", "http_rest_api_util.h:33", f"/V1/MODELS/{HP3}", answer=status_json(123)),
    Rest("URL-encoded model name", "http_rest_api_util.cc:109-129", "/v1/models/two%5Fversions/versions/123", answer=status_json(123)),
    Rest("URL-encoded unknown name", "http_rest_api_util.cc:109-129", "/v1/models/nope%20model", status=404,
         answer={"error": "Could not find any versions of model nope model"}),
    # The regex matches ":PREDICT" and "/METADATA", but the dispatch compares the captured words with "predict"
    # and "metadata" exactly: ":PREDICT" stays a malformed request, and "/Metadata" is answered as a status request.
    Rest("method name in capitals", "http_rest_api_handler.cc:85-104", f"/v1/models/{HP2}:PREDICT", {"instances": [1.0]}, 400,
         error=f"Malformed request: POST /v1/models/{HP2}:PREDICT"),
    Rest("metadata in capitals is a status request", "http_rest_api_handler.cc:85-104", f"/v1/models/{HP2}/Metadata",
         answer=status_json(123)),
    # Only paths matching "(?i)/v1/.*" reach the API handler (http_server.cc:140-148, handler_test:173-177);
    # the HTTP server answers others 404 (evhttp_server_test.cc:109-114).
    Rest("statuspage outside v1", OUTSIDE_V1, "/statuspage", status=404),
    Rest("index outside v1", OUTSIDE_V1, "/index", status=404),
    Rest("v2 outside v1", OUTSIDE_V1, "/v2/models/foo", status=404),
)
def test_rest_path(tfs_server, case):
    check(tfs_server, case)


@pytest.mark.parametrize(("headers", "status"), [({"Origin": "http://example.com"}, 200), ({}, 400)], ids=["with origin", "without origin"])
def test_rest_cors_preflight(tfs_server, headers, status):
    """OPTIONS is a CORS preflight: OK with an http(s) Origin, else FAILED_PRECONDITION -> 400, with an empty
    body because the handler never runs (http_server.cc:170-193)."""
    answer = request(tfs_server.rest_url, "OPTIONS", PREDICT, headers=headers, raw=True)
    assert (answer.status, answer.body) == (status, "")

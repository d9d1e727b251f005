"""What the TF Serving conformance tests (REST and gRPC) share: the served models and the expected
answers they have in common.

TF Serving's own tests and sources are the specification. Every expectation cites ``file:line`` of
the tensorflow/serving repository (paths shortened: ``handler_test`` is
``tensorflow_serving/model_servers/http_rest_api_handler_test.cc``, ``server_test`` is
``tensorflow_serving/model_servers/tensorflow_model_server_test.py``, ``test_base`` is
``tensorflow_serving/model_servers/test_util/tensorflow_model_server_test_base.py``, ``api_rest.md`` and
``serving_config.md`` are under ``tensorflow_serving/g3doc/``, other ``.cc`` files are under
``tensorflow_serving/{model_servers,servables/tensorflow,util,core}/``). Status codes of REST errors follow
``http_server.cc:46-87`` (INVALID_ARGUMENT and FAILED_PRECONDITION -> 400, NOT_FOUND -> 404,
UNIMPLEMENTED -> 501); gRPC errors carry the TF status code and message unchanged (``grpc_status_util.cc:24-34``).

One server process per test module serves, from a ``--model_config_file`` (``test_base:200-201``), three
models built by ``tests/serving/half_plus_two.py``:

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

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from app.serving.process import ServerProcess, start_server
from tests.support.http import get_json
from tests.support.waiting import wait_for

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


@contextmanager
def tfs_server(models: Path, config_dir: Path) -> Iterator[ServerProcess]:
    """The conformance server: ``models`` (from ``build_test_models``) served by the config above,
    written into ``config_dir``; yields once every version is AVAILABLE (or the wait gave up)."""
    config = config_dir / "models.config"
    config.write_text(MODEL_CONFIG.format(hp2=HP2, two=TWO, hp3=HP3, base=models))
    flags = (f"--model_config_file={config}", "--allow_version_labels_for_unavailable_models=true")
    with start_server(None, *flags) as server:
        wait_until_available(server, {HP2: 1, TWO: 2, HP3: 1})
        yield server


def wait_until_available(server: ServerProcess, expected_versions: dict[str, int], timeout: float = 60) -> None:
    """Like test_base:71-87 (WaitForServerReady): poll until every model reports its versions AVAILABLE.
    Gives up quietly after ``timeout`` (the status tests then say what is wrong)."""

    def available(name: str, count: int) -> bool:
        try:
            status, body = get_json(server.rest_url, f"/v1/models/{name}")
            states = [v["state"] for v in body["model_version_status"]] if status == 200 else []
        except (OSError, ValueError, KeyError, TypeError):
            states = []
        return states.count("AVAILABLE") == count

    try:
        wait_for(lambda: all(available(name, count) for name, count in expected_versions.items()), timeout, interval=0.5)
    except AssertionError:
        pass


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

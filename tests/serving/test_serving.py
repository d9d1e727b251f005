"""Serving: TF Serving layout and protos, the local REST/gRPC server, the client, hostile requests."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from app.serving.client import GrpcClient, RestClient, ServerError
from app.serving.process import start_server
from app.serving.warmup import read_warmup_requests
from app.tasks import BertTask, GptTask, LanguageModelTask, MnistTask
from app.training.devices import ASSUME_BF16_CPU, ONEDNN_BF16, cpu_supports_bf16
from data_pipelines.mnist import read_mnist_arrays
from data_pipelines.sources import SHARED_DATA_DIR
from tests.support.commands import last_json_line, run_app, run_in_process
from tests.support.http import get_json, post_json
from tests.support.http import request as http_request
from tests.support.paths import REPO_ROOT
from tests.support.waiting import wait_for

SIGNATURES = {
    "mnist": {"serving_default", "classify_uint8"},
    "lm": {"serving_default", "encode", "decode", "generate", "generate_batch"},
    "gpt": {"serving_default", "encode", "decode", "generate", "generate_batch"},
    "bert_sst2": {"serving_default", "classify_token_ids", "word_piece_counts"},
}
MAX_BODY_BYTES = 2_000_000
GENERATE = {"prompt": "ROMEO:", "max_new_tokens": 10, "temperature": 0.8, "top_k": 5, "seed": 0}


@pytest.fixture(scope="module")
def model_base(tmp_path_factory, trained_mnist, trained_lm, trained_gpt, trained_bert):
    """A --model-base holding the four test exports (links to their model folders)."""
    base = tmp_path_factory.mktemp("model_base")
    for result in (trained_mnist, trained_lm, trained_gpt, trained_bert[0]):
        export_dir = Path(result.summary["export_dir"])
        (base / export_dir.parent.name).symlink_to(export_dir.parent)
    return base


@pytest.fixture(scope="module")
def server(model_base):
    """The server with its default precision, on a CPU it takes for one with bf16 instructions (where
    a speed setting once served other answers than the exports give): answers must equal the exports'."""
    flags = ("--max-body-bytes", str(MAX_BODY_BYTES), "--poll-seconds", "0.5")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ASSUME_BF16_CPU, "1")
        running = start_server(model_base, *flags)
    with running:
        assert "precision: as exported" in running.log()
        yield running


def export_dir(model_base: Path, name: str) -> Path:
    return model_base / name / "1"


def local_outputs(export: Path, signature: str, **inputs) -> dict[str, np.ndarray]:
    """The same signature called in this process on the SavedModel, for comparison."""
    function = tf.saved_model.load(str(export)).signatures[signature]
    return {name: value.numpy() for name, value in function(**{k: tf.constant(v) for k, v in inputs.items()}).items()}


def mnist_images(count: int) -> np.ndarray:
    arrays = read_mnist_arrays(SHARED_DATA_DIR / "mnist" / "mnist.npz")
    return arrays["x_test"][:count].reshape(count, 784).astype("float32") / 255.0


# ---- exports as TF Serving expects them ----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_saved_model_cli_lists_the_documented_signatures(model_base, name):
    shown = run_app("tensorflow.python.tools.saved_model_cli", "show", "--all", "--dir", str(export_dir(model_base, name)), timeout=120)
    assert shown.returncode == 0, shown.stderr[-2000:]
    for signature in SIGNATURES[name]:
        assert f"signature_def['{signature}']" in shown.stdout


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_warmup_requests_parse_and_match_the_signatures(model_base, name):
    requests = read_warmup_requests(export_dir(model_base, name))
    assert {request.model_spec.signature_name for request in requests} == SIGNATURES[name]
    loaded = tf.saved_model.load(str(export_dir(model_base, name)))
    for request in requests:
        assert request.model_spec.name == name
        expected_inputs = set(loaded.signatures[request.model_spec.signature_name].structured_input_signature[1])
        assert set(request.inputs) == expected_inputs


def test_models_config_lists_every_export():
    config = text_format.Parse((REPO_ROOT / "serving" / "models.config").read_text(), model_server_config_pb2.ModelServerConfig())
    entries = {entry.name: entry for entry in config.model_config_list.config}
    assert set(entries) == {MnistTask.export_name, LanguageModelTask.export_name, GptTask.export_name, BertTask.export_name}
    for name, entry in entries.items():
        assert entry.base_path == f"/models/{name}" and entry.model_platform == "tensorflow"
    compose = (REPO_ROOT / "serving" / "docker-compose.yml").read_text()
    tf_version = next(line.split("==")[1] for line in (REPO_ROOT / "requirements.txt").read_text().splitlines() if line.startswith("tensorflow=="))
    assert f"tensorflow/serving:{tf_version}" in compose, "the Docker tag must match the pinned TensorFlow"


def readme_docker_arguments() -> list[str]:
    """The flags after the image name in the README's ``docker run ... tensorflow/serving`` command."""
    readme = (REPO_ROOT / "README.md").read_text()
    command = re.search(r"^docker run .*?tensorflow/serving:\S+ (.*?)\n```", readme, re.M | re.S).group(1)
    return command.replace("\\\n", " ").split()


def test_the_readme_docker_command_line_runs_unchanged_against_app_serve(model_base):
    """``tensorflow_model_server`` replaced by ``python -m app.serve``: the same flags read
    serving/models.config and serving/batching.config through the same /models and /config paths
    (``--volume`` plays docker's ``-v``) and listen on the image's ports, 8500 (gRPC) and 8501 (REST)."""
    from app.serve import build_parser

    arguments = readme_docker_arguments()
    assert "--model_config_file=/config/models.config" in arguments and "--enable_batching=true" in arguments
    parsed = build_parser().parse_args(arguments)
    assert (parsed.port, parsed.rest_api_port, parsed.enable_batching, parsed.enable_model_warmup) == (8500, 8501, True, True)
    volumes = ("--volume", f"{model_base}:/models", "--volume", f"{REPO_ROOT / 'serving'}:/config")
    with start_server(None, *arguments, *volumes) as running:  # free ports, not 8500/8501, in tests
        client = RestClient(running.rest_url)
        for name in SIGNATURES:
            assert SIGNATURES[name] <= set(client.signatures(name))
        assert "batching on" in running.log()


def _ops_reachable(export: Path, signature: str) -> set[str]:
    """Op types a signature can run: its graph nodes and every function they call, recursively."""
    from tensorflow.core.protobuf import saved_model_pb2

    meta_graph = saved_model_pb2.SavedModel.FromString((export / "saved_model.pb").read_bytes()).meta_graphs[0]
    library = {function.signature.name: function for function in meta_graph.graph_def.library.function}
    outputs = {info.name.split(":")[0] for info in meta_graph.signature_def[signature].outputs.values()}
    nodes = [node for node in meta_graph.graph_def.node if node.name in outputs]
    ops, seen = set(), set()
    while nodes:
        node = nodes.pop()
        ops.add(node.op)
        for attr in node.attr.values():
            for function_name in [attr.func.name, *(item.name for item in attr.list.func)]:
                if function_name in library and function_name not in seen:
                    seen.add(function_name)
                    nodes.extend(library[function_name].node_def)
    return ops


def test_token_id_signature_runs_without_tf_text_ops(model_base):
    export = export_dir(model_base, "bert_sst2")
    not_core = lambda ops: {op for op in ops if not hasattr(tf.raw_ops, op)}  # noqa: E731
    assert not_core(_ops_reachable(export, "serving_default")), "the raw-string signature should need TF Text ops"
    assert not_core(_ops_reachable(export, "classify_token_ids")) == set()


# ---- the local server: endpoints and equality with the SavedModel --------------------------------


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_status_and_metadata_endpoints(server, name):
    for path in (f"/v1/models/{name}", f"/v1/models/{name}/versions/1"):
        status, body = get_json(server.rest_url, path)
        assert status == 200
        assert body["model_version_status"] == [{"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]
    for path in (f"/v1/models/{name}/metadata", f"/v1/models/{name}/versions/1/metadata"):
        status, body = get_json(server.rest_url, path)
        assert status == 200 and body["model_spec"] == {"name": name, "version": "1", "signature_name": ""}
        signature_defs = body["metadata"]["signature_def"]["signature_def"]
        assert SIGNATURES[name] <= set(signature_defs)
        assert signature_defs["serving_default"]["method_name"] == "tensorflow/serving/predict"


def test_mnist_predictions_equal_the_saved_model_in_both_formats(server, model_base):
    images = mnist_images(5)
    expected = local_outputs(export_dir(model_base, "mnist"), "serving_default", images=images)
    status, rows = post_json(server.rest_url, "/v1/models/mnist:predict", {"instances": images.tolist()})
    assert status == 200 and len(rows["predictions"]) == 5
    np.testing.assert_allclose([row["probabilities"] for row in rows["predictions"]], expected["probabilities"], atol=1e-6)
    assert [row["class_ids"] for row in rows["predictions"]] == expected["class_ids"].tolist()
    status, columns = post_json(server.rest_url, "/v1/models/mnist/versions/1:predict", {"inputs": {"images": images.tolist()}})
    assert status == 200
    np.testing.assert_allclose(columns["outputs"]["probabilities"], expected["probabilities"], atol=1e-6)

    uint8 = (images.reshape(5, 28, 28) * 255).round().astype("uint8")
    status, body = post_json(server.rest_url, "/v1/models/mnist:predict", {"signature_name": "classify_uint8", "instances": uint8.tolist()})
    assert status == 200 and [row["class_ids"] for row in body["predictions"]] == expected["class_ids"].tolist()


def test_bert_predictions_equal_the_saved_model_with_text_and_b64(server, model_base):
    texts = ["a gorgeous, witty film", "the plot is dull and the acting worse", "ok"]
    expected = local_outputs(export_dir(model_base, "bert_sst2"), "serving_default", text=texts)
    status, body = post_json(server.rest_url, "/v1/models/bert_sst2:predict", {"instances": texts})
    assert status == 200
    np.testing.assert_allclose([row["probabilities"] for row in body["predictions"]], expected["probabilities"], atol=1e-6)
    assert [row["labels"] for row in body["predictions"]] == [label.decode() for label in expected["labels"]]
    b64 = [{"b64": base64.b64encode(text.encode()).decode()} for text in texts]
    status, body = post_json(server.rest_url, "/v1/models/bert_sst2:predict", {"inputs": {"text": b64}})
    assert status == 200
    np.testing.assert_allclose(body["outputs"]["probabilities"], expected["probabilities"], atol=1e-6)


def test_lm_signatures_over_rest(server, model_base):
    export = export_dir(model_base, "lm")
    status, body = post_json(server.rest_url, "/v1/models/lm:predict", {"signature_name": "encode", "inputs": "ROMEO:"})
    assert status == 200
    token_ids = body["outputs"]
    assert token_ids == local_outputs(export, "encode", text="ROMEO:")["token_ids"].tolist()
    status, body = post_json(server.rest_url, "/v1/models/lm:predict", {"instances": [token_ids]})
    assert status == 200
    np.testing.assert_allclose(body["predictions"], local_outputs(export, "serving_default", token_ids=[token_ids])["logits"], atol=1e-6)
    status, body = post_json(server.rest_url, "/v1/models/lm:predict", {"signature_name": "decode", "inputs": {"token_ids": token_ids}})
    assert status == 200 and body["outputs"] == "ROMEO:"


def test_grpc_predict_metadata_and_status(server, model_base):
    from tensorflow_serving.apis import get_model_status_pb2, model_pb2, model_service_pb2_grpc

    client = GrpcClient(server.grpc_address)
    signatures = client.signatures("bert_sst2")
    assert SIGNATURES["bert_sst2"] <= set(signatures)
    texts = ["a gorgeous, witty film", "dull"]
    outputs = client.predict("bert_sst2", signatures["serving_default"], {"text": np.array([t.encode() for t in texts], dtype=object)})
    expected = local_outputs(export_dir(model_base, "bert_sst2"), "serving_default", text=texts)
    np.testing.assert_allclose(outputs["probabilities"], expected["probabilities"], atol=1e-5)
    assert outputs["labels"].tolist() == expected["labels"].tolist()

    images = mnist_images(3)
    outputs = client.predict("mnist", client.signatures("mnist")["serving_default"], {"images": images})
    np.testing.assert_allclose(outputs["probabilities"], local_outputs(export_dir(model_base, "mnist"), "serving_default", images=images)["probabilities"], atol=1e-6)

    status = model_service_pb2_grpc.ModelServiceStub(client.channel).GetModelStatus(
        get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(name="lm"))
    )
    assert [(entry.version, entry.state) for entry in status.model_version_status] == [(1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]

    with pytest.raises(ServerError, match="NOT_FOUND.*Servable not found"):
        client.signatures("no_such_model")
    with pytest.raises(ServerError, match="INVALID_ARGUMENT.*expects float"):
        client.predict("mnist", client.signatures("mnist")["serving_default"], {"images": np.zeros([1, 784], np.int32)})


# ---- hostile and malformed requests --------------------------------------------------------------

HOSTILE = [
    ("bad JSON", "POST", "/v1/models/mnist:predict", "{", 400, "JSON Parse error"),
    ("body not an object", "POST", "/v1/models/mnist:predict", "[1, 2]", 400, "Is not object"),
    ("no instances or inputs", "POST", "/v1/models/mnist:predict", {}, 400, "Missing 'inputs' or 'instances' key"),
    ("both formats", "POST", "/v1/models/mnist:predict", {"instances": [[0.0] * 784], "inputs": [[0.0] * 784]}, 400, "expecting only one of 'inputs' or 'instances'"),
    ("wrong input name", "POST", "/v1/models/mnist:predict", {"inputs": {"pixels": [[0.0] * 784]}}, 400, "Missing named input: images in 'inputs' object."),
    ("strings for floats", "POST", "/v1/models/mnist:predict", {"instances": [["x"] * 784]}, 400, "is not of expected type: float"),
    ("wrong shape, refused by the graph", "POST", "/v1/models/mnist:predict", {"instances": [[0.1, 0.2]]}, 400, "Matrix size-incompatible"),
    ("uint8 out of range", "POST", "/v1/models/mnist:predict", {"signature_name": "classify_uint8", "instances": [[[300] * 28] * 28]}, 400, "range"),
    ("huge body", "POST", "/v1/models/mnist:predict", b"[" + b"0," * MAX_BODY_BYTES + b"0]", 413, "exceeded"),
    ("unknown model", "POST", "/v1/models/nope:predict", {"instances": [1]}, 404, "Servable not found for request: Latest(nope)"),
    ("dot-dot in name", "GET", "/v1/models/..%2F..%2Fetc", None, 404, "Could not find any versions of model ../../etc"),
    ("absolute path name", "POST", "/v1/models/%2Fetc%2Fpasswd:predict", {"instances": [1]}, 404, "Servable not found for request: Latest(/etc/passwd)"),
    ("unknown version", "GET", "/v1/models/mnist/versions/7", None, 404, "Could not find version 7 of model mnist"),
    ("unknown version for predict", "POST", "/v1/models/mnist/versions/7:predict", {"instances": [1]}, 404, "Specific(mnist, 7)"),
    ("non-numeric version", "POST", "/v1/models/mnist/versions/..:predict", {"instances": [1]}, 400, "Malformed request: POST /v1/models/mnist/versions/..:predict"),
    ("version too large", "GET", "/v1/models/mnist/versions/99999999999999999999", None, 400, "Failed to convert version"),
    ("empty instances", "POST", "/v1/models/mnist:predict", {"instances": []}, 400, "No values in 'instances' array"),
    ("empty columnar batch, refused by the graph", "POST", "/v1/models/mnist:predict", {"inputs": {"images": []}}, 400, "In[0]"),
    ("unknown signature", "POST", "/v1/models/mnist:predict", {"signature_name": "steal", "instances": [[0.0] * 784]}, 400, 'Serving signature name: "steal" not found'),
    ("signature name not a string", "POST", "/v1/models/mnist:predict", {"signature_name": 5, "instances": [[0.0] * 784]}, 400, "must be a string"),
    ("number for text", "POST", "/v1/models/bert_sst2:predict", {"instances": [5]}, 400, "expected strings"),
    ("bad base64", "POST", "/v1/models/bert_sst2:predict", {"instances": [{"b64": "%%%"}]}, 400, "not valid base64"),
    ("ragged token ids", "POST", "/v1/models/lm:predict", {"instances": [[1, 2], [1]]}, 400, "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: Expecting tensor size: 2 but got: 1"),
    ("fractional token ids", "POST", "/v1/models/lm:predict", {"instances": [[1.5, 2]]}, 400, "integers"),
    ("token id outside the vocabulary", "POST", "/v1/models/lm:predict", {"instances": [[999999]]}, 400, "999999 is not in [0, "),
    ("generate: empty prompt", "POST", "/v1/models/gpt:predict", {"signature_name": "generate", "inputs": {**GENERATE, "prompt": ""}}, 400, "the prompt is empty"),
    ("generate: prompt outside the vocabulary", "POST", "/v1/models/lm:predict", {"signature_name": "generate", "inputs": {**GENERATE, "prompt": "\u4e2d\u6587"}}, 400, "outside the model's vocabulary: \u4e2d \u6587"),
    ("generate: no tokens asked", "POST", "/v1/models/gpt:predict", {"signature_name": "generate", "inputs": {**GENERATE, "max_new_tokens": 0}}, 400, "max_new_tokens must be between 1 and 2000, not 0"),
    ("generate: too many tokens", "POST", "/v1/models/lm:predict", {"signature_name": "generate", "inputs": {**GENERATE, "max_new_tokens": 2001}}, 400, "max_new_tokens must be between 1 and 2000"),
    ("generate: negative temperature", "POST", "/v1/models/gpt:predict", {"signature_name": "generate", "inputs": {**GENERATE, "temperature": -1}}, 400, "temperature must be 0 (greedy) or more"),
    ("generate: negative top_k", "POST", "/v1/models/gpt:predict", {"signature_name": "generate", "inputs": {**GENERATE, "top_k": -3}}, 400, "top_k must be between 0 (no cut) and the vocabulary size"),
    ("generate: top_k above the vocabulary", "POST", "/v1/models/lm:predict", {"signature_name": "generate", "inputs": {**GENERATE, "top_k": 1000}}, 400, "top_k must be between 0 (no cut) and the vocabulary size"),
    ("generate: missing seed", "POST", "/v1/models/lm:predict", {"signature_name": "generate", "inputs": {k: v for k, v in GENERATE.items() if k != "seed"}}, 400, "seed"),
    ("deeply nested JSON", "POST", "/v1/models/mnist:predict", '{"instances": ' + "[" * 100_000 + "]" * 100_000 + "}", 400, "JSON Parse error"),
    ("GET on predict", "GET", "/v1/models/mnist:predict", None, 400, "Malformed request: GET /v1/models/mnist:predict"),
    ("POST on status", "POST", "/v1/models/mnist", {}, 400, "Malformed request: POST /v1/models/mnist"),
    ("DELETE", "DELETE", "/v1/models/mnist", None, 400, "Malformed request: DELETE /v1/models/mnist"),
    ("method in capitals", "POST", "/v1/models/mnist:PREDICT", {"instances": [1]}, 400, "Malformed request"),
    ("no model name", "GET", "/v1/models", None, 400, "Missing model name in request."),
    ("unknown label", "POST", "/v1/models/mnist/labels/canary:predict", {"instances": [1]}, 400, "Unrecognized servable version label: canary"),
    ("unknown path", "GET", "/v2/everything", None, 404, "Not Found"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), [case[1:] for case in HOSTILE], ids=[case[0] for case in HOSTILE])
def test_hostile_request_gets_a_clear_error(server, method, path, body, status, message):
    got_status, answer, _ = http_request(server.rest_url, method, path, body)
    assert (got_status, set(answer)) == (status, {"error"}), answer
    assert message in answer["error"]


def test_long_text_is_answered_and_the_server_keeps_serving(server):
    status, body = post_json(server.rest_url, "/v1/models/bert_sst2:predict", {"instances": ["great " * 1700]})  # 10,200 characters
    assert status == 200 and body["predictions"][0]["labels"] in ("negative", "positive")
    assert server.process.poll() is None
    status, body = post_json(server.rest_url, "/v1/models/mnist:predict", {"instances": mnist_images(1).tolist()})
    assert status == 200 and len(body["predictions"]) == 1


# ---- new versions --------------------------------------------------------------------------------


def newest_state(server, name: str) -> tuple[str, str] | None:
    """(version, state) of a model's newest version, as its status lists it first; None if unknown."""
    versions = get_json(server.rest_url, f"/v1/models/{name}")[1].get("model_version_status")
    return (versions[0]["version"], versions[0]["state"]) if versions else None


def test_new_versions_are_picked_up_and_half_written_ones_ignored(server, model_base, tmp_path):
    model_dir = model_base / "mnist_hot"
    source = export_dir(model_base, "mnist")
    for version in (1, 2):  # published as the exporter does: copy aside, then one rename
        shutil.copytree(source, model_dir / f".staging-{version}")
        os.rename(model_dir / f".staging-{version}", model_dir / str(version))
        wait_for(lambda: newest_state(server, "mnist_hot") == (str(version), "AVAILABLE"))

    half_written = model_dir / "3"
    half_written.mkdir()
    (half_written / "saved_model.pb").write_bytes((source / "saved_model.pb").read_bytes()[:1000])
    wait_for(lambda: "could not load mnist_hot version 3" in server.log())
    status, body = post_json(server.rest_url, "/v1/models/mnist_hot:predict", {"instances": mnist_images(1).tolist()})
    assert status == 200 and body["predictions"]
    # As TF Serving reports it: newest first, the failed version END with its error, version 1 unloaded.
    states = get_json(server.rest_url, "/v1/models/mnist_hot")[1]["model_version_status"]
    assert [(state["version"], state["state"]) for state in states] == [("3", "END"), ("2", "AVAILABLE"), ("1", "END")]
    assert states[0]["status"]["error_code"] == "UNKNOWN" and states[0]["status"]["error_message"]
    assert post_json(server.rest_url, "/v1/models/mnist_hot/versions/3:predict", {"instances": mnist_images(1).tolist()})[0] == 404


def test_a_zero_padded_version_folder_is_served_as_its_number(server, model_base):
    """TF Serving reads ``00000123/`` as version 123 (its file-system source parses the folder name)."""
    from app.exports.savedmodel import resolve_version

    model_dir = model_base / "mnist_padded"
    shutil.copytree(export_dir(model_base, "mnist"), model_dir / ".staging")
    os.rename(model_dir / ".staging", model_dir / "00000123")
    wait_for(lambda: newest_state(server, "mnist_padded") == ("123", "AVAILABLE"))
    status, body = post_json(server.rest_url, "/v1/models/mnist_padded/versions/123:predict", {"instances": mnist_images(1).tolist()})
    assert status == 200 and len(body["predictions"]) == 1
    assert resolve_version(model_dir) == resolve_version(model_dir, 123) == model_dir / "00000123"


# ---- batching ------------------------------------------------------------------------------------


def test_split_by_length_keeps_short_and_long_texts_apart():
    from app.serving.planning import split_by_length

    assert split_by_length([10, 200, 15, 190, 12], call_overhead=256) == [[0, 4, 2], [3, 1]]
    assert split_by_length([50] * 6, call_overhead=256) == [[0, 1, 2, 3, 4, 5]]
    assert split_by_length([10, 5000], call_overhead=1e9) == [[0, 1]]


def test_batching_merges_concurrent_requests_with_the_same_answers(model_base):
    from concurrent.futures import ThreadPoolExecutor

    from app.serving.planning import BatchingConfig
    from app.serving.repository import Servable
    from app.serving.scheduling import ModelRunner

    servable = Servable.load("bert_sst2", 1, export_dir(model_base, "bert_sst2"))
    signature = servable.signature("serving_default")
    texts = [f"a {'very ' * (i % 3)}good film number {i}" for i in range(12)]
    requests = [{"text": np.array([text.encode()], dtype=object)} for text in texts]

    async def answer_all(runner):
        return await asyncio.gather(*(runner.run(servable, signature, request) for request in requests))

    with ThreadPoolExecutor(2) as executor:
        one_by_one = ModelRunner(executor, BatchingConfig(enabled=False))
        batched = ModelRunner(executor, BatchingConfig(enabled=True, max_batch_size=32, timeout_ms=50))
        expected, merged = asyncio.run(answer_all(one_by_one)), asyncio.run(answer_all(batched))
    assert one_by_one.model_calls == 12 and batched.model_calls < 6
    for want, got in zip(expected, merged):
        np.testing.assert_allclose(got["probabilities"], want["probabilities"], atol=1e-5)


# ---- the client and the server command -----------------------------------------------------------


def test_bucketed_bert_calls_answer_as_unbatched_ones(model_base):
    """Filler rows and bucket padding must not change a sentence's answer (BERT masks the padding)."""
    from concurrent.futures import ThreadPoolExecutor

    from app.serving.planning import BatchingConfig
    from app.serving.scheduling import ModelRunner
    from app.serving.servable import Servable
    from tests.serving.test_batching import answer_all

    servable = Servable.load("bert_sst2", 1, export_dir(model_base, "bert_sst2"))
    signature = servable.signature("serving_default")
    sentences = ["a gorgeous, witty film", "dull", "it is not a bad movie at all, though it is far too long for its story",
                 "the acting is superb", "i wanted to like it more than i did", "an utter mess", "funny and moving"]
    requests = [{"text": np.array([text.encode()], dtype=object)} for text in sentences]
    calls = []
    run = servable.run

    def recording_run(name, inputs):
        if name == "serving_default":
            calls.append(len(inputs["text"]))
        return run(name, inputs)

    servable.run = recording_run
    with ThreadPoolExecutor(2) as executor:
        expected = answer_all(ModelRunner(executor, BatchingConfig(enabled=False)), servable, signature, requests)
        calls.clear()
        config = BatchingConfig(enabled=True, max_batch_size=8, timeout_ms=50, allowed_batch_sizes=(1, 2, 4, 8))
        runner = ModelRunner(executor, config)
        got = answer_all(runner, servable, signature, requests)
        assert runner.length_buckets(servable, signature) == config.length_buckets  # "a a a ..." hits every bucket
    assert len(calls) < len(sentences) and all(rows in (1, 2, 4, 8) for rows in calls)
    for want, answer in zip(expected, got):
        np.testing.assert_allclose(answer["probabilities"], want["probabilities"], atol=1e-4)
        assert answer["labels"].tolist() == want["labels"].tolist()


def test_predict_cli_classifies_text_and_images(server, tmp_path):
    done = run_app("app.predict", "--server", server.rest_url, "--model", "bert_sst2", "a gorgeous, witty film", "dull")
    assert done.returncode == 0, done.stderr
    predictions = last_json_line(done.stdout)["predictions"]
    assert [row["input"] for row in predictions] == ["a gorgeous, witty film", "dull"]
    assert all(row["labels"] in ("negative", "positive") for row in predictions)

    arrays = read_mnist_arrays(SHARED_DATA_DIR / "mnist" / "mnist.npz")
    paper = tmp_path / "paper.png"  # dark ink on white paper, as a phone photo would be
    paper.write_bytes(tf.io.encode_png(255 - arrays["x_test"][0][..., None]).numpy())
    done = run_in_process("app.predict", "--grpc", server.grpc_address, "--model", "mnist", str(paper))
    assert done.returncode == 0, done.stderr
    original = arrays["x_test"][0].reshape(1, 784).astype("float32") / 255.0
    status, body = post_json(server.rest_url, "/v1/models/mnist:predict", {"instances": original.tolist()})
    assert last_json_line(done.stdout)["predictions"][0]["class_ids"] == body["predictions"][0]["class_ids"]


@pytest.mark.parametrize("model", ["lm", "gpt"])
def test_generation_through_the_server_equals_local_generation(server, model_base, model):
    """120 characters: texts sampled in bf16 parted from the export's own after 3 (LSTM) and ~40 (GPT)."""
    from app.exports.generation import SamplingConfig, generate

    local = generate(export_dir(model_base, model), "ROMEO:", SamplingConfig(length=120, seed=3))
    for where in (["--server", server.rest_url], ["--grpc", server.grpc_address]):
        done = run_in_process("app.predict", *where, "--model", model, "ROMEO:", "--length", "120", "--seed", "3")
        assert done.returncode == 0, done.stderr
        assert last_json_line(done.stdout)["text"] == local
    inputs = {**GENERATE, "max_new_tokens": 120, "seed": 3, "top_k": 20}  # SamplingConfig defaults
    status, body = post_json(server.rest_url, f"/v1/models/{model}:predict", {"signature_name": "generate", "inputs": inputs})
    assert status == 200 and "ROMEO:" + body["outputs"]["text"] == local
    assert len(body["outputs"]["token_ids"]) == 120
    batch = {"prompts": ["ROMEO:", "JULIET: O", "A"], **{name: value for name, value in inputs.items() if name != "prompt"}}
    status, body = post_json(server.rest_url, f"/v1/models/{model}:predict", {"signature_name": "generate_batch", "inputs": batch})
    expected = local_outputs(export_dir(model_base, model), "generate_batch", **batch)["texts"]
    assert status == 200 and body["outputs"]["texts"] == [text.decode("utf-8") for text in expected]
    token_ids = local_outputs(export_dir(model_base, model), "encode", text=local[:24])["token_ids"].tolist()
    status, body = post_json(server.rest_url, f"/v1/models/{model}:predict", {"instances": [token_ids]})
    expected = local_outputs(export_dir(model_base, model), "serving_default", token_ids=[token_ids])["logits"]
    assert status == 200
    np.testing.assert_allclose(body["predictions"], expected, atol=1e-6)


def test_a_300_character_generation_is_one_request(server, monkeypatch, capsys):
    import app.predict

    requests = []
    original = RestClient._request
    monkeypatch.setattr(RestClient, "_request", lambda self, path, body=None: requests.append(path) or original(self, path, body))
    result = app.predict.main(["--server", server.rest_url, "--model", "gpt", "ROMEO:", "--length", "300"])
    assert len(result["text"]) == len("ROMEO:") + 300
    assert requests == ["/v1/models/gpt/metadata", "/v1/models/gpt:predict"]


def test_predict_cli_without_a_server_says_so():
    done = run_in_process("app.predict", "--server", "http://127.0.0.1:9", "--model", "mnist", "x.png")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: cannot reach http://127.0.0.1:9")


def test_serve_rejects_a_missing_model_base(tmp_path):
    done = run_in_process("app.serve", "--model-base", str(tmp_path / "missing"), "--port", "0")
    assert done.returncode == 2
    assert "is not a folder" in done.stderr.strip().splitlines()[-1]


def test_server_stops_cleanly_with_a_json_summary_that_names_an_asked_for_bf16(model_base):
    """``--mixed-precision bf16`` is a speed the user asks for: the start-up log and the JSON say so
    (float32 on CPUs without bf16 instructions, where the rewrite does not exist). The JSON names the
    thread settings too (here a one-client latency setting)."""
    with start_server(model_base, "--mixed-precision", "bf16", "--tensorflow_inter_op_parallelism", "1") as running:
        assert RestClient(running.rest_url).signatures("mnist")
    log = running.stop()
    assert running.process.returncode == 0
    summary = json.loads(log.strip().splitlines()[-1])
    assert {"bert_sst2": [1], "gpt": [1], "lm": [1], "mnist": [1]}.items() <= summary["models"].items() and summary["batching"] is False
    precision = ONEDNN_BF16 if cpu_supports_bf16() else "float32"
    assert summary["precision"] == precision and f"precision: {precision};" in log
    assert summary["threads"] == {"intra_op": 1, "inter_op": 1}


def test_token_id_signature_alone_loads_without_tf_text(model_base, tmp_path):
    """The re-exported token-id signature loads in a TF1 session (the C++ loader TF Serving uses)
    in a process that never imports tensorflow_text, and answers like the original signature."""
    done = run_app(
        "app.export_signature", "--model-dir", str(model_base / "bert_sst2"), "--signature", "classify_token_ids",
        "--name", "bert_ids", "--out", str(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    export = Path(last_json_line(done.stdout)["export_dir"])
    assert export == tmp_path / "bert_ids" / "1"
    assert [request.model_spec.signature_name for request in read_warmup_requests(export)] == ["serving_default"]

    ids = np.array([[101, 1037, 9882, 2143, 102]], np.int32)
    inputs = {"input_word_ids": ids, "input_mask": np.ones_like(ids), "input_type_ids": np.zeros_like(ids)}
    expected = local_outputs(export_dir(model_base, "bert_sst2"), "classify_token_ids", **inputs)["probabilities"]
    script = f"""
import sys, json, numpy as np, tensorflow as tf
with tf.compat.v1.Session(graph=tf.Graph()) as session:
    meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], {str(export)!r})
    signature = meta.signature_def["serving_default"]
    feed = {{signature.inputs[name].name: np.array(value, np.int32) for name, value in {json.dumps({k: v.tolist() for k, v in inputs.items()})}.items()}}
    probabilities = session.run(signature.outputs["probabilities"].name, feed)
assert "tensorflow_text" not in sys.modules
print(json.dumps(probabilities.tolist()))
"""
    (tmp_path / "load_in_a_tf1_session.py").write_text(script)
    answer = run_app("load_in_a_tf1_session", cwd=tmp_path, timeout=120)
    assert answer.returncode == 0, answer.stderr[-2000:]
    np.testing.assert_allclose(json.loads(answer.stdout.strip().splitlines()[-1]), expected, atol=1e-5)

    missing = run_in_process("app.export_signature", "--model-dir", str(model_base / "bert_sst2"), "--signature", "nope", "--out", str(tmp_path))
    assert missing.returncode == 2 and "has no signature 'nope'" in missing.stderr.strip().splitlines()[-1]

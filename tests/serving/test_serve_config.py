"""``python -m app.serve`` run the way TF Serving is run: its flags, a model config with version
policies and labels, a batching parameters file, Prometheus monitoring, config reloads, and model
folders that are missing or broken (logged and skipped; the server keeps serving the rest)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.serving.process import start_server
from tests.serving.half_plus_two import build_test_models
from tests.support.commands import run_in_process
from tests.support.http import get_json, post_json
from tests.support.waiting import wait_for

CONFIG = """
model_config_list {{
  config {{ name: "half_plus_two" base_path: "{base}/half_plus_two" model_platform: "tensorflow"
           model_version_policy {{ specific {{ versions: 123 versions: 124 }} }}
           version_labels {{ key: "stable" value: 123 }} version_labels {{ key: "canary" value: 124 }} }}
  config {{ name: "broken" base_path: "{base}/broken" }}
  config {{ name: "missing" base_path: "{base}/missing" }}
{extra}}}
"""
BATCHING = "max_batch_size { value: 8 }\nbatch_timeout_micros { value: 1000 }\nallowed_batch_sizes: [2, 4, 8]\n"


def write_config(base: Path, extra: str = "") -> Path:
    path = base / "models.config"
    path.write_text(CONFIG.format(base=base, extra=extra))
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    base = build_test_models(tmp_path_factory.mktemp("models"))
    (base / "broken" / "1").mkdir(parents=True)
    (base / "broken" / "1" / "saved_model.pb").write_bytes(b"not a SavedModel")
    (base / "monitoring.config").write_text('prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }\n')
    (base / "batching.config").write_text(BATCHING)
    flags = (
        f"--model_config_file={write_config(base)}", "--model_config_file_poll_wait_seconds=0.5",
        "--file_system_poll_wait_seconds", "0.5", f"--monitoring_config_file={base / 'monitoring.config'}",
        "--enable_batching", f"--batching_parameters_file={base / 'batching.config'}",
    )
    with start_server(None, *flags) as server:
        yield server, base


def test_two_versions_under_a_specific_policy_answer_by_label(served):
    server, _ = served
    url = server.rest_url
    assert post_json(url, "/v1/models/half_plus_two/labels/stable:predict", {"instances": [1.0]}) == (200, {"predictions": [2.5]})
    assert post_json(url, "/v1/models/half_plus_two/labels/canary:predict", {"instances": [1.0]}) == (200, {"predictions": [3.5]})
    assert post_json(url, "/v1/models/half_plus_two:predict", {"instances": [1.0]}) == (200, {"predictions": [3.5]})  # latest
    status, body = get_json(url, "/v1/models/half_plus_two")
    assert [(entry["version"], entry["state"]) for entry in body["model_version_status"]] == [("124", "AVAILABLE"), ("123", "AVAILABLE")]


def test_a_broken_or_missing_model_folder_is_logged_and_the_rest_served(served):
    server, _ = served
    url = server.rest_url
    log = server.log()
    assert re.search(r"could not load broken version 1 from \S+: ", log)
    assert "model missing: no folder at" in log
    status, body = get_json(url, "/v1/models/broken")
    assert status == 200 and body["model_version_status"][0]["state"] == "END"
    assert body["model_version_status"][0]["status"]["error_message"]
    assert post_json(url, "/v1/models/broken:predict", {"instances": [1.0]})[0] == 404
    assert get_json(url, "/v1/models/missing") == (404, {"error": "Could not find any versions of model missing"})
    assert server.process.poll() is None


def test_batches_are_padded_to_the_allowed_sizes_and_counted_in_the_metrics(served):
    server, _ = served
    url = server.rest_url
    for rows in (1, 3, 5):
        instances = [float(value) for value in range(rows)]
        assert post_json(url, "/v1/models/half_plus_two:predict", {"instances": instances}) == (200, {"predictions": [0.5 * x + 3 for x in instances]})
    status, page = get_json(url, "/monitoring/prometheus/metrics")
    assert status == 200
    counts = dict(re.findall(r'^:tensorflow:serving:request_count\{model_name="half_plus_two",status="(\w+)"\} (\d+)', page, re.M))
    assert int(counts["OK"]) >= 5
    assert ':tensorflow:serving:request_latency_bucket{model_name="half_plus_two",API="predict",entrypoint="REST",le="+Inf"}' in page
    padded = dict(re.findall(r'^:tensorflow:serving:batching_session:padding_size_count\{execution_batch_size="(\d+)"\} (\d+)', page, re.M))
    assert set(padded) <= {"2", "4", "8"} and {"4", "8"} <= set(padded)  # 3 rows run as 4, 5 rows as 8


def test_an_edited_config_is_picked_up_without_a_restart(served):
    server, base = served
    url = server.rest_url
    write_config(base, extra='  config { name: "half_plus_three" base_path: "%s/half_plus_three" }\n' % base)
    wait_for(lambda: "AVAILABLE" in str(get_json(url, "/v1/models/half_plus_three")[1]))
    body = {"signature_name": "tensorflow/serving/regress", "examples": [{"x": 1.0}]}  # its regression signature
    assert post_json(url, "/v1/models/half_plus_three:regress", body) == (200, {"results": [3.5]})
    (base / "models.config").write_text("model_config_list { config { name: ")  # a half-written edit: keep serving
    wait_for(lambda: "could not reload" in server.log())
    assert post_json(url, "/v1/models/half_plus_two/labels/stable:predict", {"instances": [2.0]}) == (200, {"predictions": [3.0]})


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--model_config_file=/nowhere/models.config"], "no such file"),
        (["--model_config_file={bad}"], "models.config:1:"),
        (["--model_config_file={dup}"], "Illegal to list model a multiple times in config list"),
        (["--batching_parameters_file={batching}", "--enable_batching"], "allowed_batch_sizes"),
        (["--rest_api_port=70000"], "must be between 0 and 65535"),
        (["--tensorflow_inter_op_parallelism=-1"], "must be 0 (TensorFlow's default) or more"),
        (["--no_such_flag=1"], "unrecognized arguments: --no_such_flag=1"),
    ],
    ids=["missing config", "unparsable config", "duplicate model", "bad batching", "bad port", "bad threads", "unknown flag"],
)
def test_bad_flags_and_files_are_one_clear_error(tmp_path, flags, message):
    (tmp_path / "models.config").write_text("model_config_list { config { name: 5 } }")
    (tmp_path / "dup.config").write_text('model_config_list { config { name: "a" base_path: "/a" } config { name: "a" base_path: "/b" } }')
    (tmp_path / "batching.config").write_text("max_batch_size { value: 8 }\nallowed_batch_sizes: [2, 4]\n")
    paths = {"bad": tmp_path / "models.config", "dup": tmp_path / "dup.config", "batching": tmp_path / "batching.config"}
    done = run_in_process("app.serve", *(flag.format(**paths) for flag in flags), "--port=0", "--rest_api_port=0")
    assert done.returncode == 2, done.stdout[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last, done.stderr[-2000:]

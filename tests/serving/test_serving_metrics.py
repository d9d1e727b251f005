"""TF Serving's config files (batching, monitoring, model config) and its Prometheus page, in-process."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from google.protobuf import text_format
from tensorflow_serving.config.model_server_config_pb2 import ModelServerConfig

from app.common.errors import UsageError
from app.serving.config_protos import BatchingParameters, MonitoringConfig, read_text_proto
from app.serving.metrics import PROMETHEUS_PATH, Metrics, prometheus_path
from tests.support.paths import REPO_ROOT


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "file.config"
    path.write_text(text)
    return path


def test_our_serving_configs_parse_as_tf_serving_parses_them():
    batching = read_text_proto(REPO_ROOT / "serving" / "batching.config", BatchingParameters)
    assert batching.max_batch_size.value == 32 and batching.batch_timeout_micros.value == 2000
    assert batching.num_batch_threads.value == 2 and not batching.HasField("thread_pool_name")
    models = read_text_proto(REPO_ROOT / "serving" / "models.config", ModelServerConfig)
    assert [c.name for c in models.model_config_list.config] == ["mnist", "lm", "gpt", "bert_sst2"]


def test_batching_parameters_have_every_field_of_session_bundle_config_proto(tmp_path):
    text = """max_batch_size { value: 8 } batch_timeout_micros { value: 100 } max_enqueued_batches { value: 3 }
              num_batch_threads { value: 1 } thread_pool_name { value: "pool" }
              allowed_batch_sizes: 2 allowed_batch_sizes: 8 pad_variable_length_inputs: true
              enable_large_batch_splitting { value: true } max_execution_batch_size { value: 4 }"""
    parsed = read_text_proto(_write(tmp_path, text), BatchingParameters)
    assert list(parsed.allowed_batch_sizes) == [2, 8] and parsed.pad_variable_length_inputs
    assert parsed.thread_pool_name.value == "pool" and parsed.enable_large_batch_splitting.value
    numbers = {f.name: f.number for f in BatchingParameters.DESCRIPTOR.fields}
    assert numbers == {"max_batch_size": 1, "batch_timeout_micros": 2, "max_enqueued_batches": 3,
                       "num_batch_threads": 4, "thread_pool_name": 5, "allowed_batch_sizes": 6,
                       "pad_variable_length_inputs": 7, "enable_large_batch_splitting": 8,
                       "max_execution_batch_size": 9}
    assert BatchingParameters.DESCRIPTOR.full_name == "tensorflow.serving.BatchingParameters"
    # The wire format round-trips too (e.g. for a SessionBundleConfig built elsewhere).
    assert BatchingParameters.FromString(parsed.SerializeToString()) == parsed


def test_monitoring_config_gives_the_prometheus_path(tmp_path):
    enabled = read_text_proto(_write(tmp_path, "prometheus_config { enable: true }"), MonitoringConfig)
    assert prometheus_path(enabled) == PROMETHEUS_PATH == "/monitoring/prometheus/metrics"
    custom = text_format.Parse('prometheus_config { enable: true path: "/m" }', MonitoringConfig())
    assert prometheus_path(custom) == "/m"
    assert prometheus_path(MonitoringConfig()) is None and prometheus_path(None) is None


@pytest.mark.parametrize("text, message, expected", [
    ("max_batch_size { value: 8 }\nmax_batch_sise { value: 8 }", BatchingParameters,
     r":2:1: .*has no field named \"max_batch_sise\""),
    ('max_batch_size { value: "eight" }', BatchingParameters, r":1:25: .*(integer|int64)"),
    ("prometheus_config { enable: maybe }", MonitoringConfig, r":1:\d+: .*true.*false"),
    ("prometheus_config {", MonitoringConfig, r":1:\d+: Expected \"}\""),
    ("model_config_list { config { nme: 'x' } }", ModelServerConfig, r":1:30: .*no field named \"nme\""),
])
def test_a_bad_file_is_one_line_naming_file_line_column_and_problem(tmp_path, text, message, expected):
    path = _write(tmp_path, text)
    with pytest.raises(UsageError) as raised:
        read_text_proto(path, message)
    assert "\n" not in str(raised.value) and str(raised.value).startswith(str(path))
    assert re.search(expected, str(raised.value)), str(raised.value)


def test_a_missing_file_or_a_directory_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        read_text_proto(tmp_path / "absent.config", MonitoringConfig)
    with pytest.raises(UsageError, match="is a directory"):
        read_text_proto(tmp_path, MonitoringConfig)


_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _parse(page: str) -> tuple[dict[str, str], dict[tuple[str, frozenset], float]]:
    """A strict reader of the text exposition: TYPE lines and samples, nothing else allowed."""
    assert page.endswith("\n")
    types, samples = {}, {}
    for line in page.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
            continue
        match = _LINE.match(line)
        assert match, line
        name, labels, value = match.groups()
        pairs = _LABEL.findall(labels)
        assert ",".join(f'{k}="{v}"' for k, v in pairs) == labels, line
        key = (name, frozenset((k, v.replace('\\"', '"').replace("\\\\", "\\")) for k, v in pairs))
        assert key not in samples, line
        samples[key] = float(value)
    return types, samples


def _value(samples, name: str, **labels) -> float:
    return samples[(name, frozenset(labels.items()))]


def test_metrics_render_tf_serving_names_labels_and_values():
    metrics = Metrics()
    metrics.record_request("mnist", 1, "predict", "REST", "OK", 0.0125)
    metrics.record_request("mnist", None, "predict", "GRPC", "OK", 0.002)
    metrics.record_request("mnist", None, "classify", "GRPC", "INVALID_ARGUMENT", 0.001)
    metrics.record_request("mnist", None, "get_model_status", "REST", "OK", 0.001)
    metrics.record_request("mnist", None, "get_model_metadata", "GRPC", "OK", 0.001)  # not counted by TF Serving
    metrics.record_runtime("mnist", "predict", 0.01)
    metrics.set_model_state("mnist", 1, "LOADING")
    metrics.set_model_state("mnist", 1, "AVAILABLE")
    metrics.record_load("/models/mnist/1", True, 2.5)
    metrics.record_load("/models/bad/1", False, 0.1)
    metrics.record_warmup("/models/mnist/1", "OK", 0.3, 10)
    metrics.record_batch("mnist", 1, batch_size=5, padded_size=8, queuing_seconds=0.002, request_sizes=[2, 3])
    types, samples = _parse(metrics.render())

    assert types[":tensorflow:serving:request_count"] == "counter"
    assert _value(samples, ":tensorflow:serving:request_count", model_name="mnist", status="OK") == 3
    assert _value(samples, ":tensorflow:serving:request_count", model_name="mnist", status="INVALID_ARGUMENT") == 1
    latency = ":tensorflow:serving:request_latency"
    assert types[latency] == "histogram"
    assert _value(samples, latency + "_sum", model_name="mnist", API="predict", entrypoint="REST") == 12500
    assert _value(samples, latency + "_count", model_name="mnist", API="Predict", entrypoint="GRPC") == 1
    assert _value(samples, latency + "_count", model_name="mnist", API="", entrypoint="REST") == 1
    assert not any(n.startswith(latency) and dict(l).get("API") == "Classify" for n, l in samples)  # errors untimed
    assert _value(samples, ":tensorflow:serving:runtime_latency_sum", model_name="mnist", API="Predict",
                  runtime="TF1") == 10000
    state = ":fromzero:serving:model_state"
    assert types[state] == "gauge"
    assert _value(samples, state, model_name="mnist", version="1", state="AVAILABLE") == 1
    assert _value(samples, state, model_name="mnist", version="1", state="LOADING") == 0
    attempts = ":tensorflow:cc:saved_model:load_attempt_count"
    assert _value(samples, attempts, model_path="/models/mnist/1", status="success") == 1
    assert _value(samples, attempts, model_path="/models/bad/1", status="fail") == 1
    assert _value(samples, ":tensorflow:cc:saved_model:load_latency", model_path="/models/mnist/1") == 2_500_000
    assert (":tensorflow:cc:saved_model:load_latency", frozenset({("model_path", "/models/bad/1")})) not in samples
    assert _value(samples, ":tensorflow:serving:model_warmup_records_read", model_path="/models/mnist/1",
                  status="OK") == 10
    batching = ":tensorflow:serving:batching_session:"
    assert _value(samples, batching + "wrapped_run_count") == 1
    assert _value(samples, batching + "padding_size_sum", execution_batch_size="8") == 3
    assert _value(samples, batching + "processed_batch_size_sum") == 8
    assert _value(samples, batching + "input_batch_size_count") == 2
    assert _value(samples, batching + "queuing_latency_sum", thread_pool_name="") == 2000


def test_histogram_buckets_are_cumulative_and_match_the_count():
    metrics = Metrics()
    for seconds in (0.000005, 0.00001, 0.0005, 0.0005, 3.0, 1e6):
        metrics.record_runtime("lm", "predict", seconds)
    _, samples = _parse(metrics.render())
    labels = {"model_name": "lm", "API": "Predict", "runtime": "TF1"}
    buckets = sorted(((float(dict(l)["le"]), v) for (n, l), v in samples.items()
                      if n == ":tensorflow:serving:runtime_latency_bucket"), key=lambda b: b[0])
    assert len(buckets) == 34 and buckets[0][0] == 10 and buckets[-1][0] == float("inf")  # Exponential(10, 1.8, 33)
    counts = [v for _, v in buckets]
    assert counts == sorted(counts) and counts[-1] == _value(samples, ":tensorflow:serving:runtime_latency_count",
                                                             **labels) == 6
    assert counts[0] == 1   # 5us < 10; 10us goes above the limit 10, as TensorFlow's histograms do
    assert counts[1] == 2
    assert counts[-2] == 5  # 1e6 s is past the last finite limit
    assert _value(samples, ":tensorflow:serving:runtime_latency_sum", **labels) == 5 + 10 + 500 + 500 + 3e6 + 1e12


def test_label_values_are_escaped_and_unknown_names_rejected():
    metrics = Metrics()
    metrics.record_request('a"b\\c', 1, "regress", "REST", "OK", 0.001)
    _, samples = _parse(metrics.render())
    assert _value(samples, ":tensorflow:serving:request_count", model_name='a"b\\c', status="OK") == 1
    with pytest.raises(ValueError):
        metrics.record_request("m", 1, "Predict", "REST", "OK", 0.1)
    with pytest.raises(ValueError):
        metrics.set_model_state("m", 1, "READY")


def test_metrics_are_thread_safe():
    metrics = Metrics()

    def work():
        for _ in range(500):
            metrics.record_request("m", 1, "predict", "GRPC", "OK", 0.001)
            metrics.record_batch("m", 1, 3, 4, 0.001)
            metrics.render() if _ % 100 == 0 else None

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _, samples = _parse(metrics.render())
    assert _value(samples, ":tensorflow:serving:request_count", model_name="m", status="OK") == 2000
    assert _value(samples, ":tensorflow:serving:batching_session:wrapped_run_count") == 2000

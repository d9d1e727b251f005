"""The Prometheus page TF Serving serves when ``--monitoring_config_file`` enables it.

Dashboards and alerts written for TF Serving should work unchanged against `python -m app.serve`,
so the metric names, labels, label values, units (microseconds) and bucket limits follow TF Serving
(paths are in tensorflow/serving, snapshot 9d981c5c):

* ``/tensorflow/serving/request_count`` {model_name, status} counter, status = gRPC code name —
  servables/tensorflow/util.cc:66, 117; one per REST request (model_servers/http_server.cc:201) and
  per gRPC Predict/Classify/Regress (model_servers/prediction_service_impl.cc:59,98,126; gRPC
  GetModelMetadata, GetModelStatus and MultiInference record nothing).
* ``/tensorflow/serving/request_latency`` {model_name, API, entrypoint} histogram — util.cc:80; only
  for OK requests; API is the REST URL verb ("predict", "classify", "regress"; "" for GET
  metadata/status: http_rest_api_util.cc:100-106) or the gRPC method ("Predict", ...).
* ``/tensorflow/serving/runtime_latency`` {model_name, API, runtime} histogram — util.cc:70;
  runtime "TF1" as for a SavedModel session (servables/tensorflow/predict_util.cc:113).
* ``/tensorflow/cc/saved_model/load_attempt_count`` {model_path, status="success"|"fail"} and
  ``/tensorflow/cc/saved_model/load_latency`` {model_path} counters — TensorFlow's own
  tensorflow/cc/saved_model/loader.cc, which TF Serving exports with everything else.
* ``/tensorflow/serving/model_warmup_latency`` {model_path, status} histogram and
  ``/tensorflow/serving/model_warmup_records_read`` counter — saved_model_warmup_util.cc:51-63,227.
* ``/tensorflow/serving/batching_session/{queuing_latency{thread_pool_name}, wrapped_run_count,
  padding_size{execution_batch_size}, processed_batch_size, input_batch_size}`` — batching_session.cc
  :59-68,767,810 and batching/batching_util.h:118-152.  The model server creates its batching
  sessions with thread_pool_name "" (batching_session.cc:986), hence that label value.
* ``/fromzero/serving/model_state`` {model_name, version, state} gauge — ours: TF Serving exports
  no model state, so the `ModelVersionStatus.State` of each version is given as a state set
  (1 for the current state, 0 for the others).

The page is written as util/prometheus_exporter.cc writes it: metrics in name order, each with
one ``# TYPE`` line and no HELP, names with every character outside [a-zA-Z0-9_] replaced by ':'
(so ``:tensorflow:serving:request_count``), histograms as cumulative ``_bucket{le=...}`` lines
(limits printed like absl::StrCat, the last one ``+Inf``), ``_sum`` and ``_count``.  Like
TensorFlow's histograms a value goes into the first bucket whose limit is *greater* than it.
Every method takes one lock, so the asyncio loop and worker threads can all call it.
"""

from __future__ import annotations

import bisect
import re
import threading
from typing import Iterable

PROMETHEUS_PATH = "/monitoring/prometheus/metrics"  # util/prometheus_exporter.cc:156
CONTENT_TYPE = "text/plain"  # model_servers/http_server.cc:92

STATES = ("START", "LOADING", "AVAILABLE", "UNLOADING", "END")
APIS = ("predict", "classify", "regress", "multi_inference", "get_model_metadata", "get_model_status")
_REST_API_LABEL = {"predict": "predict", "classify": "classify", "regress": "regress",
                   "get_model_metadata": "", "get_model_status": ""}
_METHOD_NAME = {"predict": "Predict", "classify": "Classify", "regress": "Regress"}
_RUNTIME = "TF1"
_THREAD_POOL_NAME = ""


def prometheus_path(config) -> str | None:
    """The path to serve the page at for a `MonitoringConfig`, or None when it is not enabled."""
    if config is None or not config.prometheus_config.enable:
        return None
    return config.prometheus_config.path or PROMETHEUS_PATH


def _exponential(scale: float, growth: float, count: int) -> tuple[float, ...]:
    """TensorFlow's monitoring::Buckets::Exponential; the implicit last bucket runs to DBL_MAX."""
    limits, bound = [], float(scale)
    for _ in range(count):
        limits.append(bound)
        bound *= growth
    return tuple(limits)


_LATENCY_BUCKETS = _exponential(10, 1.8, 33)      # util.cc:78,89; saved_model_warmup_util.cc:58
_QUEUING_BUCKETS = _exponential(100, 1.2, 52)     # batching_session.cc:64
_BATCH_SIZE_BUCKETS = _exponential(1, 2, 14)      # batching_util.h:126,139,151


def _micros(seconds: float) -> int:
    return max(0, round(seconds * 1e6))


class _Metric:
    def __init__(self, name: str, kind: str, labels: tuple[str, ...], buckets: tuple[float, ...] = ()):
        self.name, self.kind, self.labels, self.buckets = name, kind, labels, buckets
        self.cells: dict[tuple[str, ...], object] = {}

    def add(self, values: tuple[str, ...], amount: float) -> None:
        if self.kind == "histogram":
            counts, total = self.cells.get(values) or ([0] * (len(self.buckets) + 1), 0.0)
            counts[bisect.bisect_right(self.buckets, amount)] += 1
            self.cells[values] = (counts, total + amount)
        else:
            self.cells[values] = self.cells.get(values, 0) + amount

    def set(self, values: tuple[str, ...], amount: float) -> None:
        self.cells[values] = amount


def _prometheus_name(name: str) -> str:
    name = re.sub(r"[^a-zA-Z0-9_]", ":", name)
    return "_" + name if name[:1].isdigit() else name


def _label_pairs(names: Iterable[str], values: Iterable[str]) -> list[str]:
    def value(text: str) -> str:
        return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return [f'{re.sub(r"[^a-zA-Z0-9]", "_", n)}="{value(v)}"' for n, v in zip(names, values)]


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class Metrics:
    """Counters, gauges and histograms of one server process, rendered as TF Serving's page."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        metrics = [
            _Metric("/tensorflow/serving/request_count", "counter", ("model_name", "status")),
            _Metric("/tensorflow/serving/request_latency", "histogram", ("model_name", "API", "entrypoint"),
                    _LATENCY_BUCKETS),
            _Metric("/tensorflow/serving/runtime_latency", "histogram", ("model_name", "API", "runtime"),
                    _LATENCY_BUCKETS),
            _Metric("/tensorflow/cc/saved_model/load_attempt_count", "counter", ("model_path", "status")),
            _Metric("/tensorflow/cc/saved_model/load_latency", "counter", ("model_path",)),
            _Metric("/tensorflow/serving/model_warmup_latency", "histogram", ("model_path", "status"),
                    _LATENCY_BUCKETS),
            _Metric("/tensorflow/serving/model_warmup_records_read", "counter", ("model_path", "status")),
            _Metric("/tensorflow/serving/batching_session/queuing_latency", "histogram", ("thread_pool_name",),
                    _QUEUING_BUCKETS),
            _Metric("/tensorflow/serving/batching_session/wrapped_run_count", "counter", ()),
            _Metric("/tensorflow/serving/batching_session/padding_size", "histogram", ("execution_batch_size",),
                    _BATCH_SIZE_BUCKETS),
            _Metric("/tensorflow/serving/batching_session/processed_batch_size", "histogram", (),
                    _BATCH_SIZE_BUCKETS),
            _Metric("/tensorflow/serving/batching_session/input_batch_size", "histogram", (),
                    _BATCH_SIZE_BUCKETS),
            _Metric("/fromzero/serving/model_state", "gauge", ("model_name", "version", "state")),
        ]
        self._metrics = {metric.name: metric for metric in metrics}

    def _add(self, name: str, values: tuple[str, ...], amount: float) -> None:
        self._metrics[name].add(values, amount)

    def record_request(self, model_name: str, version: int | None, api: str, entrypoint: str, status: str,
                       seconds: float) -> None:
        """One finished request, counted and timed exactly where TF Serving would (see module doc).

        `version` is accepted for symmetry; TF Serving's request metrics carry no version label.
        """
        if api not in APIS or entrypoint not in ("REST", "GRPC"):
            raise ValueError(f"unknown api/entrypoint {api!r}/{entrypoint!r}")
        label = _REST_API_LABEL.get(api) if entrypoint == "REST" else _METHOD_NAME.get(api)
        if label is None:  # gRPC metadata/status/multi-inference, REST multi-inference: not recorded
            return
        with self._lock:
            self._add("/tensorflow/serving/request_count", (model_name, status), 1)
            if status == "OK":
                self._add("/tensorflow/serving/request_latency", (model_name, label, entrypoint), _micros(seconds))

    def record_runtime(self, model_name: str, api: str, seconds: float) -> None:
        """Time spent inside the model call for Predict/Classify/Regress (others: not recorded)."""
        if api not in APIS:
            raise ValueError(f"unknown api {api!r}")
        if api in _METHOD_NAME:
            with self._lock:
                self._add("/tensorflow/serving/runtime_latency", (model_name, _METHOD_NAME[api], _RUNTIME),
                          _micros(seconds))

    def set_model_state(self, model_name: str, version: int, state: str) -> None:
        """The `ModelVersionStatus.State` name of one model version, replacing its previous state."""
        if state not in STATES:
            raise ValueError(f"unknown model state {state!r}; expected one of {', '.join(STATES)}")
        with self._lock:
            for each in STATES:
                self._metrics["/fromzero/serving/model_state"].set((model_name, str(version), each),
                                                                    int(each == state))

    def record_load(self, model_path: str, ok: bool, seconds: float) -> None:
        """One SavedModel load attempt; like TensorFlow, latency is summed for successful loads only."""
        with self._lock:
            self._add("/tensorflow/cc/saved_model/load_attempt_count", (model_path, "success" if ok else "fail"), 1)
            if ok:
                self._add("/tensorflow/cc/saved_model/load_latency", (model_path,), _micros(seconds))

    def record_warmup(self, model_path: str, status: str, seconds: float, records: int) -> None:
        """One warm-up replay of ``assets.extra/tf_serving_warmup_requests``.

        `status` is TF Serving's ``Status::ToString()``: "OK", or e.g. "INVALID_ARGUMENT: <message>".
        """
        with self._lock:
            self._add("/tensorflow/serving/model_warmup_latency", (model_path, status), _micros(seconds))
            self._add("/tensorflow/serving/model_warmup_records_read", (model_path, status), records)

    def record_batch(self, model_name: str, version: int, batch_size: int, padded_size: int,
                     queuing_seconds: float, request_sizes: Iterable[int] = ()) -> None:
        """One batched model call of `batch_size` rows padded to `padded_size`.

        TF Serving's batching metrics carry no model label (batching_util.h:114-116), so
        `model_name`/`version` are not exported.  TF Serving samples queuing latency per request;
        here `queuing_seconds` (the oldest request's wait) is one sample per batch.  The sizes of
        the requests in the batch, when given, feed ``input_batch_size``.
        """
        with self._lock:
            self._add("/tensorflow/serving/batching_session/wrapped_run_count", (), 1)
            self._add("/tensorflow/serving/batching_session/processed_batch_size", (), padded_size)
            self._add("/tensorflow/serving/batching_session/padding_size", (str(padded_size),),
                      padded_size - batch_size)
            self._add("/tensorflow/serving/batching_session/queuing_latency", (_THREAD_POOL_NAME,),
                      _micros(queuing_seconds))
            for size in request_sizes:
                self._add("/tensorflow/serving/batching_session/input_batch_size", (), size)

    def render(self) -> str:
        """The Prometheus text exposition of every metric, as prometheus_exporter.cc writes it."""
        lines: list[str] = []
        with self._lock:
            for name in sorted(self._metrics):
                metric = self._metrics[name]
                prom = _prometheus_name(name)
                lines.append(f"# TYPE {prom} {metric.kind}")
                for values in sorted(metric.cells):
                    labels = _label_pairs(metric.labels, values)
                    if metric.kind != "histogram":
                        lines.append(f"{prom}{{{','.join(labels)}}} {_number(metric.cells[values])}")
                        continue
                    counts, total = metric.cells[values]
                    cumulative = 0
                    limits = [f"{limit:.6g}" for limit in metric.buckets] + ["+Inf"]
                    for limit, count in zip(limits, counts):
                        cumulative += count
                        bucket_labels = ",".join(labels + [f'le="{limit}"'])
                        lines.append(f"{prom}_bucket{{{bucket_labels}}} {cumulative}")
                    lines.append(f"{prom}_sum{{{','.join(labels)}}} {_number(total)}")
                    lines.append(f"{prom}_count{{{','.join(labels)}}} {cumulative}")
        return "\n".join(lines) + "\n"

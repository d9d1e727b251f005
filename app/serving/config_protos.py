"""TF Serving's config messages that the tensorflow-serving-api wheel lacks, and one text-proto reader.

`python -m app.serve` accepts TF Serving's own files (``--batching_parameters_file``,
``--monitoring_config_file``, ``--model_config_file``), so they must parse exactly as TF Serving
parses them: with ``google.protobuf.text_format`` against the same messages.  The wheel ships
``ModelServerConfig`` but not ``BatchingParameters`` nor ``MonitoringConfig``; rather than vendor
generated code we describe those messages here by hand — same package, names, field numbers and
types as

* ``tensorflow_serving/servables/tensorflow/session_bundle_config.proto`` lines 149-203
  (``message BatchingParameters``; wrapper types from ``google/protobuf/wrappers.proto``), and
* ``tensorflow_serving/config/monitoring_config.proto`` (``PrometheusConfig``, ``MonitoringConfig``)

— and build real message classes from that description at import time.  They live in a private
descriptor pool so they can never clash with a generated module that registers the same names.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TypeVar

from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory, text_format
from google.protobuf import wrappers_pb2

from app.common.errors import UsageError

_F = descriptor_pb2.FieldDescriptorProto


def _field(name: str, number: int, kind: int, type_name: str = "", repeated: bool = False) -> _F:
    label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
    field = _F(name=name, number=number, type=kind, label=label)
    if type_name:  # setting it even to "" would mark a scalar field as a message reference
        field.type_name = type_name
    return field


def _build_file() -> descriptor_pb2.FileDescriptorProto:
    """The hand-written equivalent of the two .proto files (proto3, package tensorflow.serving)."""
    msg, i64, s, b = _F.TYPE_MESSAGE, _F.TYPE_INT64, _F.TYPE_STRING, _F.TYPE_BOOL
    int64_value, string_value, bool_value = (
        ".google.protobuf.Int64Value", ".google.protobuf.StringValue", ".google.protobuf.BoolValue")
    batching = descriptor_pb2.DescriptorProto(name="BatchingParameters", field=[
        _field("max_batch_size", 1, msg, int64_value),
        _field("batch_timeout_micros", 2, msg, int64_value),
        _field("max_enqueued_batches", 3, msg, int64_value),
        _field("num_batch_threads", 4, msg, int64_value),
        _field("thread_pool_name", 5, msg, string_value),
        _field("allowed_batch_sizes", 6, i64, repeated=True),
        _field("pad_variable_length_inputs", 7, b),
        _field("enable_large_batch_splitting", 8, msg, bool_value),
        _field("max_execution_batch_size", 9, msg, int64_value),
    ])
    prometheus = descriptor_pb2.DescriptorProto(name="PrometheusConfig", field=[
        _field("enable", 1, b),
        _field("path", 2, s),
    ])
    monitoring = descriptor_pb2.DescriptorProto(name="MonitoringConfig", field=[
        _field("prometheus_config", 1, msg, ".tensorflow.serving.PrometheusConfig"),
    ])
    return descriptor_pb2.FileDescriptorProto(
        name="fromzero/tensorflow_serving_config.proto", package="tensorflow.serving",
        syntax="proto3", dependency=["google/protobuf/wrappers.proto"],
        message_type=[batching, prometheus, monitoring])


def _build_classes():
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    pool.Add(_build_file())
    return tuple(message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tensorflow.serving.{name}"))
                 for name in ("BatchingParameters", "PrometheusConfig", "MonitoringConfig"))


BatchingParameters, PrometheusConfig, MonitoringConfig = _build_classes()

M = TypeVar("M", bound=message.Message)

_LOCATION = re.compile(r"^\d+(:\d+)? : ")


def read_text_proto(path: str | Path, message_class: type[M]) -> M:
    """Parse the text-format protobuf at `path` into a new `message_class`, as TF Serving would.

    Any problem — missing or unreadable file, not UTF-8, unknown field, bad value, syntax error —
    becomes one `UsageError` line naming the file, the line:column when known, and what is wrong,
    so a bad ``--*_config_file`` flag reads like any other bad flag.
    """
    what = message_class.DESCRIPTOR.name
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file (expected a text-format {what})") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, not a text-format {what} file") from None
    except OSError as error:
        raise UsageError(f"{path}: cannot read it: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise UsageError(f"{path}: not UTF-8 text (byte {error.start}); expected a text-format {what}") from None
    parsed = message_class()
    try:
        text_format.Parse(text, parsed)
    except text_format.ParseError as error:
        line, column = error.GetLine(), error.GetColumn()
        where = f"{path}:{line}:{column}" if line is not None and column is not None else (
            f"{path}:{line}" if line is not None else str(path))
        problem = _LOCATION.sub("", str(error))
        lines = text.splitlines()
        if line is not None and 0 < line <= len(lines):  # some messages repeat the whole line first
            problem = problem.removeprefix(f"'{lines[line - 1]}': ")
        problem = problem.replace("\n", " ")
        raise UsageError(f"{where}: {problem} (in a text-format {what})") from None
    return parsed

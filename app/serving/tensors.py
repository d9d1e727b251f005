"""Request values <-> NumPy arrays, checked against a signature, in TF Serving's JSON and TensorProto forms.

The JSON rules are TF Serving's REST API: the *row* format (``"instances"``: one entry per example,
a plain value when the signature has one input, a ``{name: value}`` object otherwise) answers with
``"predictions"``; the *columnar* format (``"inputs"``: whole batched tensors) answers with
``"outputs"``. Binary strings travel as ``{"b64": "..."}``. One deliberate difference: NaN and
infinite numbers are rejected (400) instead of being passed to the model.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

from app.serving.errors import InvalidRequest


@dataclass(frozen=True)
class TensorInfo:
    """One named input or output of a signature: its dtype and shape (None = any size)."""

    name: str
    dtype: tf.dtypes.DType
    shape: tuple[int | None, ...] | None

    @classmethod
    def from_proto(cls, name: str, info: meta_graph_pb2.TensorInfo) -> "TensorInfo":
        shape = None
        if not info.tensor_shape.unknown_rank:
            shape = tuple(None if dim.size < 0 else dim.size for dim in info.tensor_shape.dim)
        return cls(name, tf.dtypes.as_dtype(info.dtype), shape)

    @property
    def batched(self) -> bool:
        """Whether the first dimension is a free batch dimension (so requests can be concatenated)."""
        return bool(self.shape) and self.shape[0] is None

    def describe(self) -> str:
        dims = "?" if self.shape is None else ", ".join("-1" if dim is None else str(dim) for dim in self.shape)
        return f"{self.name}: {self.dtype.name}[{dims}]"


@dataclass(frozen=True)
class Signature:
    """A SavedModel signature as the server sees it."""

    name: str
    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo]

    @classmethod
    def from_proto(cls, name: str, proto: meta_graph_pb2.SignatureDef) -> "Signature":
        return cls(
            name,
            {key: TensorInfo.from_proto(key, value) for key, value in sorted(proto.inputs.items())},
            {key: TensorInfo.from_proto(key, value) for key, value in sorted(proto.outputs.items())},
        )

    @property
    def batchable(self) -> bool:
        return all(info.batched for info in (*self.inputs.values(), *self.outputs.values()))

    def expected_inputs(self) -> str:
        return ", ".join(info.describe() for info in self.inputs.values())


# ---- JSON requests -------------------------------------------------------------------------------


def parse_json_request(body: object, signature: Signature) -> tuple[dict[str, np.ndarray], bool]:
    """The input arrays of a ``:predict`` body, and whether it used the row (``instances``) format."""
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object with 'instances' or 'inputs'")
    if "instances" in body and "inputs" in body:
        raise InvalidRequest("a request cannot contain both 'instances' and 'inputs'")
    if "instances" in body:
        return _rows_to_arrays(body["instances"], signature), True
    if "inputs" in body:
        return _columns_to_arrays(body["inputs"], signature), False
    raise InvalidRequest("missing 'inputs' or 'instances' key")


def _is_named(value: object, signature: Signature) -> bool:
    """Whether ``value`` is a ``{input name: value}`` object rather than one input's value."""
    return isinstance(value, dict) and not _is_b64(value)


def _rows_to_arrays(instances: object, signature: Signature) -> dict[str, np.ndarray]:
    if not isinstance(instances, list):
        raise InvalidRequest("'instances' must be a list with one entry per example")
    if not instances:
        raise InvalidRequest("'instances' is empty: send at least one example")
    if any(info.shape == () for info in signature.inputs.values()):
        raise InvalidRequest(f"signature '{signature.name}' takes scalars ({signature.expected_inputs()}): use 'inputs'")
    if not any(_is_named(instance, signature) for instance in instances):
        name = _only_input(signature, "instances")
        return {name: to_array(instances, signature.inputs[name], "instances")}
    columns: dict[str, list] = {name: [] for name in signature.inputs}
    for index, instance in enumerate(instances):
        if not _is_named(instance, signature):
            raise InvalidRequest(f"instance {index} is not an object of named inputs like the others")
        check_input_names(instance, signature, f"instance {index}")
        for name in signature.inputs:
            columns[name].append(instance[name])
    return {name: to_array(values, signature.inputs[name], name) for name, values in columns.items()}


def _columns_to_arrays(inputs: object, signature: Signature) -> dict[str, np.ndarray]:
    if _is_named(inputs, signature):
        check_input_names(inputs, signature, "'inputs'")
        return {name: to_array(inputs[name], signature.inputs[name], name) for name in signature.inputs}
    name = _only_input(signature, "inputs")
    return {name: to_array(inputs, signature.inputs[name], name)}


def _only_input(signature: Signature, key: str) -> str:
    if len(signature.inputs) != 1:
        raise InvalidRequest(
            f"signature '{signature.name}' has several inputs ({signature.expected_inputs()}): "
            f"give '{key}' as objects keyed by input name"
        )
    return next(iter(signature.inputs))


def check_input_names(names, signature: Signature, where: str) -> None:
    """Every input of the signature, and nothing else, must be given."""
    unknown = sorted(set(names) - set(signature.inputs))
    missing = sorted(set(signature.inputs) - set(names))
    if unknown or missing:
        problems = ([f"unknown input(s) {unknown}"] if unknown else []) + ([f"missing input(s) {missing}"] if missing else [])
        raise InvalidRequest(
            f"{where}: {' and '.join(problems)}; signature '{signature.name}' expects {signature.expected_inputs()}"
        )


def _is_b64(value: object) -> bool:
    return isinstance(value, dict) and set(value) == {"b64"}


def _decode_strings(value: object, where: str) -> object:
    """Nested lists of str / {"b64": ...} -> the same nesting of bytes."""
    if isinstance(value, list):
        return [_decode_strings(item, where) for item in value]
    if isinstance(value, str):
        return value.encode("utf-8")
    if _is_b64(value):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise InvalidRequest(f"{where}: the 'b64' value is not valid base64") from None
    raise InvalidRequest(f"{where}: expected strings, got {type(value).__name__} {str(value)[:40]}")


def _reject_b64(value: object, where: str) -> None:
    if _is_b64(value):
        raise InvalidRequest(f"{where}: 'b64' values are only accepted for string inputs")
    if isinstance(value, list):
        for item in value:
            _reject_b64(item, where)


def to_array(value: object, info: TensorInfo, where: str) -> np.ndarray:
    """A JSON value as an array of ``info``'s dtype and shape, or InvalidRequest saying what is wrong."""
    where = f"input '{info.name}'" if where == info.name else f"{where} (input '{info.name}')"
    try:
        if info.dtype == tf.string:
            array = np.array(_decode_strings(value, where), dtype=object)
        else:
            _reject_b64(value, where)
            array = _numeric_array(value, info.dtype, where)
    except ValueError as error:
        if "inhomogeneous" in str(error) or "sequence" in str(error):
            raise InvalidRequest(f"{where}: the values do not form a rectangular tensor (rows of different lengths)") from None
        raise InvalidRequest(f"{where}: {error}") from None
    check_array(array, info, where)
    return array


def _numeric_array(value: object, dtype: tf.dtypes.DType, where: str) -> np.ndarray:
    raw = np.array(value)
    if raw.dtype == object or raw.dtype.kind in "USV":
        raise InvalidRequest(f"{where}: expected {dtype.name} numbers, got {_describe_leaf(value)}")
    if dtype.is_bool:
        if raw.dtype.kind != "b":
            raise InvalidRequest(f"{where}: expected true/false values, got {raw.dtype.name}")
        return raw
    if raw.dtype.kind == "b":
        raise InvalidRequest(f"{where}: expected {dtype.name} numbers, got true/false")
    if raw.dtype.kind == "f" and not np.all(np.isfinite(raw)):
        raise InvalidRequest(f"{where}: NaN or infinite values are not valid model inputs")
    if dtype.is_integer:
        if raw.dtype.kind == "f":
            raise InvalidRequest(f"{where}: expected {dtype.name} integers, got fractional numbers")
        if raw.size and (raw.min() < dtype.min or raw.max() > dtype.max):
            raise InvalidRequest(f"{where}: values outside the {dtype.name} range [{dtype.min}, {dtype.max}]")
    return raw.astype(dtype.as_numpy_dtype)


def _describe_leaf(value: object) -> str:
    while isinstance(value, list) and value:
        value = value[0]
    return f"{type(value).__name__} {str(value)[:40]!r}"


def check_array(array: np.ndarray, info: TensorInfo, where: str) -> None:
    """Shape check against the signature: same rank, fixed dimensions equal, a non-empty batch."""
    if info.shape is None:
        return
    if array.ndim != len(info.shape):
        raise InvalidRequest(
            f"{where}: got a tensor of shape {list(array.shape)} but the signature expects {info.describe()}"
        )
    for got, want in zip(array.shape, info.shape):
        if want is not None and got != want:
            raise InvalidRequest(
                f"{where}: got a tensor of shape {list(array.shape)} but the signature expects {info.describe()}"
            )
    if info.batched and array.shape[0] == 0:
        raise InvalidRequest(f"{where}: the batch is empty: send at least one example")


# ---- JSON responses ------------------------------------------------------------------------------


def _jsonable(array: np.ndarray, name: str) -> object:
    if array.dtype != object:
        return array.tolist()
    as_b64 = name.endswith("_bytes")

    def convert(item):
        if isinstance(item, list):
            return [convert(inner) for inner in item]
        if not as_b64:
            try:
                return item.decode("utf-8")
            except UnicodeDecodeError:
                pass
        return {"b64": base64.b64encode(item).decode("ascii")}

    return convert(array.tolist())


def json_response(outputs: dict[str, np.ndarray], row_format: bool) -> dict:
    """``{"predictions": [...]}`` (row) or ``{"outputs": ...}`` (columnar), as TF Serving writes them."""
    if not row_format:
        if len(outputs) == 1:
            (name, array), = outputs.items()
            return {"outputs": _jsonable(array, name)}
        return {"outputs": {name: _jsonable(array, name) for name, array in outputs.items()}}
    sizes = {array.shape[0] if array.ndim else None for array in outputs.values()}
    if len(sizes) != 1 or None in sizes:
        raise InvalidRequest("the outputs have no common batch size: use the columnar 'inputs' format")
    columns = {name: _jsonable(array, name) for name, array in outputs.items()}
    if len(columns) == 1:
        return {"predictions": next(iter(columns.values()))}
    return {"predictions": [dict(zip(columns, row)) for row in zip(*columns.values())]}


# ---- TensorProto (gRPC) --------------------------------------------------------------------------


def from_tensor_proto(proto, info: TensorInfo) -> np.ndarray:
    """A gRPC request tensor as an array, checked like the JSON ones."""
    where = f"input '{info.name}'"
    got = tf.dtypes.as_dtype(proto.dtype) if proto.dtype else None
    if got != info.dtype:
        raise InvalidRequest(f"{where}: expects {info.dtype.name} but {got.name if got else 'no dtype'} was provided")
    try:
        array = tf.make_ndarray(proto)
    except (ValueError, TypeError) as error:
        raise InvalidRequest(f"{where}: malformed TensorProto ({error})") from None
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise InvalidRequest(f"{where}: NaN or infinite values are not valid model inputs")
    check_array(array, info, where)
    return array


def to_tensor_proto(array: np.ndarray):
    return tf.make_tensor_proto(array)

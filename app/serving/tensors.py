"""Request values <-> NumPy arrays, checked against a signature, in TF Serving's JSON and TensorProto forms.

The JSON rules are TF Serving's REST API (tensorflow_serving/util/json_tensor.cc): the *row* format
(``"instances"``: one entry per example, a plain value when the signature has one input, a
``{name: value}`` object otherwise) answers with ``"predictions"``; the *columnar* format
(``"inputs"``: whole batched tensors) answers with ``"outputs"``. Binary strings travel as
``{"b64": "..."}``. Like TF Serving, shapes are not checked here: the graph decides what it accepts.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
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
    method_name: str = ""

    @classmethod
    def from_proto(cls, name: str, proto: meta_graph_pb2.SignatureDef) -> "Signature":
        return cls(
            name,
            {key: TensorInfo.from_proto(key, value) for key, value in sorted(proto.inputs.items())},
            {key: TensorInfo.from_proto(key, value) for key, value in sorted(proto.outputs.items())},
            proto.method_name,
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
        raise InvalidRequest(f"JSON Value: {json_debug(body)} Is not object")
    if "instances" in body and "inputs" in body:
        raise InvalidRequest(
            f"JSON Value: {json_debug(body)} Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist"
        )
    if "instances" in body:
        return _rows_to_arrays(body["instances"], signature, body), True
    if "inputs" in body:
        return _columns_to_arrays(body["inputs"], signature), False
    raise InvalidRequest("Missing 'inputs' or 'instances' key")


def json_debug(value: object) -> str:
    """A JSON value on one line, as TF Serving quotes the offending value in its messages."""
    return json.dumps(value, separators=(",", ":"))[:200]


def _is_named(value: object, signature: Signature) -> bool:
    """Whether ``value`` is a ``{input name: value}`` object rather than one input's value."""
    return isinstance(value, dict) and not _is_b64(value)


def _rows_to_arrays(instances: object, signature: Signature, body: dict) -> dict[str, np.ndarray]:
    """The ``instances`` list stacked into one tensor per input (``FillTensorMapFromInstancesList``)."""
    if not isinstance(instances, list):
        raise InvalidRequest(f"JSON Value: {json_debug(body)} Expecting 'instances' to be an list/array")
    if not instances:
        raise InvalidRequest(f"JSON Value: {json_debug(body)} No values in 'instances' array")
    if not _is_named(instances[0], signature):
        if len(signature.inputs) != 1:
            raise InvalidRequest(
                "instances is a plain list, but expecting list of objects as multiple input tensors required as per "
                f"tensorinfo_map (signature '{signature.name}' expects {signature.expected_inputs()})"
            )
        for index, instance in enumerate(instances):
            if _is_named(instance, signature):
                raise InvalidRequest(f"Expecting value/list but got object at item {index} of input list")
        name = next(iter(signature.inputs))
        return {name: _stack(instances, signature.inputs[name], "")}
    columns: dict[str, list] = {name: [] for name in signature.inputs}
    for index, instance in enumerate(instances):
        if not _is_named(instance, signature):
            raise InvalidRequest(f"Expecting object but got list at item {index} of input list")
        if set(instance) != set(signature.inputs):
            raise InvalidRequest(
                f"Failed to process element: {index} of 'instances' list. JSON object: {json_debug(instance)} "
                f"keys must be equal to: {','.join(sorted(signature.inputs))}"
            )
        for name in signature.inputs:
            columns[name].append(instance[name])
    return {name: _stack(values, signature.inputs[name], name) for name, values in columns.items()}


def _stack(values: list, info: TensorInfo, key: str) -> np.ndarray:
    """One tensor from the instances' values; when they do not stack, TF Serving's message for the
    first instance that differs from the first one (``AddInstanceItem``)."""
    try:
        return to_array(values, info, "instances" if not key else key)
    except InvalidRequest as error:
        first = None
        for index, value in enumerate(values):
            where = f"Failed to process element: {index}{f' key: {key}' if key else ''} of 'instances' list. Error: INVALID_ARGUMENT: "
            try:
                item = to_array(value, info)
            except InvalidRequest as item_error:
                raise InvalidRequest(where + str(item_error)) from None
            if first is None:
                first = item
            elif item.size != first.size:
                raise InvalidRequest(f"{where}Expecting tensor size: {first.size} but got: {item.size}") from None
            elif item.shape != first.shape:
                raise InvalidRequest(f"{where}Expecting shape {list(first.shape)} but got: {list(item.shape)}") from None
        raise error


def _columns_to_arrays(inputs: object, signature: Signature) -> dict[str, np.ndarray]:
    """The ``inputs`` value: one tensor, or an object of named tensors (``FillTensorMapFromInputsMap``)."""
    if _is_named(inputs, signature):
        for name in signature.inputs:
            if name not in inputs:
                raise InvalidRequest(
                    f"Missing named input: {name} in 'inputs' object. (signature '{signature.name}' expects {signature.expected_inputs()})"
                )
        return {name: to_array(inputs[name], signature.inputs[name], name) for name in signature.inputs}
    if len(signature.inputs) != 1:
        raise InvalidRequest(
            "inputs is a plain value/list, but expecting an object as multiple input tensors required as per "
            f"tensorinfo_map (signature '{signature.name}' expects {signature.expected_inputs()})"
        )
    name = next(iter(signature.inputs))
    return {name: to_array(inputs, signature.inputs[name], name)}


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
            raise InvalidRequest(f"{_at(where)}the 'b64' value is not valid base64") from None
    raise InvalidRequest(f"{_at(where)}expected strings, got {type(value).__name__} {str(value)[:40]}")


def _reject_b64(value: object, where: str) -> None:
    if _is_b64(value):
        raise InvalidRequest(f"{_at(where)}'b64' values are only accepted for string inputs")
    if isinstance(value, list):
        for item in value:
            _reject_b64(item, where)


def _at(where: str) -> str:
    return f"{where}: " if where else ""


def to_array(value: object, info: TensorInfo, where: str = "") -> np.ndarray:
    """A JSON value as an array of ``info``'s dtype, or InvalidRequest saying what is wrong (and
    ``where``, unless empty)."""
    if where:
        where = f"input '{info.name}'" if where == info.name else f"{where} (input '{info.name}')"
    try:
        if info.dtype == tf.string:
            array = np.array(_decode_strings(value, where), dtype=object)
        else:
            _reject_b64(value, where)
            array = _numeric_array(value, info.dtype, where)
    except ValueError as error:
        if "inhomogeneous" in str(error) or "sequence" in str(error):
            raise InvalidRequest(f"{_at(where)}the values do not form a rectangular tensor (rows of different lengths)") from None
        raise InvalidRequest(f"{_at(where)}{error}") from None
    return array


def _numeric_array(value: object, dtype: tf.dtypes.DType, where: str) -> np.ndarray:
    raw = np.array(value)
    if raw.dtype == object or raw.dtype.kind in "USV":
        raise InvalidRequest(f"{_at(where)}JSON Value: {_describe_leaf(value)} is not of expected type: {_tf_type_name(dtype)}")
    if dtype.is_bool:
        if raw.dtype.kind != "b":
            raise InvalidRequest(f"{_at(where)}expected true/false values, got {raw.dtype.name}")
        return raw
    if raw.dtype.kind == "b":
        raise InvalidRequest(f"{_at(where)}expected {dtype.name} numbers, got true/false")
    if dtype.is_integer:
        if raw.dtype.kind == "f":
            raise InvalidRequest(f"{_at(where)}expected {dtype.name} integers, got fractional numbers")
        if raw.size and (raw.min() < dtype.min or raw.max() > dtype.max):
            raise InvalidRequest(f"{_at(where)}values outside the {dtype.name} range [{dtype.min}, {dtype.max}]")
    return raw.astype(dtype.as_numpy_dtype)


def _describe_leaf(value: object) -> str:
    """The first value that is not a list, as TF Serving's type error quotes it."""
    while isinstance(value, list) and value:
        value = value[0]
    kind = {str: "String", dict: "Object", bool: "Bool", type(None): "Null"}.get(type(value), "Number")
    return f"{json_debug(value)} Type: {kind}"


def _tf_type_name(dtype: tf.dtypes.DType) -> str:
    """TensorFlow's C++ name of a dtype (``DataTypeString``): float, double, int32, string, ..."""
    return {"float32": "float", "float64": "double"}.get(dtype.name, dtype.name)


# ---- JSON responses ------------------------------------------------------------------------------


def _decimals(array: np.ndarray) -> list:
    """Floats as TF Serving writes them (``WriteDecimal`` in json_tensor.cc): six significant digits when
    that reads back as the same value, else full precision, so a float32 2.05 is 2.05, not 2.0499999523."""
    short = np.char.mod("%.6g", array)
    exact = (short.astype(array.dtype) == array) | ~np.isfinite(array)
    full = np.char.mod("%.9g" if array.dtype.itemsize <= 4 else "%.17g", array)
    return np.where(exact, short, full).astype(np.float64).tolist()


def _jsonable(array: np.ndarray, name: str) -> object:
    if array.dtype.kind == "f":
        return _decimals(array)
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
        raise InvalidRequest(f"{_at(where)}expects {info.dtype.name} but {got.name if got else 'no dtype'} was provided")
    try:
        array = tf.make_ndarray(proto)
    except (ValueError, TypeError) as error:
        raise InvalidRequest(f"{_at(where)}malformed TensorProto ({error})") from None
    return array


# The repeated field of TensorProto each dtype's values go into, as TensorFlow's ``Tensor::AsProtoField``
# fills them; TF Serving answers Predict that way (predict_util.cc), so clients reading ``.float_val`` work.
_VALUE_FIELDS = {
    "float32": "float_val", "float64": "double_val", "int32": "int_val", "int16": "int_val", "int8": "int_val",
    "uint8": "int_val", "uint16": "int_val", "int64": "int64_val", "bool": "bool_val", "string": "string_val",
    "uint32": "uint32_val", "uint64": "uint64_val", "float16": "half_val", "bfloat16": "half_val",
}


def to_tensor_proto(array: np.ndarray):
    """An output array as TF Serving writes it: dtype, shape and the typed value field."""
    dtype = tf.string if array.dtype == object else tf.dtypes.as_dtype(array.dtype)
    field = _VALUE_FIELDS.get(dtype.name)
    if field is None:
        return tf.make_tensor_proto(array)
    proto = tensor_pb2.TensorProto(dtype=dtype.as_datatype_enum, tensor_shape=tf.TensorShape(array.shape).as_proto())
    flat = array.reshape(-1)
    if field == "half_val":
        flat = flat.view(np.uint16)
    getattr(proto, field).extend(flat.tolist())
    return proto

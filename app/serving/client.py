"""Clients for TF Serving's public REST and gRPC APIs (so they work against real TF Serving too).

Both offer ``signatures(model)`` (from the model's metadata) and ``predict(model, signature, inputs)``
with NumPy arrays in and out; REST sends the columnar JSON format, gRPC TensorProtos.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, model_pb2, predict_pb2

from app.serving.tensors import Signature


class ServerError(Exception):
    """The server could not be reached, or answered with an error (the message is the server's)."""


def _signatures(signature_map: get_model_metadata_pb2.SignatureDefMap) -> dict[str, Signature]:
    return {
        name: Signature.from_proto(name, proto)
        for name, proto in signature_map.signature_def.items()
        if not name.startswith("__")
    }


def _json_value(array: np.ndarray) -> object:
    if array.dtype == object:
        def encode(item):
            if isinstance(item, list):
                return [encode(inner) for inner in item]
            if isinstance(item, str):
                return item
            try:
                return item.decode("utf-8")
            except UnicodeDecodeError:
                return {"b64": base64.b64encode(item).decode("ascii")}
        return encode(array.tolist())
    return array.tolist()


def _from_json_value(value: object) -> np.ndarray:
    """A JSON output as an array; strings become bytes, as gRPC (and TensorFlow) give them."""

    def decode(item):
        if isinstance(item, list):
            return [decode(inner) for inner in item]
        if isinstance(item, dict):
            return base64.b64decode(item["b64"])
        return item.encode("utf-8") if isinstance(item, str) else item

    decoded = decode(value)
    leaf = decoded
    while isinstance(leaf, list) and leaf:
        leaf = leaf[0]
    return np.array(decoded, dtype=object) if isinstance(leaf, bytes) else np.array(decoded)


class RestClient:
    """``http://host:8501``: GET ``/v1/models/<m>/metadata``, POST ``/v1/models/<m>:predict``."""

    def __init__(self, server: str, timeout: float = 30.0):
        self.server, self.timeout = server.rstrip("/"), timeout
        if "://" not in self.server:
            self.server = "http://" + self.server

    def _request(self, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(self.server + path, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as error:
            try:
                message = json.loads(error.read()).get("error", error.reason)
            except ValueError:
                message = error.reason
            raise ServerError(f"{self.server} answered {error.code}: {message}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ServerError(f"cannot reach {self.server} ({reason}); start one with: python -m app.serve") from None

    def signatures(self, model: str) -> dict[str, Signature]:
        metadata = self._request(f"/v1/models/{model}/metadata")
        # TF Serving's REST metadata is the SignatureDefMap unpacked from its Any (no "@type").
        return _signatures(json_format.ParseDict(metadata["metadata"]["signature_def"], get_model_metadata_pb2.SignatureDefMap()))

    def predict(self, model: str, signature: Signature, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        body = {"signature_name": signature.name, "inputs": {name: _json_value(value) for name, value in inputs.items()}}
        outputs = self._request(f"/v1/models/{model}:predict", body)["outputs"]
        if len(signature.outputs) == 1:  # a single output comes back without its name
            outputs = {next(iter(signature.outputs)): outputs}
        return {name: _from_json_value(value) for name, value in outputs.items()}


class GrpcClient:
    """``host:8500``: ``PredictionService.GetModelMetadata`` and ``Predict``."""

    def __init__(self, address: str, timeout: float = 30.0):
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self.address, self.timeout, self._grpc = address, timeout, grpc
        self.channel = grpc.insecure_channel(address)
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout)
        except self._grpc.RpcError as error:
            if error.code() == self._grpc.StatusCode.UNAVAILABLE:
                raise ServerError(
                    f"cannot reach {self.address} ({error.details()}); start one with: python -m app.serve (gRPC on port 8500)"
                ) from None
            raise ServerError(f"{self.address} answered {error.code().name}: {error.details()}") from None

    def signatures(self, model: str) -> dict[str, Signature]:
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=model_pb2.ModelSpec(name=model), metadata_field=["signature_def"]
        )
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        self._call(self.stub.GetModelMetadata, request).metadata["signature_def"].Unpack(signature_map)
        return _signatures(signature_map)

    def predict(self, model: str, signature: Signature, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        request = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(name=model, signature_name=signature.name),
            inputs={name: tf.make_tensor_proto(value) for name, value in inputs.items()},
        )
        response = self._call(self.stub.Predict, request)
        return {name: tf.make_ndarray(value) for name, value in response.outputs.items()}

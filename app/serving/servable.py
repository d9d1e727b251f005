"""One loaded version of one model: its signatures, and calling them the way TF Serving's session does.

TF Serving feeds a request's tensors to the graph as they are and lets the graph decide whether
their shapes fit (``{"instances": [1.0, 2.0, 5.0]}`` runs against ``x: float32[-1, 1]`` when the
graph's ops accept it). A loaded signature's Python wrapper checks shapes more strictly, so a
request it refuses on shape alone is run once more on the graph's flat entry point, and the
graph's own error, if any, is the answer.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  registers the TF Text ops (raw-string BERT exports), as TF Serving bundles them
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2

from app.serving.errors import FailedPrecondition, InvalidRequest
from app.serving.tensors import Signature, from_tensor_proto
from app.serving.warmup import read_warmup_requests

DEFAULT_SIGNATURE = "serving_default"


def model_error_message(error: tf.errors.OpError) -> str:
    """The line of a graph error that helps the caller: a ``tf.debugging.Assert``'s own message
    (``assertion failed: [text] [value]`` becomes ``text value``), else the first line."""
    lines = error.message.splitlines()
    for line in lines:
        if line.startswith("assertion failed:"):
            parts = re.findall(r"\[([^\[\]]*)\]", line.removeprefix("assertion failed:"))
            return " ".join(parts).replace("\\'", "'")
    boilerplate = ("Graph execution error", "Detected at node", "<stack traces", "\t", " ")
    return next((line for line in lines if line.strip() and not line.startswith(boilerplate)), lines[0])


@dataclass
class Servable:
    """One loaded version of one model."""

    name: str
    version: int
    path: Path
    signatures: dict[str, Signature]
    signature_defs: get_model_metadata_pb2.SignatureDefMap
    loaded: object
    metrics: object = None  # app.serving.metrics.Metrics: time inside model calls (runtime_latency)

    @classmethod
    def load(cls, name: str, version: int, path: Path) -> "Servable":
        proto = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
        loaded = tf.saved_model.load(str(path))
        signature_defs = proto.meta_graphs[0].signature_def
        signatures = {key: Signature.from_proto(key, signature_defs[key]) for key in loaded.signatures}
        return cls(name, version, path, signatures, get_model_metadata_pb2.SignatureDefMap(signature_def=signature_defs), loaded)

    def signature(self, name: str | None) -> Signature:
        """A signature for Predict (TF Serving's wording when it is missing)."""
        name = name or DEFAULT_SIGNATURE
        if name not in self.signatures:
            raise FailedPrecondition(f'Serving signature key "{name}" not found.')
        return self.signatures[name]

    def run(self, signature_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Call one signature on input arrays; the graph's own failures become InvalidRequest."""
        function = self.loaded.signatures[signature_name]
        tensors = {name: tf.constant(value) for name, value in inputs.items()}
        started = time.perf_counter()
        try:
            try:
                outputs = function(**tensors)
            except (TypeError, ValueError) as refused:  # the wrapper's shape check, stricter than the graph
                if "shape" not in str(refused).lower():
                    raise InvalidRequest(str(refused).splitlines()[0]) from None
                flat_order = sorted(function.structured_input_signature[1])
                outputs = function._call_flat([tensors[name] for name in flat_order], function.captured_inputs)
        except (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError) as error:
            raise InvalidRequest(model_error_message(error)) from None
        if self.metrics is not None:
            method = self.signatures[signature_name].method_name.rsplit("/", 1)[-1]
            self.metrics.record_runtime(self.name, method if method in ("classify", "regress") else "predict", time.perf_counter() - started)
        return {name: np.array(value.numpy(), dtype=object if value.dtype == tf.string else None) for name, value in outputs.items()}

    def warm_up(self) -> int:
        """Replay the export's warm-up requests; returns how many ran."""
        requests = read_warmup_requests(self.path)
        for request in requests:
            signature = self.signature(request.model_spec.signature_name)
            self.run(signature.name, {key: from_tensor_proto(value, signature.inputs[key]) for key, value in request.inputs.items()})
        return len(requests)

"""``assets.extra/tf_serving_warmup_requests``: example requests TF Serving replays after loading a
version, so the first real request does not pay for graph tracing and memory allocation.

The file is a TFRecord of ``PredictionLog`` protos, built with the ``tensorflow-serving-api`` protos.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

WARMUP_FILE = "tf_serving_warmup_requests"


def write_warmup_requests(export_dir: str | Path, model_name: str, examples: dict[str, dict[str, np.ndarray]]) -> Path:
    """Write one Predict request per signature in ``examples`` (signature name -> input arrays)."""
    path = Path(export_dir) / "assets.extra" / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature_name, inputs in examples.items():
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature_name),
                inputs={name: tf.make_tensor_proto(value) for name, value in inputs.items()},
            )
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(export_dir: str | Path) -> list[predict_pb2.PredictRequest]:
    """The Predict requests of an export's warm-up file (an empty list when it has none)."""
    path = Path(export_dir) / "assets.extra" / WARMUP_FILE
    if not path.is_file():
        return []
    logs = (prediction_log_pb2.PredictionLog.FromString(record.numpy()) for record in tf.data.TFRecordDataset(str(path)))
    return [log.predict_log.request for log in logs if log.HasField("predict_log")]

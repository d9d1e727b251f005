"""A local server that speaks TensorFlow Serving's REST and gRPC protocols and takes its flags and files.

Read in this order: ``errors`` (how failures map to HTTP/gRPC codes), ``tensors`` (request values
<-> arrays and TensorProtos), ``servable`` (one loaded version and calling it), ``repository`` (version
policies, labels, loading and hot-swapping), ``config_protos`` and ``model_config`` (TF Serving's
config files and container paths), ``planning`` (how waiting requests become padded model calls:
allowed batch sizes, length buckets, splitting) then ``scheduling`` (the batching queues and threads:
``ModelRunner``), ``inference`` (classify/regress), ``rest`` and ``grpc_service`` (the two wire
protocols), ``metrics`` (Prometheus).
``app.serve`` is the command that starts it.
"""

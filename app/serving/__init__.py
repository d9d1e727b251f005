"""A local server that speaks TensorFlow Serving's REST and gRPC protocols over ``saved_models/``.

Read in this order: ``errors`` (how failures map to HTTP/gRPC codes), ``tensors`` (checking request
values against a signature), ``repository`` (finding, loading and hot-swapping versions),
``batching`` (merging concurrent requests), ``rest`` and ``grpc_service`` (the two wire protocols).
``app.serve`` is the command that starts it.
"""

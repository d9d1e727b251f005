"""Request failures, each carrying the HTTP status and gRPC code TensorFlow Serving would answer with."""

from __future__ import annotations

import grpc


class ServingError(Exception):
    """A request the server cannot answer; ``str(error)`` is the message sent back to the client."""

    http_status = 500
    grpc_code = grpc.StatusCode.INTERNAL


class InvalidRequest(ServingError):
    """Malformed JSON, unknown input names, wrong shapes or dtypes, bad values."""

    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ServingError):
    """Unknown model, version or signature."""

    http_status = 404
    grpc_code = grpc.StatusCode.NOT_FOUND


class TooLarge(ServingError):
    """The request body is over the server's limit."""

    http_status = 413
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED

"""Request failures, each carrying the gRPC code TensorFlow Serving answers with and the HTTP status its
REST server maps that code to (``ToHTTPStatusCode`` in tensorflow_serving/model_servers/http_server.cc)."""

from __future__ import annotations

import grpc


class ServingError(Exception):
    """A request the server cannot answer; ``str(error)`` is the message sent back to the client."""

    http_status = 500
    grpc_code = grpc.StatusCode.INTERNAL


class InvalidRequest(ServingError):
    """Malformed JSON or paths, unknown input names, wrong dtypes, values the graph rejects."""

    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class FailedPrecondition(ServingError):
    """The request does not fit the model (e.g. a signature it does not have)."""

    http_status = 400
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION


class NotFound(ServingError):
    """Unknown model or version."""

    http_status = 404
    grpc_code = grpc.StatusCode.NOT_FOUND


class Unavailable(ServingError):
    """The server is overloaded (the batching queue is full); the client may retry."""

    http_status = 503
    grpc_code = grpc.StatusCode.UNAVAILABLE


class Unimplemented(ServingError):
    """A method TF Serving names but this model cannot do (e.g. an unknown MultiInference method)."""

    http_status = 501
    grpc_code = grpc.StatusCode.UNIMPLEMENTED


class TooLarge(ServingError):
    """The request body is over the server's limit (``--max-body-bytes``; TF Serving has no such limit)."""

    http_status = 413
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED

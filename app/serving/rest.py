"""TF Serving's REST API on aiohttp: model status, metadata, ``:predict``, ``:classify`` and ``:regress``.

Paths are matched as TF Serving's handler matches them (tensorflow_serving/model_servers/
http_rest_api_util.cc: case-insensitive regular expressions, ``/versions/<n>`` or ``/labels/<label>``);
anything else under ``/v1/`` is ``400 Malformed request: <METHOD> <path>``. Every failure is
answered as TF Serving does, ``{"error": "..."}`` with the status its gRPC code maps to, and the
server keeps serving. Prometheus metrics are served at the monitoring config's path when enabled.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from urllib.parse import unquote

from aiohttp import web

from app.serving.scheduling import ModelRunner
from app.serving.errors import InvalidRequest, NotFound, ServingError, TooLarge
from app.serving.inference import CLASSIFY, REGRESS, input_from_json, run_inference
from app.serving.protos import metadata_json, status_response, to_json
from app.serving.repository import ModelRepository
from app.serving.servable import DEFAULT_SIGNATURE
from app.serving.tensors import json_debug, json_response, parse_json_request

log = logging.getLogger("fromzero.serve")

# http_rest_api_util.cc, kPredictionApiGegex / kModelStatusApiRegex; http_rest_api_handler.cc, kPathRegex.
PREDICTION_PATH = re.compile(r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)", re.I)
STATUS_PATH = re.compile(r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?", re.I)
API_PATH = re.compile(r"/v1/.*", re.I)


def _json_body(raw: bytes) -> object:
    """The request body as JSON, with rapidjson's wording for the two errors TF Serving's tests name."""
    if not raw.strip():
        raise InvalidRequest("JSON Parse error: The document is empty")
    try:
        return json.loads(raw)
    except RecursionError:
        raise InvalidRequest("JSON Parse error: nested too deeply") from None
    except ValueError as error:
        reason = "Invalid value." if "Expecting value" in str(error) else str(error)
        raise InvalidRequest(f"JSON Parse error: {reason} at offset: {getattr(error, 'pos', 0)}") from None


def _signature_name(body: object) -> str:
    name = body.get("signature_name", "") if isinstance(body, dict) else ""
    if not isinstance(name, str):
        raise InvalidRequest(f"JSON Value: {json_debug(body)} not formatted correctly. 'signature_name' key must be a string value.")
    return name


def _model_info(match: re.Match) -> tuple[str, int | None, str | None]:
    """Name, version and label of a matched path (percent-decoded, as TF Serving's ``DecodeArg``)."""
    name, version, label = match.group(1) or "", match.group(2), match.group(3)
    if version is not None:
        if len(version) > 18:
            raise InvalidRequest(f"Failed to convert version: {version} to numeric.")
        version = int(version)
    return unquote(name), version, None if label is None else unquote(label)


class RestHandler:
    """Parses a request path the way TF Serving does and answers it from the repository."""

    def __init__(self, repository: ModelRepository, runner: ModelRunner, metrics=None, timeout_seconds: float = 30.0, cors: bool = False):
        self.repository, self.runner, self.metrics, self.timeout_seconds = repository, runner, metrics, timeout_seconds
        self.headers = {"Content-Type": "application/json"}
        if cors:  # AddCORSHeaders in http_rest_api_util.cc
            self.headers.update({"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "POST, GET", "Access-Control-Allow-Headers": "Content-Type"})

    async def predict(self, name: str, version: int | None, label: str | None, body: object) -> dict:
        signature_name = _signature_name(body)
        servable = self.repository.get(name, version, label)
        signature_name = signature_name or DEFAULT_SIGNATURE
        if signature_name not in servable.signatures:  # GetInfoMap in http_rest_api_handler.cc
            raise InvalidRequest(f'Serving signature name: "{signature_name}" not found in signature def')
        signature = servable.signatures[signature_name]
        inputs, row_format = parse_json_request(body, signature)
        outputs = await self.runner.run(servable, signature, inputs)
        return json_response(outputs, row_format)

    async def classify_or_regress(self, method: str, name: str, version: int | None, label: str | None, body: object) -> dict:
        if not isinstance(body, dict):
            raise InvalidRequest(f"JSON Value: {json_debug(body)} Is not object")
        signature_name = _signature_name(body)
        examples = input_from_json(body)
        servable = self.repository.get(name, version, label)
        result = await run_inference(self.runner, servable, signature_name, CLASSIFY if method == "classify" else REGRESS, examples)
        if method == "classify":  # MakeJsonFromClassificationResult in json_tensor.cc
            return {"results": [[[entry.label, entry.score] for entry in row.classes] for row in result.classifications]}
        return {"results": [entry.value for entry in result.regressions]}

    async def answer(self, http_method: str, path: str, raw_body: bytes) -> tuple[str, str, dict]:
        """(model name, API, JSON answer) for one ``/v1/`` request; raises ServingError."""
        malformed = InvalidRequest(f"Malformed request: {http_method} {path}")
        if http_method == "POST":
            match = PREDICTION_PATH.fullmatch(path)
            if match is None:
                raise malformed
            name, version, label = _model_info(match)
            method = match.group(4)
            if method not in ("predict", "classify", "regress"):  # TF Serving compares the method case-sensitively
                raise malformed
            body = _json_body(raw_body)
            if method == "predict":
                return name, method, await self.predict(name, version, label, body)
            return name, method, await self.classify_or_regress(method, name, version, label, body)
        if http_method == "GET":
            match = STATUS_PATH.fullmatch(path)
            if match is None:
                raise malformed
            name, version, label = _model_info(match)
            if not name:
                raise InvalidRequest("Missing model name in request.")
            if match.group(4) == "metadata":  # compared case-sensitively, as TF Serving does
                return name, "get_model_metadata", metadata_json(self.repository.get(name, version, label))
            return name, "get_model_status", to_json(status_response(self.repository.status(name, version)))  # a label is ignored, as there
        raise malformed

    async def __call__(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        path = request.raw_path.split("?", 1)[0]
        name, api, status, code = "", "", 200, "OK"
        if request.method == "OPTIONS" and API_PATH.fullmatch(path):  # a CORS preflight (http_server.cc)
            return web.Response(status=200 if re.search("https?://", request.headers.get("Origin", "")) else 400, headers=self.headers)
        try:
            if not API_PATH.fullmatch(path):
                raise NotFound(f"Not Found: {request.method} {path}")
            try:
                raw_body = await request.read()
            except web.HTTPRequestEntityTooLarge as error:
                raise TooLarge(error.text) from None
            name, api, answer = await asyncio.wait_for(self.answer(request.method, path, raw_body), self.timeout_seconds)
        except ServingError as error:
            status, code, answer = error.http_status, error.grpc_code.name, {"error": str(error)}
        except TimeoutError:
            status, code = 504, "DEADLINE_EXCEEDED"
            answer = {"error": f"Deadline exceeded: no answer within {self.timeout_seconds * 1000:.0f} ms"}
        except Exception as error:
            log.exception("internal error on %s %s", request.method, path)
            status, code, answer = 500, "INTERNAL", {"error": f"internal error: {type(error).__name__}: {error}"}
        if self.metrics is not None and name:
            self.metrics.record_request(name, None, api, "REST", code, time.perf_counter() - started)
        return web.Response(body=json.dumps(answer).encode(), status=status, headers=self.headers)


def build_rest_app(repository: ModelRepository, runner: ModelRunner, max_body_bytes: int, *, metrics=None,
                   metrics_path: str | None = None, timeout_seconds: float = 30.0, cors: bool = False) -> web.Application:
    """The aiohttp application; larger bodies than ``max_body_bytes`` get 413; ``cors`` adds CORS headers."""
    handler = RestHandler(repository, runner, metrics, timeout_seconds, cors)
    app = web.Application(client_max_size=max_body_bytes)
    if metrics is not None and metrics_path:

        async def prometheus(request: web.Request) -> web.Response:
            return web.Response(text=metrics.render(), content_type="text/plain")

        app.router.add_get(metrics_path, prometheus)
    app.router.add_route("*", "/{path:.*}", handler)
    return app

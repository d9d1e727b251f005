"""TF Serving's REST API on aiohttp: model status, metadata and ``:predict`` under ``/v1/models``.

Every failure is answered as TF Serving does, ``{"error": "..."}`` with a 4xx status, and the
server keeps serving.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from app.serving.batching import ModelRunner
from app.serving.errors import InvalidRequest, ServingError
from app.serving.protos import metadata_response, status_response, to_json
from app.serving.repository import ModelRepository
from app.serving.tensors import json_response, parse_json_request

log = logging.getLogger("fromzero.serve")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler):
    """Turn every failure, including aiohttp's own (404 route, 405, 413 body), into ``{"error": ...}``."""
    try:
        return await handler(request)
    except ServingError as error:
        return _error(error.http_status, str(error))
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return _error(error.status, error.text if error.status == 413 else f"{error.reason}: {request.method} {request.path}")
    except Exception as error:
        log.exception("internal error on %s %s", request.method, request.path)
        return _error(500, f"internal error: {type(error).__name__}: {error}")


def _json_body(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise InvalidRequest(f"JSON Parse error: {error}") from None


def build_rest_app(repository: ModelRepository, runner: ModelRunner, max_body_bytes: int) -> web.Application:
    """The aiohttp application; ``max_body_bytes`` larger bodies get 413."""

    async def model_status(request: web.Request) -> web.Response:
        servable = repository.get(request.match_info["name"], request.match_info.get("version"))
        return web.json_response(to_json(status_response(servable)))

    async def model_metadata(request: web.Request) -> web.Response:
        servable = repository.get(request.match_info["name"], request.match_info.get("version"))
        return web.json_response(to_json(metadata_response(servable)))

    async def predict(request: web.Request) -> web.Response:
        servable = repository.get(request.match_info["name"], request.match_info.get("version"))
        body = _json_body(await request.read())
        signature_name = body.get("signature_name") if isinstance(body, dict) else None
        if signature_name is not None and not isinstance(signature_name, str):
            raise InvalidRequest("'signature_name' must be a string")
        signature = servable.signature(signature_name)
        inputs, row_format = parse_json_request(body, signature)
        outputs = await runner.run(servable, signature, inputs)
        return web.json_response(json_response(outputs, row_format))

    app = web.Application(client_max_size=max_body_bytes, middlewares=[json_errors])
    name, version = "{name:[^/:]+}", "{version:[^/:]+}"
    app.router.add_post(f"/v1/models/{name}:predict", predict)
    app.router.add_post(f"/v1/models/{name}/versions/{version}:predict", predict)
    app.router.add_get(f"/v1/models/{name}", model_status)
    app.router.add_get(f"/v1/models/{name}/versions/{version}", model_status)
    app.router.add_get(f"/v1/models/{name}/metadata", model_metadata)
    app.router.add_get(f"/v1/models/{name}/versions/{version}/metadata", model_metadata)
    return app

"""Talking to a running server over HTTP: one request, sent as written, and its answer.

The path goes on the wire exactly as given (``%2F``, ``..``, capitals and all) and no header is
added but what ``headers`` says: TF Serving reads the body bytes whatever the Content-Type
(``http_server.cc:152-182``), and the hostile-request tests need the path untouched.
"""

from __future__ import annotations

import http.client
import json
from email.message import Message
from typing import Any, NamedTuple
from urllib.parse import urlsplit


class Response(NamedTuple):
    """``status``, ``body`` (parsed JSON, or the text when it is not JSON, or with ``raw=True``) and ``headers``."""

    status: int
    body: Any
    headers: Message


def request(
    base_url: str, method: str, path: str, body: object = None, headers: dict | None = None, *, raw: bool = False,
    timeout: float = 60,
) -> Response:
    """One request to ``base_url + path``. ``body``: bytes or str sent as they are, anything else
    (but None) as JSON. The answer's body is parsed as JSON (NaN and Infinity included, as TF
    Serving writes them: ``api_rest.md:388-409``) unless ``raw`` or it is not JSON."""
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode("utf-8")  # http.client would send a str as Latin-1
    url = urlsplit(base_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        answer = connection.getresponse()
        text = answer.read().decode("utf-8", errors="replace")
    finally:
        connection.close()
    return Response(answer.status, text if raw else _decoded(text), answer.headers)


def _decoded(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def get_json(base_url: str, path: str) -> tuple[int, Any]:
    """GET ``path``: (status, parsed body)."""
    status, body, _ = request(base_url, "GET", path)
    return status, body


def post_json(base_url: str, path: str, body: object) -> tuple[int, Any]:
    """POST ``body`` (a str or bytes verbatim, else as JSON) to ``path``: (status, parsed body)."""
    status, answer, _ = request(base_url, "POST", path, body)
    return status, answer

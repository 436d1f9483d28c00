"""Pure ASGI middleware: request ids, the request-body limit, request metrics.

Pure ASGI (no ``BaseHTTPMiddleware``) because each layer runs on every request of the hot
path; a request without a body passes through the body limit untouched.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Final

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.metrics import ServingMetrics

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER: Final = "x-request-id"
INTERNAL_ERROR: Final = "internal server error; quote the request_id when reporting it."
_VALID_REQUEST_ID: Final = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
UNMATCHED_ROUTE: Final = "unmatched"


def request_id(scope: Scope) -> str | None:
    """The id :class:`RequestIdMiddleware` gave this request."""
    state = scope.get("state") or {}
    value = state.get("request_id")
    return str(value) if value is not None else None


class RequestIdMiddleware:
    """Every request gets an id (the caller's ``X-Request-ID`` when well formed, else a new
    one), kept in the request state and echoed in the response's ``X-Request-ID``.

    It is also the last resort: an exception nothing else handled is logged with the id
    and answered as a JSON 500 carrying it (a response already under way cannot be
    replaced; then the server closes the connection).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, REQUEST_ID_HEADER)
        rid = given if given and _VALID_REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        header = (REQUEST_ID_HEADER.encode(), rid.encode())
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception(
                "unhandled error in %s %s (request %s)", scope["method"], scope["path"], rid
            )
            if started:
                raise
            await send_json(send_with_id, 500, {"detail": INTERNAL_ERROR, "request_id": rid})


class BodyLimitMiddleware:
    """Refuses a request body over ``max_bytes`` with 413, before it is parsed.

    A declared ``Content-Length`` over the limit is refused at once (the body is never
    read); a streamed (chunked) body is counted as it arrives and refused when it crosses
    the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> HTTPException:
        return HTTPException(
            413,
            detail=f"request body larger than {self.max_bytes:,} bytes "
            "(REELRANK_MAX_BODY_BYTES); send smaller batches.",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _header(scope, "content-length")
        chunked = _header(scope, "transfer-encoding")
        if length is None and chunked is None:
            await self.app(scope, receive, send)  # no body: nothing to count
            return
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            error = self._too_large()
            payload: dict[str, object] = {"detail": error.detail, "request_id": request_id(scope)}
            await send_json(send, error.status_code, payload, close=True)  # body never read
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise self._too_large()  # answered by the app's HTTPException handler
            return message

        await self.app(scope, counted, send)


class MetricsMiddleware:
    """Counts and times every HTTP request by route template, method and status."""

    def __init__(self, app: ASGIApp, metrics: ServingMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_code = [500]

        async def send_with_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_code[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = getattr(scope.get("route"), "path", UNMATCHED_ROUTE)
            self.metrics.observe_request(
                route, scope["method"], status_code[0], time.perf_counter() - started
            )


def _header(scope: Scope, name: str) -> str | None:
    wanted = name.encode()
    for key, value in scope.get("headers", ()):
        if key.lower() == wanted:
            return bytes(value).decode("latin-1")
    return None


async def send_json(
    send: Send, status: int, payload: dict[str, object], close: bool = False
) -> None:
    """Answer ``payload`` as JSON directly (outside the app's exception handlers)."""
    body = orjson.dumps(payload)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

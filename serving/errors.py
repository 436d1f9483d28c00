"""Error responses: every failure becomes JSON the client can read, never a dropped connection.

* request validation (422): FastAPI's errors, made JSON-safe (a ``NaN`` or ``Infinity`` the
  client sent is echoed as the string ``"NaN"``, bytes as text), so the renderer itself can
  never fail;
* HTTP errors raised on purpose (401, 403, 413, 422, 503): their detail, JSON-safe;
* no model loaded: 503 with the reason;
* anything else: a logged 500 carrying the request id
  (:class:`serving.middleware.RequestIdMiddleware`, the last resort).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from serving.middleware import request_id
from serving.service import ServiceUnavailableError

ISSUE_KEYS: Final = ("type", "loc", "msg", "input", "ctx")


def json_safe(value: Any) -> Any:
    """``value`` with everything strict JSON cannot hold turned into text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value).replace("inf", "Infinity").replace("nan", "NaN")
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    return str(value)


def _body(detail: Any, request: Request) -> dict[str, Any]:
    return {"detail": json_safe(detail), "request_id": request_id(request.scope)}


async def validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    issues = [{k: issue[k] for k in ISSUE_KEYS if k in issue} for issue in error.errors()]
    return JSONResponse(_body(issues, request), status_code=422)


async def http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    return JSONResponse(
        _body(error.detail, request), status_code=error.status_code, headers=error.headers
    )


async def unavailable(request: Request, error: Exception) -> JSONResponse:
    return JSONResponse(_body(str(error), request), status_code=503)


def install(app: FastAPI) -> None:
    """Register every handler on ``app``."""
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(ServiceUnavailableError, unavailable)

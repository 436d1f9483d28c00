"""The OpenAPI document, made exact: every status a route can answer, with its body.

FastAPI documents what the routes declare; the app adds answers no route declares
itself, so this fills them in once for every operation:

* ``500`` (any route; the body carries the request id), ``422`` wherever there is
  something to validate, ``400`` (a body that cannot be decoded) and ``413`` (a body over
  ``REELRANK_MAX_BODY_BYTES``) wherever there is a body, all with :class:`ErrorResponse`;
* the ``X-Request-ID`` header on every answer;
* the configured batch limit (``REELRANK_MAX_BATCH_USERS``) as the batch's ``maxItems``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from reelrank.config import Settings
from serving.schemas import BatchRecommendationRequest, ErrorResponse

REF_TEMPLATE: Final = "#/components/schemas/{model}"
ERROR_REF: Final = {"$ref": REF_TEMPLATE.format(model="ErrorResponse")}
REQUEST_ID: Final = {
    "description": "The request's id (the caller's X-Request-ID when given and well formed).",
    "schema": {"type": "string"},
}
GENERIC: Final[dict[str, str]] = {
    "400": "The body could not be decoded (send UTF-8 JSON).",
    "413": "The body is larger than REELRANK_MAX_BODY_BYTES.",
    "422": "The request does not match the schema; `detail` lists every problem.",
    "500": "An unexpected error, logged with the request id.",
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}


def _complete(operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    wanted = ["500"]
    if operation.get("parameters") or "requestBody" in operation:
        wanted.append("422")
    if "requestBody" in operation:
        wanted += ["400", "413"]
    for status in wanted:
        if status in responses:  # FastAPI's own 422 shape is not what the app answers
            responses[status]["content"] = _error(GENERIC[status])["content"]
        else:
            responses[status] = _error(GENERIC[status])
    for response in responses.values():
        response.setdefault("headers", {})["X-Request-ID"] = REQUEST_ID


def exact_openapi(app: FastAPI, settings: Settings) -> Callable[[], dict[str, Any]]:
    """``app.openapi`` for ``app``: built once, then cached like FastAPI's own."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, summary=app.summary, routes=app.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        error_schema = ErrorResponse.model_json_schema(ref_template=REF_TEMPLATE)
        components.update(error_schema.pop("$defs", {}))
        components["ErrorResponse"] = error_schema
        for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422, not ours
            components.pop(unused, None)
        batch = components[BatchRecommendationRequest.__name__]
        batch["properties"]["user_ids"]["maxItems"] = settings.max_batch_users
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                _complete(operation)
        app.openapi_schema = schema
        return schema

    return openapi

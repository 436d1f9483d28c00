"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from serving.api.deps import ServiceDep
from serving.schemas import HealthResponse, ReadyResponse

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthResponse)
async def health() -> HealthResponse:
    """The process is alive (no dependency is checked)."""
    return HealthResponse()


@router.get(
    "/ready",
    response_model=ReadyResponse,
    responses={503: {"model": ReadyResponse, "description": "Not ready, with the reason."}},
)
async def ready(service: ServiceDep) -> ReadyResponse | JSONResponse:
    """A model is loaded and its online feature store is readable."""
    is_ready, reason = service.readiness()
    state = service.state
    body = ReadyResponse(
        ready=is_ready, reason=reason, model_version=state.info.version if state else None
    )
    if not is_ready:
        return JSONResponse(body.model_dump(), status_code=503)
    return body

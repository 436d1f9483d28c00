"""Operations that need the API key."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from reelrank.exceptions import ReelRankError
from serving.api.deps import AdminDep, MetricsDep, ServiceDep
from serving.schemas import ErrorResponse, ReloadResponse

router = APIRouter(prefix="/admin", tags=["admin"])


@router.post(
    "/reload",
    response_model=ReloadResponse,
    responses={
        401: {"model": ErrorResponse},
        403: {"model": ErrorResponse},
        503: {"model": ErrorResponse},
    },
)
def reload_model(_: AdminDep, service: ServiceDep, metrics: MetricsDep) -> ReloadResponse:
    """Load the registry's current champion and swap it in atomically.

    Runs in the thread pool, so requests keep being served (on the old model) meanwhile.
    """
    previous = service.state
    try:
        state = service.load()
    except ReelRankError as error:
        metrics.reloads.labels("failed").inc()
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(error)) from error
    metrics.reloads.labels("ok").inc()
    return ReloadResponse(
        previous_version=previous.info.version if previous else None,
        model_version=state.info.version,
    )

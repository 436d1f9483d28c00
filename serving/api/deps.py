"""Typed dependencies: a route declares ``service: ServiceDep`` and receives it.

Every dependency is ``async def``: none does I/O, and FastAPI runs a plain ``def``
dependency in its thread pool, a thread hop per dependency per request (on the
recommendation route that hop cost more than the recommendation itself).

The recommendation routes take one bundled dependency, :class:`Serving`: each dependency
FastAPI solves costs tens of microseconds per request (parameter analysis, caching), which
on the hot path is a noticeable share of a ~0.5 ms answer.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status

from reelrank.config import Settings
from serving.deployment import Deployment
from serving.feedback import FeedbackLog
from serving.impressions import ImpressionLog
from serving.metrics import ServingMetrics
from serving.middleware import request_id
from serving.service import RecommendationService
from serving.state import ModelState

API_KEY_HEADER = "X-API-Key"


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_service(request: Request) -> RecommendationService:
    service: RecommendationService = request.app.state.service
    return service


async def get_metrics(request: Request) -> ServingMetrics:
    metrics: ServingMetrics = request.app.state.metrics
    return metrics


async def get_feedback_log(request: Request) -> FeedbackLog:
    log: FeedbackLog = request.app.state.feedback
    return log


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
ServiceDep = Annotated[RecommendationService, Depends(get_service)]
MetricsDep = Annotated[ServingMetrics, Depends(get_metrics)]
FeedbackDep = Annotated[FeedbackLog, Depends(get_feedback_log)]


async def get_model_state(service: ServiceDep) -> ModelState:
    """The model state this request is served with (none loaded: the service raises
    ``ServiceUnavailableError``, which the app answers with 503 and the reason)."""
    return service.current()


StateDep = Annotated[ModelState, Depends(get_model_state)]


async def require_admin(
    settings: SettingsDep,
    api_key: Annotated[str | None, Header(alias=API_KEY_HEADER, max_length=256)] = None,
) -> None:
    """Admin routes need ``X-API-Key`` equal to ``REELRANK_API_KEY``; refused when unset."""
    if settings.api_key is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail="admin routes are disabled: set REELRANK_API_KEY to enable them.",
        )
    expected = settings.api_key.get_secret_value().encode()
    if api_key is None or not secrets.compare_digest(api_key.encode(), expected):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=f"missing or wrong {API_KEY_HEADER} header.",
            headers={"WWW-Authenticate": API_KEY_HEADER},
        )


AdminDep = Annotated[None, Depends(require_admin)]


@dataclass(frozen=True, slots=True)
class Serving:
    """What a recommendation request needs, resolved once: the service, the deployment
    (and its primary model state) read once for the whole request, the metrics, the
    settings, the impression log and the request's id.

    Without a ``deployment`` the request is served by ``state`` alone (a test seam)."""

    service: RecommendationService
    state: ModelState
    metrics: ServingMetrics
    settings: Settings
    deployment: Deployment | None = None
    impressions: ImpressionLog | None = None
    request_id: str | None = None


async def get_serving(request: Request) -> Serving:
    """The hot path's bundle (503 with the reason when no model is loaded, as above)."""
    app_state = request.app.state
    service: RecommendationService = app_state.service
    deployment = service.current_deployment()
    return Serving(
        service,
        deployment.primary.state,
        app_state.metrics,
        app_state.settings,
        deployment,
        app_state.impressions,
        request_id(request.scope),
    )


ServingDep = Annotated[Serving, Depends(get_serving)]

"""Typed dependencies: a route declares ``service: ServiceDep`` and receives it."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status

from reelrank.config import Settings
from serving.feedback import FeedbackLog
from serving.metrics import ServingMetrics
from serving.service import ModelState, RecommendationService, ServiceUnavailableError

API_KEY_HEADER = "X-API-Key"


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_service(request: Request) -> RecommendationService:
    service: RecommendationService = request.app.state.service
    return service


def get_metrics(request: Request) -> ServingMetrics:
    metrics: ServingMetrics = request.app.state.metrics
    return metrics


def get_feedback_log(request: Request) -> FeedbackLog:
    log: FeedbackLog = request.app.state.feedback
    return log


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
ServiceDep = Annotated[RecommendationService, Depends(get_service)]
MetricsDep = Annotated[ServingMetrics, Depends(get_metrics)]
FeedbackDep = Annotated[FeedbackLog, Depends(get_feedback_log)]


def get_model_state(service: ServiceDep) -> ModelState:
    """The model state this request is served with; 503 with the reason when none."""
    try:
        return service.current()
    except ServiceUnavailableError as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(error)) from error


StateDep = Annotated[ModelState, Depends(get_model_state)]


def require_admin(
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

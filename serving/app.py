"""The FastAPI application factory (no work at import: ``create_app`` builds everything).

The lifespan loads the registry's champion (every experiment arm's model, when
``REELRANK_EXPERIMENT`` is set) in a worker thread; a missing champion leaves the app up
but not ready (``/ready`` and the recommendation routes answer 503 with the reason) until
``/admin/reload`` finds one. On shutdown it writes out the impression log's queue.
Every request gets an id, bodies are bounded (``REELRANK_MAX_BODY_BYTES``) and every
error is a JSON answer (:mod:`serving.errors`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI

from reelrank.config import Settings, get_settings
from reelrank.monitoring.monitor import LATEST
from reelrank.monitoring.monitor import REFERENCE_DIR as MONITORING_DIR
from serving import errors
from serving.api.main import ROUTERS
from serving.api.openapi import exact_openapi
from serving.deployment import ModelLoader
from serving.feedback import FeedbackLog
from serving.impressions import ImpressionLog
from serving.metrics import ServingMetrics
from serving.middleware import BodyLimitMiddleware, MetricsMiddleware, RequestIdMiddleware
from serving.service import RecommendationService
from serving.state import ModelState

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    loader: Callable[[Settings], ModelState] | None = None,
    load_on_startup: bool = True,
    model_loader: ModelLoader | None = None,
) -> FastAPI:
    """Build the API.

    Args:
        settings: configuration (default: :func:`~reelrank.config.get_settings`).
        loader: builds the model state (default: the registry's champion + Feast).
        load_on_startup: load the model in the lifespan (tests may load it themselves).
        model_loader: builds an experiment arm's state (default: from the registry).
    """
    settings = settings or get_settings()
    metrics = ServingMetrics(settings.data_dir / MONITORING_DIR / LATEST)
    service = RecommendationService(
        settings, loader=loader, on_load=_model_gauge(metrics), model_loader=model_loader
    )
    impressions = ImpressionLog(
        settings.impressions_path,
        count=metrics.count_impressions,
        queue_size=settings.impression_queue_size,
        enabled=settings.log_impressions,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if load_on_startup and service.state is None:
            await anyio.to_thread.run_sync(service.try_load)
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(impressions.close)

    app = FastAPI(
        title="ReelRank",
        summary="Top picks for you: recommendations from the registry's champion model.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.service = service
    app.state.feedback = FeedbackLog(settings.feedback_path)
    app.state.impressions = impressions
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestIdMiddleware)  # outermost: every answer carries the id
    errors.install(app)
    app.openapi = exact_openapi(app, settings)  # type: ignore[method-assign]
    return app


def _model_gauge(metrics: ServingMetrics) -> Callable[[ModelState], Any]:
    def on_load(state: ModelState) -> None:
        metrics.set_model(state.info.name, state.info.version, state.info.run_id)

    return on_load


def create_default_app() -> FastAPI:
    """Factory for ``uvicorn --factory`` (settings from the environment)."""
    return create_app()

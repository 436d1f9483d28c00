"""The FastAPI application factory (no work at import: ``create_app`` builds everything).

The lifespan loads the registry's champion in a worker thread; a missing champion leaves
the app up but not ready (``/ready`` and the recommendation routes answer 503 with the
reason) until ``/admin/reload`` finds one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reelrank.config import Settings, get_settings
from serving.api.main import ROUTERS
from serving.feedback import FeedbackLog
from serving.metrics import ServingMetrics
from serving.service import RecommendationService, ServiceUnavailableError
from serving.state import ModelState

logger = logging.getLogger(__name__)

UNMATCHED_ROUTE = "unmatched"


class MetricsMiddleware:
    """Counts and times every HTTP request by route template, method and status (pure ASGI)."""

    def __init__(self, app: ASGIApp, metrics: ServingMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_code = [status.HTTP_500_INTERNAL_SERVER_ERROR]

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


def create_app(
    settings: Settings | None = None,
    loader: Callable[[Settings], ModelState] | None = None,
    load_on_startup: bool = True,
) -> FastAPI:
    """Build the API.

    Args:
        settings: configuration (default: :func:`~reelrank.config.get_settings`).
        loader: builds the model state (default: the registry's champion + Feast).
        load_on_startup: load the model in the lifespan (tests may load it themselves).
    """
    settings = settings or get_settings()
    metrics = ServingMetrics()
    service = RecommendationService(settings, loader=loader, on_load=_model_gauge(metrics))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if load_on_startup and service.state is None:
            await anyio.to_thread.run_sync(service.try_load)
        yield

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
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    @app.exception_handler(ServiceUnavailableError)
    async def _unavailable(request: Request, error: ServiceUnavailableError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=503)

    return app


def _model_gauge(metrics: ServingMetrics) -> Callable[[ModelState], Any]:
    def on_load(state: ModelState) -> None:
        metrics.set_model(state.info.name, state.info.version, state.info.run_id)

    return on_load


def create_default_app() -> FastAPI:
    """Factory for ``uvicorn --factory`` (settings from the environment)."""
    return create_app()

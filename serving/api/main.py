"""The API's routers: every resource's routes gathered in one place.

``create_app`` includes each router directly: a router nested in another costs FastAPI a
second level of route matching on every request.
"""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter

from serving.api.routes import admin, feedback, health, model, recommendations
from serving.api.routes import metrics as metrics_routes

ROUTERS: Final[tuple[APIRouter, ...]] = (
    recommendations.router,
    feedback.router,
    health.router,
    model.router,
    metrics_routes.router,
    admin.router,
)

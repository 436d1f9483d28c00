"""The API router: every resource's routes gathered in one place."""

from __future__ import annotations

from fastapi import APIRouter

from serving.api.routes import admin, feedback, health, model, recommendations
from serving.api.routes import metrics as metrics_routes

api_router = APIRouter()
api_router.include_router(recommendations.router)
api_router.include_router(feedback.router)
api_router.include_router(health.router)
api_router.include_router(model.router)
api_router.include_router(metrics_routes.router)
api_router.include_router(admin.router)

"""Prometheus exposition."""

from __future__ import annotations

from fastapi import APIRouter, Response

from serving.api.deps import MetricsDep

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
async def metrics(metrics: MetricsDep) -> Response:
    """Request counts and latencies, fallbacks, stage latencies, the model version."""
    body, content_type = metrics.render()
    return Response(content=body, media_type=content_type)

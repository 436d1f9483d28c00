"""Feedback events, appended durably for the next training run."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, status

from serving.api.deps import FeedbackDep, MetricsDep
from serving.schemas import ErrorResponse, FeedbackAccepted, FeedbackBatch

logger = logging.getLogger(__name__)
router = APIRouter(tags=["feedback"])


@router.post(
    "/feedback",
    response_model=FeedbackAccepted,
    status_code=status.HTTP_201_CREATED,
    responses={503: {"model": ErrorResponse, "description": "The feedback log cannot be written."}},
)
def post_feedback(batch: FeedbackBatch, log: FeedbackDep, metrics: MetricsDep) -> FeedbackAccepted:
    """Append impression/click/rating events (fsync before answering; thread pool)."""
    records = [event.model_dump(mode="json") for event in batch.events]
    try:
        path = log.append(records)
    except OSError as error:  # a full or read-only disk: nothing written, say so
        logger.error("feedback log write failed: %s", error)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=f"the feedback log cannot be written ({error.strerror}); retry later.",
        ) from error
    for event in batch.events:
        metrics.count_feedback(event.event, event.model_version)
    return FeedbackAccepted(accepted=len(records), file=path.name)

"""Feedback events, appended durably for the next training run."""

from __future__ import annotations

from fastapi import APIRouter, status

from serving.api.deps import FeedbackDep
from serving.schemas import ErrorResponse, FeedbackAccepted, FeedbackBatch

router = APIRouter(tags=["feedback"])


@router.post(
    "/feedback",
    response_model=FeedbackAccepted,
    status_code=status.HTTP_201_CREATED,
    responses={422: {"model": ErrorResponse}},
)
def post_feedback(batch: FeedbackBatch, log: FeedbackDep) -> FeedbackAccepted:
    """Append impression/click/rating events (fsync before answering; thread pool)."""
    records = [event.model_dump(mode="json") for event in batch.events]
    path = log.append(records)
    return FeedbackAccepted(accepted=len(records), file=path.name)

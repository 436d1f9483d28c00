"""Request and response models of the API (one per purpose)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

MAX_K: Final = 100
MAX_ID: Final = 2**62
MAX_FEEDBACK_EVENTS: Final = 1000
MAX_GENRE_LENGTH: Final = 64

UserId = Annotated[int, Field(ge=0, le=MAX_ID, description="A user id (non-negative integer).")]
ItemId = Annotated[int, Field(ge=0, le=MAX_ID, description="An item id (non-negative integer).")]
K = Annotated[int, Field(ge=1, le=MAX_K, description="How many items to return (1..100).")]
FallbackKind = Literal["cold_start", "degraded"]


class RecommendedItem(BaseModel):
    item_id: int
    score: float
    rank: int = Field(ge=1)
    title: str | None = None


class RecommendationResponse(BaseModel):
    user_id: int
    items: list[RecommendedItem]
    model_version: str
    fallback: FallbackKind | None = Field(
        description="null: personalised; cold_start: unknown user (non-personalised); "
        "degraded: a dependency failed, best effort from what still works."
    )


class BatchRecommendationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_ids: list[Annotated[StrictInt, Field(ge=0, le=MAX_ID)]] = Field(
        min_length=1, description="Users to recommend for (at most REELRANK_MAX_BATCH_USERS)."
    )
    k: K = 10
    exclude_seen: bool = True
    genre: str | None = Field(default=None, min_length=1, max_length=MAX_GENRE_LENGTH)


class BatchRecommendationResponse(BaseModel):
    results: list[RecommendationResponse]
    model_version: str


class FeedbackEvent(BaseModel):
    """One user action on a recommended item."""

    model_config = ConfigDict(extra="forbid")

    user_id: Annotated[StrictInt, Field(ge=0, le=MAX_ID)]
    item_id: Annotated[StrictInt, Field(ge=0, le=MAX_ID)]
    event: Literal["impression", "click", "rating"]
    rating: float | None = Field(
        default=None, ge=0.5, le=5.0, description="Required for (and only for) rating events."
    )
    timestamp: datetime | None = Field(
        default=None, description="When it happened (UTC); the server time when absent."
    )
    model_version: str | None = Field(default=None, max_length=64)
    position: int | None = Field(default=None, ge=1, le=MAX_K)

    @model_validator(mode="after")
    def _rating_only_for_ratings(self) -> FeedbackEvent:
        if self.event == "rating" and self.rating is None:
            raise ValueError("a rating event needs a 'rating' between 0.5 and 5")
        if self.event != "rating" and self.rating is not None:
            raise ValueError(f"'rating' is only allowed on rating events, not {self.event}")
        return self


class FeedbackBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[FeedbackEvent] = Field(min_length=1, max_length=MAX_FEEDBACK_EVENTS)


class FeedbackAccepted(BaseModel):
    accepted: int
    file: str


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyResponse(BaseModel):
    ready: bool
    reason: str
    model_version: str | None = None


class ModelResponse(BaseModel):
    name: str
    version: str
    alias: str
    run_id: str
    metrics: dict[str, float]
    loaded_at: datetime
    trained_until: str | None
    item_features: str = Field(description="online, snapshot (the model's own) or none.")
    user_features: str = Field(description="online, snapshot (the model's own) or none.")


class ReloadResponse(BaseModel):
    previous_version: str | None
    model_version: str


class ErrorResponse(BaseModel):
    detail: str | list[dict[str, object]]

"""Request and response models of the API (one per purpose), strict as documented.

The OpenAPI document is generated from these models, so they say exactly what the server
accepts: request bodies forbid unknown fields; integers are JSON integers (an integral
number such as ``3.0`` is one, as JSON Schema says; ``"3"``, ``true`` and ``3.5`` are not);
booleans are JSON booleans; floats are finite; and each feedback event type is its own
schema (a click carries no rating, a rating event must).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool

MAX_K: Final = 100
MAX_ID: Final = 2**53 - 1
"""The largest id: every integer up to it is exact in JSON (a double) and in JavaScript."""
MAX_FEEDBACK_EVENTS: Final = 1000
MAX_BATCH_USERS: Final = 10_000
"""The largest ``REELRANK_MAX_BATCH_USERS`` (the OpenAPI document shows the configured one)."""
MAX_GENRE_LENGTH: Final = 64
MAX_EXCLUDE: Final = 100
"""Items one request may exclude from its row."""
MAX_VERSION_LENGTH: Final = 64
MAX_REQUEST_ID_LENGTH: Final = 80
REQUEST_ID_PATTERN: Final = r"^[A-Za-z0-9._:-]{1,80}$"


def _integral(value: Any) -> Any:
    """JSON integers, including integral numbers (``3.0``); never booleans."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _iso_datetime(value: Any) -> Any:
    """An RFC 3339 date-time string (naive ones read as UTC); numbers are refused."""
    if not isinstance(value, str):
        raise ValueError("expected an RFC 3339 date-time string, e.g. 2026-01-31T12:00:00Z")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an RFC 3339 date-time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# Field before the validator: the bounds stay JSON Schema's minimum and maximum.
_INTEGRAL = BeforeValidator(_integral)
UserId = Annotated[
    int, Field(strict=True, ge=0, le=MAX_ID, description="A user id (non-negative)."), _INTEGRAL
]
ItemId = Annotated[
    int, Field(strict=True, ge=0, le=MAX_ID, description="An item id (non-negative)."), _INTEGRAL
]
K = Annotated[
    int, Field(strict=True, ge=1, le=MAX_K, description="How many items (1..100)."), _INTEGRAL
]
Position = Annotated[
    int, Field(strict=True, ge=1, le=MAX_K, description="1-based slot in the row."), _INTEGRAL
]
Timestamp = Annotated[
    datetime,
    Field(description="When it happened (RFC 3339; UTC when no offset is given)."),
    BeforeValidator(_iso_datetime),
]
FallbackKind = Literal["cold_start", "degraded"]
Genre = Annotated[str, Field(min_length=1, max_length=MAX_GENRE_LENGTH, strict=True)]
DIVERSITY_HELP: Final = "Re-ranking: MMR diversity over genres, 0..1 (default REELRANK_RERANK's)."
FRESHNESS_HELP: Final = "Re-ranking: boost of new releases, 0..1 (default REELRANK_RERANK's)."
LONG_TAIL_HELP: Final = "Re-ranking: boost of less popular titles, 0..1 (REELRANK_RERANK's)."
EXCLUDE_HELP: Final = f"Item ids never to show in this row (at most {MAX_EXCLUDE})."
Strength = Annotated[float, Field(strict=True, ge=0.0, le=1.0, allow_inf_nan=False)]


class RecommendedItem(BaseModel):
    item_id: int
    score: float
    rank: int = Field(ge=1)
    title: str | None = None


class RecommendationResponse(BaseModel):
    user_id: int
    items: list[RecommendedItem] = Field(
        description="The slate in position order (rank = position, from 1)."
    )
    model_version: str
    fallback: FallbackKind | None = Field(
        description="null: personalised; cold_start: unknown user (non-personalised); "
        "degraded: a dependency failed, best effort from what still works."
    )
    request_id: str = Field(
        description="The served slate's id in the impression log: the request's X-Request-ID "
        "(for the batch route, the request's id, a colon and the result's index). Send it "
        "with the position in the feedback events about this slate."
    )
    experiment: str | None = Field(
        default=None, description="The running experiment's name (null: none)."
    )
    arm: str | None = Field(
        default=None, description="The experiment arm that served this user (null: none)."
    )


class BatchRecommendationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_ids: list[UserId] = Field(
        min_length=1,
        max_length=MAX_BATCH_USERS,
        description="Users to recommend for (at most REELRANK_MAX_BATCH_USERS).",
    )
    k: K = 10
    exclude_seen: StrictBool = True
    genre: Genre | None = None
    diversity: Strength | None = Field(default=None, description=DIVERSITY_HELP)
    freshness: Strength | None = Field(default=None, description=FRESHNESS_HELP)
    long_tail: Strength | None = Field(default=None, description=LONG_TAIL_HELP)
    exclude: list[ItemId] = Field(default=[], max_length=MAX_EXCLUDE, description=EXCLUDE_HELP)


class BatchRecommendationResponse(BaseModel):
    results: list[RecommendationResponse]
    model_version: str


class _Event(BaseModel):
    """What every feedback event carries."""

    model_config = ConfigDict(extra="forbid")

    user_id: UserId
    item_id: ItemId
    timestamp: Timestamp | None = Field(
        default=None, description="When it happened; the server time when absent."
    )
    model_version: Annotated[str, Field(max_length=MAX_VERSION_LENGTH, strict=True)] | None = None
    position: Position | None = Field(
        default=None, description="The item's slot in the served slate (1-based)."
    )
    request_id: Annotated[str, Field(pattern=REQUEST_ID_PATTERN, strict=True)] | None = Field(
        default=None,
        description="The served slate the event is about (the recommendation's request_id); "
        "events without one cannot be attributed and are quarantined at ingestion.",
    )


class ImpressionEvent(_Event):
    """The item was shown."""

    event: Literal["impression"]


class ClickEvent(_Event):
    """The user opened the item's page."""

    event: Literal["click"]


class PlayEvent(_Event):
    """The user started playing the item."""

    event: Literal["play"]


class RatingEvent(_Event):
    """The user rated the item."""

    event: Literal["rating"]
    rating: Annotated[
        float,
        Field(ge=0.5, le=5.0, allow_inf_nan=False, strict=True, description="Stars, 0.5 to 5."),
    ]


FeedbackEvent = Annotated[
    ImpressionEvent | ClickEvent | PlayEvent | RatingEvent, Field(discriminator="event")
]


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


class ArmResponse(BaseModel):
    name: str
    model: str = Field(description="What the arm names: alias:<name> or version:<n>.")
    version: str = Field(description="The registered version it serves now.")
    share: float = Field(description="Its share of users (weights normalised).")
    policy: str


class ExperimentResponse(BaseModel):
    name: str
    design: str
    salt: str
    arms: list[ArmResponse]


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
    policy: str = Field(description="The slate policy of users outside any experiment.")
    experiment: ExperimentResponse | None = Field(
        default=None, description="The running experiment (null: none)."
    )


class ReloadResponse(BaseModel):
    previous_version: str | None
    model_version: str


class ValidationIssue(BaseModel):
    """One thing wrong with a request (``loc``: where, ``msg``: what)."""

    type: str
    loc: list[str | int]
    msg: str
    input: Any = None
    ctx: dict[str, Any] | None = None


class ErrorResponse(BaseModel):
    """Every error: ``detail`` says what was wrong and what to do."""

    detail: str | list[ValidationIssue]
    request_id: str | None = Field(default=None, description="Quote it when reporting a 500.")

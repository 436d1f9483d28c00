"""The rules of the feedback source: every log line is accepted or quarantined with a reason.

Served slates (``impressions-*.jsonl``), in the order a line's reason is decided:

1. ``malformed_line``: not JSON, or not a served-slate record
   (:func:`~reelrank.loop.records.parse_slate`);
2. ``future_timestamp``: served after the ingestion's ``now`` (plus :data:`CLOCK_SKEW`);
3. ``duplicate_request_id``: a request id already accepted (earlier in the logs or in the
   lake); the first is kept.

Feedback events (``feedback-*.jsonl``), in order:

1. ``malformed_line``: not JSON, or not a feedback event
   (:func:`~reelrank.loop.records.parse_event`);
2. ``future_timestamp``: it happened (client time) after the server received it, or after
   ``now``, by more than :data:`CLOCK_SKEW`;
3. ``no_impression``: it names no served slate (no ``request_id``): a click, play, rating
   or impression that cannot be attributed to anything shown;
4. ``unknown_request_id``: it names a slate the impression log does not have (never
   served, or its record was dropped);
5. ``position_outside_slate``: no position, or one outside ``1 .. len(slate)``;
6. ``slate_mismatch``: its user is not the slate's user, or its item not the item the
   slate showed at that position;
7. ``unknown_user`` / ``unknown_item`` (clicks, plays, ratings: they become lake events):
   not among the lake's users / items;
8. ``rating_out_of_range``: a rating outside the lake's rating scale;
9. ``duplicate_event``: the same kind of event for the same slate and position was already
   accepted (earlier in the logs or in the lake); the first is kept.

A client ``impression`` event that passes says when the client showed that slot; it is
folded into the slate's row (``shown_at``) rather than becoming a row of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, Generic, TypeVar

from reelrank.loop.logs import LogLine
from reelrank.loop.records import (
    ACTIONS,
    FeedbackEvent,
    RecordError,
    ServedSlate,
    parse_event,
    parse_slate,
)

MALFORMED_LINE: Final = "malformed_line"
FUTURE_TIMESTAMP: Final = "future_timestamp"
DUPLICATE_REQUEST_ID: Final = "duplicate_request_id"
NO_IMPRESSION: Final = "no_impression"
UNKNOWN_REQUEST_ID: Final = "unknown_request_id"
POSITION_OUTSIDE_SLATE: Final = "position_outside_slate"
SLATE_MISMATCH: Final = "slate_mismatch"
UNKNOWN_USER: Final = "unknown_user"
UNKNOWN_ITEM: Final = "unknown_item"
RATING_OUT_OF_RANGE: Final = "rating_out_of_range"
DUPLICATE_EVENT: Final = "duplicate_event"
SLATE_REASONS: Final = (MALFORMED_LINE, FUTURE_TIMESTAMP, DUPLICATE_REQUEST_ID)
EVENT_REASONS: Final = (
    MALFORMED_LINE,
    FUTURE_TIMESTAMP,
    NO_IMPRESSION,
    UNKNOWN_REQUEST_ID,
    POSITION_OUTSIDE_SLATE,
    SLATE_MISMATCH,
    UNKNOWN_USER,
    UNKNOWN_ITEM,
    RATING_OUT_OF_RANGE,
    DUPLICATE_EVENT,
)
CLOCK_SKEW: Final = timedelta(minutes=5)
"""How far a client's or server's clock may run ahead before a time counts as future."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """A quarantined line: where it was, what it said, why it was refused."""

    line: LogLine
    reason: str
    detail: str


@dataclass(frozen=True)
class SlateRef:
    """What the feedback rules need to know about an accepted slate."""

    user_id: int
    items: tuple[int, ...]  # item id at each position (index = position - 1)


T = TypeVar("T")
Parsed = tuple[LogLine, FeedbackEvent | RecordError]
"""A feedback line and what it parsed into (or why it did not)."""


@dataclass
class Checked(Generic[T]):
    """Accepted records and quarantined lines of one log, in line order."""

    accepted: list[tuple[LogLine, T]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    @property
    def read(self) -> int:
        return len(self.accepted) + len(self.rejected)

    def reasons(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for rejected in self.rejected:
            counts[rejected.reason] = counts.get(rejected.reason, 0) + 1
        return counts


def check_slates(
    lines: Iterable[LogLine], known_request_ids: Iterable[str], now: datetime
) -> Checked[ServedSlate]:
    """Apply the served-slate rules (see the module docstring)."""
    out: Checked[ServedSlate] = Checked()
    seen = set(known_request_ids)
    for line in lines:
        try:
            slate = parse_slate(line.text)
        except RecordError as error:
            out.rejected.append(Rejected(line, MALFORMED_LINE, str(error)))
            continue
        if slate.served_at > now + CLOCK_SKEW:
            out.rejected.append(
                Rejected(line, FUTURE_TIMESTAMP, f"served_at {slate.served_at} is after {now}")
            )
        elif slate.request_id in seen:
            out.rejected.append(
                Rejected(line, DUPLICATE_REQUEST_ID, f"request {slate.request_id} seen before")
            )
        else:
            seen.add(slate.request_id)
            out.accepted.append((line, slate))
    return out


@dataclass(frozen=True)
class EventContext:
    """What the feedback rules check events against.

    Attributes:
        slates: every accepted slate (the lake's and this run's), by request id.
        users, items: the lake's user and item ids.
        rating_min, rating_max: the lake's rating scale.
        seen: ``(request_id, position, event)`` of every event accepted before this run.
        now: the ingestion's clock.
    """

    slates: Mapping[str, SlateRef]
    users: frozenset[int]
    items: frozenset[int]
    rating_min: float
    rating_max: float
    seen: frozenset[tuple[str, int, str]]
    now: datetime


def _event_reason(event: FeedbackEvent, context: EventContext) -> tuple[str, str] | None:
    """The first rule ``event`` breaks (reason, detail), or None."""
    if event.time > min(context.now, event.received_at) + CLOCK_SKEW:
        return FUTURE_TIMESTAMP, f"happened at {event.time}, received at {event.received_at}"
    if event.request_id is None:
        return NO_IMPRESSION, f"a {event.event} that names no served slate (request_id)"
    slate = context.slates.get(event.request_id)
    if slate is None:
        return UNKNOWN_REQUEST_ID, f"no served slate {event.request_id}"
    if event.position is None or not 1 <= event.position <= len(slate.items):
        return (
            POSITION_OUTSIDE_SLATE,
            f"position {event.position} of a {len(slate.items)}-slot slate",
        )
    shown = slate.items[event.position - 1]
    if event.user_id != slate.user_id or event.item_id != shown:
        return SLATE_MISMATCH, (
            f"user {event.user_id}, item {event.item_id}; the slate showed item {shown} "
            f"to user {slate.user_id} there"
        )
    if event.event in ACTIONS:
        if event.user_id not in context.users:
            return UNKNOWN_USER, f"user {event.user_id} is not in the lake"
        if event.item_id not in context.items:
            return UNKNOWN_ITEM, f"item {event.item_id} is not in the lake"
    rating = event.rating
    if rating is not None and not context.rating_min <= rating <= context.rating_max:
        return RATING_OUT_OF_RANGE, (
            f"rating {rating} outside [{context.rating_min:g}, {context.rating_max:g}]"
        )
    return None


def parse_events(lines: Iterable[LogLine]) -> list[Parsed]:
    """Each feedback line with its event, or the error that made it malformed."""
    out: list[Parsed] = []
    for line in lines:
        try:
            out.append((line, parse_event(line.text)))
        except RecordError as error:
            out.append((line, error))
    return out


def check_events(parsed: Iterable[Parsed], context: EventContext) -> Checked[FeedbackEvent]:
    """Apply the feedback-event rules (see the module docstring)."""
    out: Checked[FeedbackEvent] = Checked()
    seen = set(context.seen)
    for line, event in parsed:
        if isinstance(event, RecordError):
            out.rejected.append(Rejected(line, MALFORMED_LINE, str(event)))
            continue
        broken = _event_reason(event, context)
        if broken is None:
            assert event.request_id is not None
            assert event.position is not None
            key = (event.request_id, event.position, event.event)
            if key in seen:
                broken = DUPLICATE_EVENT, f"a second {event.event} at {key[:2]}"
            else:
                seen.add(key)
        if broken is None:
            out.accepted.append((line, event))
        else:
            out.rejected.append(Rejected(line, *broken))
    return out


def settled_prefix(parsed: list[Parsed], received_before: datetime) -> list[Parsed]:
    """The lines to consume now: per file, those before the first event received at or
    after ``received_before`` (its slate's record may still be on its way to the
    impression log). A line that does not parse is settled (it will be quarantined)."""
    out: list[Parsed] = []
    held: set[str] = set()
    for line, event in parsed:
        if line.file in held:
            continue
        if isinstance(event, FeedbackEvent) and event.received_at >= received_before:
            held.add(line.file)
            continue
        out.append((line, event))
    return out

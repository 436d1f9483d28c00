"""The two record shapes of the loop's logs: the served slate and the feedback event.

**Served slate** (one JSON line per recommendation answered, ``impressions-*.jsonl``)::

    {"request_id": "9f2c...", "served_at": "2026-12-01T10:00:00.123456+00:00",
     "user_id": 42, "k": 10, "exclude_seen": true, "genre": null,
     "model_version": "3", "experiment": "ranker-v2", "design": "ab", "arm": "control",
     "policy": "plackett-luce(temperature=0.5,pool=16)", "fallback": null,
     "slate_propensity": 0.0123,
     "items": [{"position": 1, "item_id": 7, "score": 1.52, "propensity": 0.41,
                "marginal_propensity": 0.40, "team": null}, ...],
     "pool": [{"item_id": 7, "score": 1.52}, ...]}

``propensity``, ``marginal_propensity`` and ``slate_propensity`` are defined in
:mod:`reelrank.loop.policy`; ``marginal_propensity`` is ``null`` when it is not computed
exactly. ``pool`` (the candidates a stochastic policy drew from, with their scores; ``null``
for greedy) lets a slate be drawn again from its record. ``team`` is the interleaving team
of the item (``null`` in an A/B design). ``experiment``, ``design`` and ``arm`` are ``null``
without an experiment.

**Feedback event** (one JSON line per event posted to ``POST /feedback``,
``feedback-*.jsonl``)::

    {"event": "play", "user_id": 42, "item_id": 7, "request_id": "9f2c...", "position": 1,
     "timestamp": "2016-01-01T18:03:00+00:00", "model_version": "3",
     "received_at": "2026-12-01T10:00:05+00:00"}

``event`` is ``impression`` (the client showed the item), ``click``, ``play`` or ``rating``
(which carries ``"rating"``); ``timestamp`` is the client's clock (``null``: the server's
``received_at``). ``request_id`` and ``position`` name the served slate and the slot the
event is about.

Parsing is strict (an integer is a JSON integer, a float finite, a time RFC 3339 with an
offset or read as UTC); what does not parse raises :class:`RecordError` with the reason,
which the feedback source quarantines as ``malformed_line``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, Final, Literal

import orjson

EventKind = Literal["impression", "click", "play", "rating"]
EVENT_KINDS: Final[tuple[str, ...]] = ("impression", "click", "play", "rating")
ACTIONS: Final[tuple[str, ...]] = ("click", "play", "rating")
"""Event kinds that are a user's response to a shown item (the others: the showing)."""
MAX_REQUEST_ID_LENGTH: Final = 80


class RecordError(ValueError):
    """A log line that is not a well-formed record (the message says what is wrong)."""


@dataclass(frozen=True, slots=True)
class ShownItem:
    position: int
    item_id: int
    score: float
    propensity: float
    marginal_propensity: float | None = None
    team: str | None = None


@dataclass(frozen=True, slots=True)
class PoolItem:
    item_id: int
    score: float


@dataclass(frozen=True)
class ServedSlate:
    """One served slate (see the module docstring for the JSON)."""

    request_id: str
    served_at: datetime
    user_id: int
    k: int
    exclude_seen: bool
    genre: str | None
    model_version: str
    experiment: str | None
    design: str | None
    arm: str | None
    policy: str
    fallback: str | None
    slate_propensity: float
    items: tuple[ShownItem, ...]
    pool: tuple[PoolItem, ...] | None = None

    def to_json(self) -> bytes:
        """The record's JSON line (without the newline); orjson writes the ``slots``
        dataclasses of the items and the pool field by field."""
        record = {field.name: getattr(self, field.name) for field in fields(self)}
        return orjson.dumps(record)


@dataclass(frozen=True)
class FeedbackEvent:
    """One feedback event (see the module docstring for the JSON)."""

    event: str
    user_id: int
    item_id: int
    timestamp: datetime | None
    received_at: datetime
    request_id: str | None = None
    position: int | None = None
    model_version: str | None = None
    rating: float | None = None

    @property
    def time(self) -> datetime:
        """When it happened: the client's timestamp, else when the server received it."""
        return self.timestamp if self.timestamp is not None else self.received_at


# ----------------------------------------------------------------------- field readers
def _get(record: dict[str, Any], key: str, optional: bool = False) -> Any:
    if key not in record:
        if optional:
            return None
        raise RecordError(f"missing field {key!r}")
    return record[key]


def _int(record: dict[str, Any], key: str, optional: bool = False, low: int = 0) -> Any:
    value = _get(record, key, optional)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError(f"{key} must be an integer (got {value!r})")
    if value < low:
        raise RecordError(f"{key} must be >= {low} (got {value})")
    return value


def _float(record: dict[str, Any], key: str, optional: bool = False) -> Any:
    value = _get(record, key, optional)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RecordError(f"{key} must be a finite number (got {value!r})")
    return float(value)


def _text(record: dict[str, Any], key: str, optional: bool = False, limit: int = 200) -> Any:
    value = _get(record, key, optional)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise RecordError(f"{key} must be a non-empty string of at most {limit} characters")
    return value


def _time(record: dict[str, Any], key: str, optional: bool = False) -> Any:
    value = _text(record, key, optional, limit=64)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise RecordError(f"{key} {value!r} is not an RFC 3339 date-time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _object(line: bytes) -> dict[str, Any]:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise RecordError(f"not JSON ({error})") from None
    if not isinstance(record, dict):
        raise RecordError("not a JSON object")
    return record


def _propensity(record: dict[str, Any], key: str, optional: bool = False) -> Any:
    value = _float(record, key, optional)
    if value is not None and not 0.0 < value <= 1.0:
        raise RecordError(f"{key} must be in (0, 1] (got {value})")
    return value


# ----------------------------------------------------------------------- parsing
def _shown(entry: Any, expected_position: int) -> ShownItem:
    if not isinstance(entry, dict):
        raise RecordError("items must be objects")
    item = ShownItem(
        position=_int(entry, "position", low=1),
        item_id=_int(entry, "item_id"),
        score=_float(entry, "score"),
        propensity=_propensity(entry, "propensity"),
        marginal_propensity=_propensity(entry, "marginal_propensity", optional=True),
        team=_text(entry, "team", optional=True, limit=40),
    )
    if item.position != expected_position:
        raise RecordError(f"item positions must be 1, 2, ... in order (got {item.position})")
    return item


def _pool(values: Any) -> tuple[PoolItem, ...] | None:
    if values is None:
        return None
    if not isinstance(values, list) or not all(isinstance(v, dict) for v in values):
        raise RecordError("pool must be a list of objects or null")
    return tuple(PoolItem(_int(v, "item_id"), _float(v, "score")) for v in values)


def parse_slate(line: bytes) -> ServedSlate:
    """A served-slate record from its log line (raises :class:`RecordError`)."""
    record = _object(line)
    entries = _get(record, "items")
    if not isinstance(entries, list):
        raise RecordError("items must be a list")
    items = tuple(_shown(entry, position) for position, entry in enumerate(entries, start=1))
    if len({item.item_id for item in items}) != len(items):
        raise RecordError("a slate shows an item twice")
    exclude_seen = _get(record, "exclude_seen")
    if not isinstance(exclude_seen, bool):
        raise RecordError("exclude_seen must be a boolean")
    return ServedSlate(
        request_id=_text(record, "request_id", limit=MAX_REQUEST_ID_LENGTH),
        served_at=_time(record, "served_at"),
        user_id=_int(record, "user_id"),
        k=_int(record, "k", low=1),
        exclude_seen=exclude_seen,
        genre=_text(record, "genre", optional=True),
        model_version=_text(record, "model_version", limit=64),
        experiment=_text(record, "experiment", optional=True, limit=40),
        design=_text(record, "design", optional=True, limit=40),
        arm=_text(record, "arm", optional=True, limit=40),
        policy=_text(record, "policy"),
        fallback=_text(record, "fallback", optional=True, limit=40),
        slate_propensity=_propensity(record, "slate_propensity"),
        items=items,
        pool=_pool(record.get("pool")),
    )


def parse_event(line: bytes) -> FeedbackEvent:
    """A feedback event from its log line (raises :class:`RecordError`)."""
    record = _object(line)
    kind = _get(record, "event")
    if kind not in EVENT_KINDS:
        raise RecordError(f"event must be one of {', '.join(EVENT_KINDS)} (got {kind!r})")
    rating = _float(record, "rating", optional=True)
    if (rating is None) == (kind == "rating"):
        raise RecordError("a rating event carries a rating, and only a rating event does")
    return FeedbackEvent(
        event=kind,
        user_id=_int(record, "user_id"),
        item_id=_int(record, "item_id"),
        timestamp=_time(record, "timestamp", optional=True),
        received_at=_time(record, "received_at"),
        request_id=_text(record, "request_id", optional=True, limit=MAX_REQUEST_ID_LENGTH),
        position=_int(record, "position", optional=True, low=-(2**31)),
        model_version=_text(record, "model_version", optional=True, limit=64),
        rating=rating,
    )

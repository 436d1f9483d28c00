"""Loop fixtures: a small synthetic lake, and writers of served slates and feedback lines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from reelrank.config import Settings
from reelrank.loop.logs import FEEDBACK_PREFIX, IMPRESSIONS_PREFIX, append_lines

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
"""The ingestion's clock in these tests."""
RECEIVED = NOW - timedelta(minutes=10)
CLIENT_TIME = "2016-01-02T10:00:00+00:00"  # the world's timeline (after its 2015 span)


@pytest.fixture(scope="session")
def small_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake of a small synthetic world (50 users, 40 items), built once."""
    from reelrank.data.ingest import run_ingest
    from reelrank.data.synthetic import SyntheticConfig

    data = tmp_path_factory.mktemp("small_lake") / "data"
    config = SyntheticConfig(n_users=50, n_items=40, n_events=600, seed=1)
    run_ingest("synthetic", Settings(data_dir=data), synthetic=config)
    return data


@pytest.fixture
def lake_settings(small_lake: Path, tmp_path: Path) -> Settings:
    """A private copy of the small lake (ingestion rewrites it)."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(small_lake, data)
    return Settings(data_dir=data)


def slate(request_id: str, user: int, items: list[int], **fields: Any) -> dict[str, Any]:
    """A served-slate record (greedy, served at ``RECEIVED``)."""
    return {
        "request_id": request_id,
        "served_at": RECEIVED.isoformat(),
        "user_id": user,
        "k": len(items),
        "exclude_seen": True,
        "genre": None,
        "model_version": "1",
        "experiment": None,
        "design": None,
        "arm": None,
        "policy": "greedy",
        "fallback": None,
        "slate_propensity": 1.0,
        "items": [_item(position, item) for position, item in enumerate(items, start=1)],
        "pool": None,
        **fields,
    }


def _item(position: int, item: int) -> dict[str, Any]:
    return {
        "position": position,
        "item_id": item,
        "score": 1.0 / position,
        "propensity": 1.0,
        "marginal_propensity": 1.0,
        "team": None,
    }


def event(
    kind: str, request_id: str | None, position: int | None, user: int, item: int, **fields: Any
) -> dict[str, Any]:
    """A feedback line as the API writes it (received ten minutes before ``NOW``)."""
    record: dict[str, Any] = {"event": kind, "user_id": user, "item_id": item}
    record |= {"request_id": request_id, "position": position, "timestamp": CLIENT_TIME}
    if kind == "rating":
        record.setdefault("rating", 4.0)
    return {**record, "received_at": RECEIVED.isoformat(), **fields}


def write_slates(settings: Settings, *records: dict[str, Any] | bytes) -> None:
    lines = [r if isinstance(r, bytes) else orjson.dumps(r) for r in records]
    append_lines(settings.impressions_path, IMPRESSIONS_PREFIX, lines, RECEIVED)


def write_events(settings: Settings, *records: dict[str, Any] | bytes) -> None:
    lines = [r if isinstance(r, bytes) else orjson.dumps(r) for r in records]
    append_lines(settings.feedback_path, FEEDBACK_PREFIX, lines, RECEIVED)

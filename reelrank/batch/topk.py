"""The precomputed top-k table in the online store: one entry per user, with its version.

An entry is the user's ranked item ids and scores (the first ``k`` of
``Recommender.recommend(exclude_seen=True)``), the registered model version that computed
them and when. The service answers from an entry only when its version is the served one
and it holds at least the ``k`` asked for; anything else (no entry, another version, a
smaller ``k``) goes the online path.

* SQLite (default): the table ``reelrank_topk`` in Feast's online-store file, replaced
  as a whole in one transaction (a reader sees the old table or the new one).
* Redis: one hash per user, ``reelrank:topk:<user_id>`` (fields ``version``, ``k``,
  ``items``, ``scores``, ``at``), written in pipelined batches; entries of users no
  longer active keep their old version, so they are never served for a new model.

Items are stored as little-endian int64 bytes, scores as float64 bytes.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np
import pandas as pd

from reelrank.config import Settings
from reelrank.schema import ITEM_ID, USER_ID

TABLE: Final = "reelrank_topk"
REDIS_PREFIX: Final = "reelrank:topk:"
ITEMS: Final = "items"
SCORES: Final = "scores"
SCORE: Final = "score"
_ITEM_DTYPE: Final = np.dtype("<i8")
_SCORE_DTYPE: Final = np.dtype("<f8")
_WRITE_BATCH: Final = 5_000


@dataclass(frozen=True)
class TopKEntry:
    """One user's precomputed list."""

    version: str
    items: np.ndarray  # int64, best first
    scores: np.ndarray  # float64, same order

    @property
    def k(self) -> int:
        return len(self.items)


def lists_from_recommendations(recommendations: pd.DataFrame) -> pd.DataFrame:
    """``user_id, item_id, score, rank`` rows -> one row per user: ``user_id, items, scores``."""
    ordered = recommendations.sort_values([USER_ID, "rank"], kind="stable")
    grouped = ordered.groupby(USER_ID, sort=False)
    return pd.DataFrame(
        {
            USER_ID: np.asarray(list(grouped.groups), dtype="int64"),
            ITEMS: [g.to_numpy("int64") for _, g in grouped[ITEM_ID]],
            SCORES: [g.to_numpy("float64") for _, g in grouped[SCORE]],
        }
    )


def _rows(lists: pd.DataFrame, version: str, at: str) -> Iterator[tuple[Any, ...]]:
    for user, items, scores in zip(lists[USER_ID], lists[ITEMS], lists[SCORES], strict=True):
        item_bytes = np.asarray(items, dtype=_ITEM_DTYPE).tobytes()
        score_bytes = np.asarray(scores, dtype=_SCORE_DTYPE).tobytes()
        yield int(user), version, len(items), item_bytes, score_bytes, at


def _entry(version: Any, items: bytes, scores: bytes) -> TopKEntry:
    text = version.decode() if isinstance(version, bytes) else str(version)
    return TopKEntry(
        text, np.frombuffer(items, dtype=_ITEM_DTYPE), np.frombuffer(scores, dtype=_SCORE_DTYPE)
    )


class TopKStore(Protocol):
    """Where precomputed lists live."""

    def write(self, lists: pd.DataFrame, version: str) -> int: ...

    def get(self, user_id: int) -> TopKEntry | None: ...

    def close(self) -> None: ...


class SqliteTopK:
    """The ``reelrank_topk`` table in a SQLite file (Feast's online store by default)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._read: sqlite3.Connection | None = None

    def write(self, lists: pd.DataFrame, version: str) -> int:
        """Replace the whole table with ``lists`` (one transaction); returns the rows."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        at = datetime.now(UTC).isoformat()
        con = sqlite3.connect(self.path, timeout=60)
        try:
            with con:
                con.execute(f"DROP TABLE IF EXISTS {TABLE}_new")
                con.execute(
                    f"CREATE TABLE {TABLE}_new (user_id INTEGER PRIMARY KEY, version TEXT NOT "
                    "NULL, k INTEGER NOT NULL, items BLOB NOT NULL, scores BLOB NOT NULL, "
                    "at TEXT NOT NULL)"
                )
                con.executemany(
                    f"INSERT INTO {TABLE}_new VALUES (?, ?, ?, ?, ?, ?)",
                    _rows(lists, version, at),
                )
                con.execute(f"DROP TABLE IF EXISTS {TABLE}")
                con.execute(f"ALTER TABLE {TABLE}_new RENAME TO {TABLE}")
        finally:
            con.close()
        return len(lists)

    def _connection(self) -> sqlite3.Connection | None:
        if self._read is None:
            if not self.path.exists():
                return None
            uri = f"file:{self.path}?mode=ro"
            self._read = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=1)
        return self._read

    def get(self, user_id: int) -> TopKEntry | None:
        con = self._connection()
        if con is None:
            return None
        try:
            row = con.execute(
                f"SELECT version, items, scores FROM {TABLE} WHERE user_id = ?", (int(user_id),)
            ).fetchone()
        except sqlite3.OperationalError:  # no table yet (batch-recommend never ran)
            return None
        return None if row is None else _entry(*row)

    def close(self) -> None:
        if self._read is not None:
            self._read.close()
            self._read = None


class RedisTopK:
    """One hash per user in Redis (``reelrank:topk:<user_id>``)."""

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)

    def write(self, lists: pd.DataFrame, version: str) -> int:
        """Set every user's hash, pipelined in batches; returns the rows."""
        at = datetime.now(UTC).isoformat()
        pipe = self.client.pipeline(transaction=False)
        for n, (user, ver, k, items, scores, stamp) in enumerate(_rows(lists, version, at), 1):
            fields = {"version": ver, "k": k, ITEMS: items, SCORES: scores, "at": stamp}
            pipe.hset(f"{REDIS_PREFIX}{user}", mapping=fields)
            if n % _WRITE_BATCH == 0:
                pipe.execute()
        pipe.execute()
        return len(lists)

    def get(self, user_id: int) -> TopKEntry | None:
        found: Any = self.client.hmget(f"{REDIS_PREFIX}{int(user_id)}", ["version", ITEMS, SCORES])
        version, items, scores = found
        if version is None or items is None or scores is None:
            return None
        return _entry(version, items, scores)

    def close(self) -> None:
        self.client.close()


def open_topk(settings: Settings) -> TopKStore:
    """The table in the configured online store (SQLite file or Redis)."""
    if settings.online_store == "redis":
        return RedisTopK(settings.redis_url)
    from reelrank.features.feast.repo_config import sqlite_path

    return SqliteTopK(sqlite_path(settings))


def write_lists(settings: Settings, lists: pd.DataFrame, version: str) -> tuple[int, float]:
    """Store ``lists`` for ``version``; returns (rows, seconds)."""
    started = time.perf_counter()
    store = open_topk(settings)
    try:
        rows = store.write(lists, version)
    finally:
        store.close()
    return rows, time.perf_counter() - started


def chunks(values: np.ndarray, size: int) -> Iterable[np.ndarray]:
    """``values`` in consecutive pieces of at most ``size``."""
    for start in range(0, len(values), size):
        yield values[start : start + size]

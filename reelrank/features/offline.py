"""The offline feature tables on disk: written block by block, read with DuckDB.

Both tables hold change rows (:mod:`reelrank.features.builders`). Writing streams the
user table one block of users at a time into one parquet file (row groups), so memory is
bounded by a block, not by the table; a table is written beside its target and renamed
into place only when complete (:class:`~reelrank.data.io.AtomicBatch`). Reading never
loads a table: DuckDB scans the parquet for the latest row of each entity at or before a
time (one hash aggregate, memory bounded by the entities asked for), and
:mod:`reelrank.features.point_in_time` derives the day-varying columns as of that time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from reelrank.data.io import AtomicBatch
from reelrank.exceptions import FeatureStoreError
from reelrank.features import columns as cols
from reelrank.features.builders import build_item_change_rows, day_of, iter_user_change_rows
from reelrank.features.point_in_time import item_values_as_of, user_values_as_of
from reelrank.features.protocol import to_utc
from reelrank.schema import EVENT_TIMESTAMP, ITEM_ID, USER_ID

logger = logging.getLogger(__name__)

TableKind = Literal["user", "item"]
USER_COLUMNS: Final = (USER_ID, EVENT_TIMESTAMP, *cols.USER_FEATURES)
ITEM_COLUMNS: Final = (ITEM_ID, EVENT_TIMESTAMP, *cols.ITEM_FEATURES, cols.ITEM_RATING_SUM)
STAGED_SUFFIX: Final = ".staged"
DUCKDB_MEMORY_LIMIT: Final = "2GB"
"""DuckDB's own memory limit for the scans (it spills to disk beyond it)."""


@dataclass(frozen=True)
class TableStats:
    """What writing one table produced."""

    kind: TableKind
    path: Path
    rows: int
    entities: int
    first: str
    last: str
    seconds: float


def _arrow(frame: pd.DataFrame, columns: Sequence[str]) -> pa.Table:
    return pa.Table.from_pandas(frame[list(columns)], preserve_index=False)


def write_table(
    kind: TableKind,
    events: pd.DataFrame,
    users: pd.DataFrame,
    items: pd.DataFrame,
    path: Path,
    end: pd.Timestamp | None = None,
) -> TableStats:
    """Build the ``kind`` change rows from the lake frames and write them to ``path``
    (atomically; the user table block by block)."""
    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "user":
        blocks: Iterable[pd.DataFrame] = iter_user_change_rows(events, users, items, end)
        columns: Sequence[str] = USER_COLUMNS
    else:
        blocks = [build_item_change_rows(events, items, end)]
        columns = ITEM_COLUMNS
    rows, entities, first, last = 0, 0, None, None
    with AtomicBatch() as batch:
        writer: pq.ParquetWriter | None = None
        for block in blocks:
            table = _arrow(block, columns)
            if writer is None:
                writer = pq.ParquetWriter(batch.path(path), table.schema)
            writer.write_table(table)
            rows += len(block)
            entities += int(block[columns[0]].nunique())
            stamps = block[EVENT_TIMESTAMP]
            first = stamps.min() if first is None else min(first, stamps.min())
            last = stamps.max() if last is None else max(last, stamps.max())
        if writer is None:
            raise FeatureStoreError(f"no events to build the {kind} feature table from.")
        writer.close()
    seconds = time.perf_counter() - started
    logger.info("%s feature table: %d rows, %d entities in %.1fs", kind, rows, entities, seconds)
    return TableStats(kind, path, rows, entities, str(first), str(last), seconds)


def _connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
    return con


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def table_end(paths: Sequence[Path]) -> pd.Timestamp | None:
    """The newest ``event_timestamp`` over the tables (their last snapshot day)."""
    latest: list[pd.Timestamp] = []
    con = _connect()
    try:
        for path in paths:
            value = con.execute(
                f"SELECT max({EVENT_TIMESTAMP}) FROM read_parquet({_literal(path)})"
            ).fetchone()
            if value is not None and value[0] is not None:
                latest.append(to_utc(value[0]))
    finally:
        con.close()
    return max(latest) if latest else None


def latest_rows(
    path: Path,
    key: str,
    as_of: pd.Timestamp,
    ids: np.ndarray | None = None,
    since: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """The latest row of each entity with ``event_timestamp <= as_of`` (and, with
    ``since``, only entities whose latest row is at or after it); ``ids``: only those."""
    when = to_utc(as_of)
    con = _connect()
    try:
        where = [f"{EVENT_TIMESTAMP} <= $as_of"]
        if ids is not None:
            con.register("wanted", pd.DataFrame({key: np.asarray(ids, dtype="int64")}))
            where.append(f"{key} IN (SELECT {key} FROM wanted)")
        sql = (
            f"SELECT {key}, arg_max_null(COLUMNS(* EXCLUDE ({key})), {EVENT_TIMESTAMP}) "
            f"FROM read_parquet({_literal(path)}) WHERE {' AND '.join(where)} "
            f"GROUP BY {key} ORDER BY {key}"
        )
        frame = con.execute(sql, {"as_of": when.to_pydatetime(warn=False)}).df()
    finally:
        con.close()
    frame[EVENT_TIMESTAMP] = pd.to_datetime(frame[EVENT_TIMESTAMP], utc=True)
    if since is not None:
        frame = frame[frame[EVENT_TIMESTAMP] >= to_utc(since)].reset_index(drop=True)
    return frame


def values_as_of(
    kind: TableKind,
    path: Path,
    as_of: pd.Timestamp,
    end: pd.Timestamp,
    ids: np.ndarray | None = None,
    since: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Feature values as of ``as_of`` read from a change table: key + features, one row
    per entity known then (``ids``: only those; ``since``: see :func:`latest_rows`).

    Items are read in full (the rank and the Bayesian prior are over all of them) and
    then cut to ``ids``.
    """
    end_snap = day_of(end)
    if kind == "user":
        rows = latest_rows(path, USER_ID, as_of, ids, since)
        return user_values_as_of(rows, as_of, end_snap)
    values = item_values_as_of(latest_rows(path, ITEM_ID, as_of), as_of, end_snap)
    if ids is not None:
        values = values[values[ITEM_ID].isin(np.asarray(ids, dtype="int64"))]
    return values.reset_index(drop=True)

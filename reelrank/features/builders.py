"""Point-in-time feature tables from the lake frames (DuckDB window functions).

Snapshot scheme (why Feast's as-of join returns exact values)
-------------------------------------------------------------
A feature row stamped ``event_timestamp = D`` (midnight UTC of day ``D``) is computed from
events with ``timestamp < D`` only: everything knowable at ``D``; events of day ``D`` itself
first appear in the row of ``D + 1`` (at most one day of staleness, never leakage).

* Users: a row for day ``D`` exactly when the user has an event in the ``HORIZON_DAYS + 1``
  days before ``D`` (from the day after an event until the first day all rolling windows
  are empty), clipped to the dataset end. Once the windows are empty every user column is
  constant (counts 0, recency capped at ``RECENCY_CAP_DAYS``, means and genre shares over
  all history), so that last row stays exact until the user's next event: the as-of join
  (latest row <= t, within ``USER_TTL``) returns the true value at t. Whether a row exists
  depends only on earlier events, so truncating the data at t changes no row <= t.
  Rolling windows are ROWS frames over this grid: inside a run the grid is dense, and a
  run ends with ``HORIZON_DAYS`` zero-count rows, so a frame of at most that many rows
  that reaches into the previous run only sees zeros.
* Items: one row per item per day from the first snapshot day (or its release, if later)
  to the dataset end: item values such as the age since release and the popularity rank
  move every day, so every day has its row.

The dataset end is ``end`` if given, else the midnight after the last event.
"""

from __future__ import annotations

import logging
import time
from typing import Final

import duckdb
import numpy as np
import pandas as pd

from reelrank.exceptions import ValidationError
from reelrank.features import columns as cols
from reelrank.schema import (
    AGE,
    EVENT_TIMESTAMP,
    GENDER,
    GENRE_VOCAB,
    GENRES,
    ITEM_ID,
    OCCUPATION,
    RATING,
    RELEASE_DATE,
    TIMESTAMP,
    USER_ID,
    ZIP_CODE,
)

logger = logging.getLogger(__name__)

_DAY: Final = pd.Timedelta(days=1)
_EPOCH: Final = pd.Timestamp(0, tz="UTC")
_SNAP: Final = "snap"  # working column: snapshot day as days since the epoch
_GENRE_TMP: Final[tuple[str, ...]] = tuple(f"g{i}" for i in range(len(GENRE_VOCAB)))
UNKNOWN_CODE: Final = -1
"""Encoded value of a missing categorical (gender, occupation, zip region)."""
GENDER_CODES: Final = {"m": 0, "male": 0, "f": 1, "female": 1}


def _require(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValidationError(
            f"{what} frame lacks column(s) {missing}; pass the canonical lake frame "
            "(see reelrank/schema.py)."
        )


def _days(timestamps: pd.Series) -> pd.Series:
    """Whole days since the epoch of UTC timestamps (floor), as int64 (NaT -> <NA>)."""
    ts = pd.to_datetime(timestamps, utc=True)
    return ((ts - _EPOCH) // _DAY).astype("Int64")


def _day_to_timestamp(days: pd.Series) -> pd.Series:
    return (_EPOCH + pd.to_timedelta(days.astype("int64"), unit="D")).astype("datetime64[ns, UTC]")


def _end_snapshot(events_days: pd.Series, end: pd.Timestamp | None) -> int:
    """Last snapshot day: ``end`` floored to midnight, else the midnight after the last event."""
    if end is not None:
        stamp = pd.Timestamp(end)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        return int((stamp - _EPOCH) // _DAY)
    return int(events_days.max()) + 1


def _event_days(events: pd.DataFrame) -> pd.DataFrame:
    _require(events, (USER_ID, ITEM_ID, RATING, TIMESTAMP), "events")
    return pd.DataFrame(
        {
            USER_ID: events[USER_ID].to_numpy(dtype="int64"),
            ITEM_ID: events[ITEM_ID].to_numpy(dtype="int64"),
            RATING: events[RATING].to_numpy(dtype="float64"),
            "day": _days(events[TIMESTAMP]).to_numpy(dtype="int64"),
        }
    )


def _genre_matrix(items: pd.DataFrame) -> pd.DataFrame:
    """``item_id`` + one 0/1 int8 column per genre of :data:`GENRE_VOCAB` (``g0``..)."""
    _require(items, (ITEM_ID, GENRES), "items")
    index = {genre: i for i, genre in enumerate(GENRE_VOCAB)}
    matrix = np.zeros((len(items), len(GENRE_VOCAB)), dtype="int8")
    for row, genres in enumerate(items[GENRES].tolist()):
        if genres is None or (isinstance(genres, float) and np.isnan(genres)):
            continue
        for genre in genres:
            position = index.get(genre)
            if position is not None:
                matrix[row, position] = 1
    frame = pd.DataFrame(matrix, columns=list(_GENRE_TMP))
    frame.insert(0, ITEM_ID, items[ITEM_ID].to_numpy(dtype="int64"))
    return frame.drop_duplicates(ITEM_ID)


def _encode_side_info(users: pd.DataFrame) -> pd.DataFrame:
    """Side information as numbers Feast can store: age float, codes int64 (-1 unknown).

    Occupation codes are positions in the sorted distinct occupation strings of ``users``
    (deterministic for a given users table).
    """
    _require(users, (USER_ID,), "users")
    out = pd.DataFrame({USER_ID: users[USER_ID].to_numpy(dtype="int64")})
    n = len(users)
    if AGE in users.columns:
        out[cols.USER_AGE] = pd.to_numeric(users[AGE], errors="coerce").astype("float32").to_numpy()
    else:
        out[cols.USER_AGE] = np.full(n, np.nan, dtype="float32")
    if GENDER in users.columns:
        genders = users[GENDER].astype("string").str.strip().str.lower()
        out[cols.USER_GENDER] = (
            genders.map(GENDER_CODES).fillna(UNKNOWN_CODE).astype("int64").values
        )
    else:
        out[cols.USER_GENDER] = UNKNOWN_CODE
    if OCCUPATION in users.columns:
        occupations = users[OCCUPATION].astype("string").str.strip().str.lower()
        vocabulary = sorted(occupations.dropna().unique())
        codes = {value: i for i, value in enumerate(vocabulary)}
        out[cols.USER_OCCUPATION] = (
            occupations.map(codes).fillna(UNKNOWN_CODE).astype("int64").to_numpy()
        )
    else:
        out[cols.USER_OCCUPATION] = UNKNOWN_CODE
    if ZIP_CODE in users.columns:
        first = users[ZIP_CODE].astype("string").str.strip().str[:1]
        region = pd.to_numeric(first.where(first.str.isdigit().fillna(False)), errors="coerce")
        out[cols.USER_ZIP_REGION] = region.fillna(UNKNOWN_CODE).astype("int64").to_numpy()
    else:
        out[cols.USER_ZIP_REGION] = UNKNOWN_CODE
    return out.drop_duplicates(USER_ID)


_KEY_SHIFT: Final = np.int64(1 << 22)  # snapshot days fit in 22 bits (until year 13000)


def _composite(entity: np.ndarray, snap: np.ndarray) -> np.ndarray:
    return entity.astype("int64") * _KEY_SHIFT + snap.astype("int64")


class _AsOf:
    """As-of lookups into a sparse table sorted by (entity, snap): for each grid row, the
    row of the latest active day <= a bound, found with one ``searchsorted``."""

    def __init__(self, entity: np.ndarray, snap: np.ndarray) -> None:
        self.entity = entity
        self.keys = _composite(entity, snap)

    def index(self, grid_entity: np.ndarray, bound: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row positions, valid mask) of the latest sparse row with snap <= ``bound``."""
        position = np.searchsorted(self.keys, _composite(grid_entity, bound), side="right") - 1
        safe = np.maximum(position, 0)
        valid = (position >= 0) & (self.entity[safe] == grid_entity)
        return safe, valid


def _gather(values: np.ndarray, where: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``values`` at the as-of rows; 0 where there is none (nothing happened yet)."""
    position, valid = where
    return np.where(valid, values[position], 0)


def _expand(entity: np.ndarray, first: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, ...]:
    """Daily grid rows (entity, snap) for each closed range ``[first, last]``."""
    lengths = (last - first + 1).astype("int64")
    total = int(lengths.sum())
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    snap = np.repeat(first.astype("int64"), lengths) + (np.arange(total) - starts)
    return np.repeat(entity.astype("int64"), lengths), snap


def _float32(values: np.ndarray) -> np.ndarray:
    return values.astype("float32")


def _user_day_cumulants(ev: pd.DataFrame, genres: pd.DataFrame) -> pd.DataFrame:
    """One row per (user, active snapshot day) with cumulative sums, and run starts."""
    genre_sums = ", ".join(f"sum(coalesce(g.{g}, 0)) AS {g}" for g in _GENRE_TMP)
    cum_w = f"(PARTITION BY {USER_ID} ORDER BY {_SNAP} ROWS UNBOUNDED PRECEDING)"
    genre_cums = ", ".join(f"sum({g}) OVER {cum_w} AS c{g}" for g in _GENRE_TMP)
    # Sparse work in DuckDB: one row per (user, active day) with cumulative sums, and the
    # runs of days within HORIZON_DAYS + 1 of an event (the snapshot ranges).
    sql = f"""
    WITH item_day AS (
        SELECT {ITEM_ID}, day, count(*) AS n FROM ev GROUP BY ALL
    ), item_pop AS (
        SELECT {ITEM_ID}, day,
               ln(1 + coalesce(sum(n) OVER (PARTITION BY {ITEM_ID} ORDER BY day
                   RANGE BETWEEN 30 PRECEDING AND 1 PRECEDING), 0)) AS lp
        FROM item_day
    ), user_day AS (
        SELECT e.{USER_ID}, e.day + 1 AS {_SNAP}, count(*) AS n, sum(e.{RATING}) AS s,
               sum(e.{RATING} * e.{RATING}) AS ss, sum(p.lp) AS slp, {genre_sums}
        FROM ev e
        JOIN item_pop p ON p.{ITEM_ID} = e.{ITEM_ID} AND p.day = e.day
        LEFT JOIN genres g ON g.{ITEM_ID} = e.{ITEM_ID}
        GROUP BY ALL
    )
    SELECT {USER_ID}, {_SNAP}, sum(n) OVER {cum_w} AS cn, sum(s) OVER {cum_w} AS cs,
           sum(ss) OVER {cum_w} AS css, sum(slp) OVER {cum_w} AS cslp, {genre_cums},
           CASE WHEN {_SNAP} - lag({_SNAP}) OVER (PARTITION BY {USER_ID} ORDER BY {_SNAP})
                <= {cols.HORIZON_DAYS + 1} THEN 0 ELSE 1 END AS new_run
    FROM user_day
    ORDER BY {USER_ID}, {_SNAP}
    """
    con = duckdb.connect()
    try:
        con.register("ev", ev)
        con.register("genres", genres)
        cum = con.execute(sql).df()
    finally:
        con.close()
    return cum


def _add_side_and_genres(
    out: dict[str, np.ndarray],
    side: pd.DataFrame,
    cum: pd.DataFrame,
    position: np.ndarray,
    grid_user: np.ndarray,
) -> None:
    """The encoded side information and the genre shares of every grid row, into ``out``."""
    total = cum["cn"].to_numpy("float64")[position]
    side_rows = pd.Index(side[USER_ID]).get_indexer(grid_user)
    known = side_rows >= 0
    for name in (cols.USER_AGE, cols.USER_GENDER, cols.USER_OCCUPATION, cols.USER_ZIP_REGION):
        values = side[name].to_numpy()
        if name == cols.USER_AGE:
            out[name] = np.where(known, values[side_rows], np.nan).astype("float32")
        else:
            out[name] = np.where(known, values[side_rows], UNKNOWN_CODE).astype("int64")
    for g, name in zip(_GENRE_TMP, cols.USER_GENRE_SHARE, strict=True):
        out[name] = _float32(cum[f"c{g}"].to_numpy("float64")[position] / total)


def build_user_features(
    events: pd.DataFrame,
    users: pd.DataFrame,
    items: pd.DataFrame,
    end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Daily point-in-time user features.

    Args:
        events: canonical events (``user_id, item_id, rating, timestamp`` UTC).
        users: canonical users; ``age``, ``gender``, ``occupation``, ``zip_code`` are used
            when present (missing columns or values become -1 / NaN).
        items: canonical items (``item_id, genres``) for genre shares.
        end: last snapshot day (floored to midnight UTC); default: the midnight after the
            last event.

    Returns:
        One row per (user, snapshot day) as described in the module docstring:
        ``user_id``, ``event_timestamp`` (UTC midnight) and
        :data:`~reelrank.features.columns.USER_FEATURES`. Counts and encoded categoricals
        are int64 (-1 unknown), the rest float32. Sorted by user, time. Genre shares are
        over the user's whole history up to the snapshot (share of their events whose item
        has the genre; a multi-genre item counts for each genre).
        ``user_mean_item_log_pop`` is the mean, over the user's events, of
        ``log(1 + item events in the 30 days before the event's day)``.
    """
    started = time.perf_counter()
    ev = _event_days(events)
    columns = [USER_ID, EVENT_TIMESTAMP, *cols.USER_FEATURES]
    if ev.empty:
        return pd.DataFrame(columns=columns)
    end_snap = _end_snapshot(ev["day"], end)
    genres = _genre_matrix(items)
    side = _encode_side_info(users)

    cum = _user_day_cumulants(ev, genres)

    user = cum[USER_ID].to_numpy("int64")
    snap = cum[_SNAP].to_numpy("int64")
    run = np.cumsum(cum["new_run"].to_numpy("int64"))  # runs are numbered across users
    run_start = np.flatnonzero(np.r_[True, run[1:] != run[:-1]])
    run_end = np.r_[run_start[1:], len(run)] - 1
    first = snap[run_start]
    last = np.minimum(snap[run_end] + cols.HORIZON_DAYS, end_snap)
    keep = first <= last
    grid_user, grid_snap = _expand(user[run_start][keep], first[keep], last[keep])

    lookup = _AsOf(user, snap)
    now = lookup.index(grid_user, grid_snap)  # always valid: grids start at an event
    position = now[0]
    cn = cum["cn"].to_numpy("float64")
    cs = cum["cs"].to_numpy("float64")
    total = cn[position]
    total_s = cs[position]
    total_ss = cum["css"].to_numpy("float64")[position]
    out: dict[str, np.ndarray] = {USER_ID: grid_user}
    for days, name in zip(
        cols.WINDOWS_DAYS,
        (cols.USER_EVENTS_7D, cols.USER_EVENTS_30D, cols.USER_EVENTS_90D),
        strict=True,
    ):
        out[name] = (total - _gather(cn, lookup.index(grid_user, grid_snap - days))).astype("int64")
    at_30 = lookup.index(grid_user, grid_snap - 30)
    n30 = total - _gather(cn, at_30)
    s30 = total_s - _gather(cs, at_30)
    with np.errstate(invalid="ignore", divide="ignore"):
        variance = np.maximum(total_ss - total_s * total_s / total, 0) / (total - 1)
        out[cols.USER_EVENTS_TOTAL] = total.astype("int64")
        out[cols.USER_RATING_MEAN] = _float32(total_s / total)
        out[cols.USER_RATING_STD] = _float32(np.where(total > 1, np.sqrt(variance), np.nan))
        out[cols.USER_RATING_MEAN_30D] = _float32(np.where(n30 > 0, s30 / n30, np.nan))
    out[cols.USER_DAYS_SINCE_LAST_EVENT] = np.minimum(
        grid_snap - snap[position] + 1, cols.RECENCY_CAP_DAYS
    ).astype("int64")
    out[cols.USER_MEAN_ITEM_LOG_POP] = _float32(cum["cslp"].to_numpy("float64")[position] / total)
    _add_side_and_genres(out, side, cum, position, grid_user)
    out[EVENT_TIMESTAMP] = grid_snap
    table = pd.DataFrame(out)
    table[EVENT_TIMESTAMP] = _day_to_timestamp(table[EVENT_TIMESTAMP])
    table = table[columns]
    logger.info(
        "user features: %d rows, %d users, %s..%s in %.1fs",
        len(table),
        len(np.unique(grid_user)),
        table[EVENT_TIMESTAMP].min(),
        table[EVENT_TIMESTAMP].max(),
        time.perf_counter() - started,
    )
    return table


def _item_catalog(items: pd.DataFrame, ev: pd.DataFrame) -> pd.DataFrame:
    """Every item (catalogue and events) with its release day, sorted by id."""
    catalog = pd.DataFrame({ITEM_ID: items[ITEM_ID].to_numpy(dtype="int64")})
    if RELEASE_DATE in items.columns:
        catalog["release_day"] = _days(items[RELEASE_DATE]).astype("float64").to_numpy()
    else:
        catalog["release_day"] = np.nan
    extra = np.setdiff1d(ev[ITEM_ID].unique(), catalog[ITEM_ID].to_numpy())
    if len(extra):
        logger.warning("%d item ids in events are not in the catalog", len(extra))
        catalog = pd.concat(
            [catalog, pd.DataFrame({ITEM_ID: extra, "release_day": np.nan})], ignore_index=True
        )
    catalog = catalog.drop_duplicates(ITEM_ID).sort_values(ITEM_ID, ignore_index=True)
    return catalog


def _item_day_cumulants(ev: pd.DataFrame, end_snap: int) -> pd.DataFrame:
    """One row per (item, snapshot day with events) with cumulative counts and sums."""
    sql = f"""
    WITH item_day AS (
        SELECT {ITEM_ID}, day + 1 AS {_SNAP}, count(*) AS n, sum({RATING}) AS s
        FROM ev WHERE day + 1 <= {end_snap} GROUP BY ALL
    )
    SELECT {ITEM_ID}, {_SNAP}, n, s, sum(n) OVER w AS cn, sum(s) OVER w AS cs
    FROM item_day
    WINDOW w AS (PARTITION BY {ITEM_ID} ORDER BY {_SNAP} ROWS UNBOUNDED PRECEDING)
    ORDER BY {ITEM_ID}, {_SNAP}
    """
    con = duckdb.connect()
    try:
        con.register("ev", ev)
        cum = con.execute(sql).df()
    finally:
        con.close()
    return cum


def build_item_features(
    events: pd.DataFrame,
    items: pd.DataFrame,
    end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Daily point-in-time item features.

    Args:
        events: canonical events.
        items: canonical items (``item_id, genres, release_date``); every catalog item gets
            rows, rated or not (items that appear only in events get rows too).
        end: last snapshot day (floored to midnight UTC); default: the midnight after the
            last event.

    Returns:
        One row per (item, snapshot day) from the day after the first event of the dataset
        to ``end``: ``item_id``, ``event_timestamp`` and
        :data:`~reelrank.features.columns.ITEM_FEATURES`: event counts per window (int64),
        ``item_trend_7d`` = (events in the last 7 days + 1) / (events in the 7 before + 1),
        ``log(1 + events in 30 days)``, popularity rank over 30 days (1 = most popular,
        ties share the best rank; NaN when the item had no event in 30 days), Bayesian mean
        rating ``(sum + k * m) / (n + k)`` with ``k = BAYES_PRIOR_STRENGTH`` and ``m`` the
        mean of all events before the snapshot, days since release (NaN when unknown;
        negative before release) and a bool multi-hot column per genre. Floats are float32.
        Sorted by item, time.
    """
    started = time.perf_counter()
    ev = _event_days(events)
    columns = [ITEM_ID, EVENT_TIMESTAMP, *cols.ITEM_FEATURES]
    if ev.empty:
        return pd.DataFrame(columns=columns)
    end_snap = _end_snapshot(ev["day"], end)
    first_snap = int(ev["day"].min()) + 1
    genres = _genre_matrix(items)
    catalog = _item_catalog(items, ev)
    n_days = max(end_snap - first_snap + 1, 0)
    if n_days == 0:
        return pd.DataFrame(columns=columns)

    cum = _item_day_cumulants(ev, end_snap)

    # Global prior: mean of all events before each snapshot day.
    days = np.arange(first_snap, end_snap + 1, dtype="int64")
    per_day = cum.groupby(_SNAP)[["n", "s"]].sum().reindex(days, fill_value=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        prior = np.cumsum(per_day["s"].to_numpy("float64")) / np.cumsum(
            per_day["n"].to_numpy("float64")
        )

    item_ids = catalog[ITEM_ID].to_numpy("int64")
    grid_item = np.repeat(item_ids, n_days)
    grid_snap = np.tile(days, len(item_ids))
    lookup = _AsOf(cum[ITEM_ID].to_numpy("int64"), cum[_SNAP].to_numpy("int64"))
    cn = cum["cn"].to_numpy("float64")
    cs = cum["cs"].to_numpy("float64")
    now = lookup.index(grid_item, grid_snap)
    total = _gather(cn, now)
    total_s = _gather(cs, now)
    lagged = {w: _gather(cn, lookup.index(grid_item, grid_snap - w)) for w in (7, 14, 30, 90)}
    n7, n30, n90 = total - lagged[7], total - lagged[30], total - lagged[90]
    prev7 = lagged[7] - lagged[14]
    from scipy.stats import rankdata  # lazy: scipy.stats is slow to import

    by_day = -n30.reshape(len(item_ids), n_days)
    rank = rankdata(by_day, method="min", axis=0).reshape(-1).astype("float64")
    k = float(cols.BAYES_PRIOR_STRENGTH)
    day_index = grid_snap - first_snap
    out: dict[str, np.ndarray] = {ITEM_ID: grid_item, EVENT_TIMESTAMP: grid_snap}
    out[cols.ITEM_EVENTS_7D] = n7.astype("int64")
    out[cols.ITEM_EVENTS_30D] = n30.astype("int64")
    out[cols.ITEM_EVENTS_90D] = n90.astype("int64")
    out[cols.ITEM_EVENTS_TOTAL] = total.astype("int64")
    out[cols.ITEM_TREND_7D] = _float32((n7 + 1.0) / (prev7 + 1.0))
    out[cols.ITEM_LOG_POP_30D] = _float32(np.log1p(n30))
    out[cols.ITEM_POPULARITY_RANK] = _float32(np.where(n30 > 0, rank, np.nan))
    out[cols.ITEM_RATING_MEAN_BAYES] = _float32((total_s + k * prior[day_index]) / (total + k))
    release = np.repeat(catalog["release_day"].to_numpy("float64"), n_days)
    out[cols.ITEM_DAYS_SINCE_RELEASE] = _float32(grid_snap - release)
    genre_rows = pd.Index(genres[ITEM_ID]).get_indexer(item_ids)
    flags = genres[list(_GENRE_TMP)].to_numpy("int8")
    for position, name in enumerate(cols.ITEM_GENRE):
        per_item = np.where(genre_rows >= 0, flags[np.maximum(genre_rows, 0), position], 0)
        out[name] = np.repeat(per_item == 1, n_days)
    table = pd.DataFrame(out)
    table[EVENT_TIMESTAMP] = _day_to_timestamp(table[EVENT_TIMESTAMP])
    table = table[columns]
    logger.info(
        "item features: %d rows, %d items, %s..%s in %.1fs",
        len(table),
        len(item_ids),
        table[EVENT_TIMESTAMP].min(),
        table[EVENT_TIMESTAMP].max(),
        time.perf_counter() - started,
    )
    return table

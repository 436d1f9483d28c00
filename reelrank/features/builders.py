"""Point-in-time feature tables from the lake frames (DuckDB window functions).

Snapshot scheme (why an as-of join returns exact values)
--------------------------------------------------------
A feature value for day ``D`` (midnight UTC) is computed from events with ``timestamp < D``
only: everything knowable at ``D``; events of day ``D`` itself first count on ``D + 1`` (at
most one day of staleness, never leakage). The *definition* is a daily snapshot table:

* Users: a row for day ``D`` exactly when the user has an event in the ``HORIZON_DAYS + 1``
  days before ``D`` (from the day after an event until the first day all rolling windows
  are empty), clipped to the dataset end. Once the windows are empty every user column is
  constant (counts 0, recency capped at ``RECENCY_CAP_DAYS``, means and genre shares over
  all history), so that last row stays exact until the user's next event: the as-of join
  (latest row <= t, within ``USER_TTL``) returns the true value at t. Whether a row exists
  depends only on earlier events, so truncating the data at t changes no row <= t.
* Items: one row per item per day from the first snapshot day to the dataset end.

:func:`build_user_features` and :func:`build_item_features` build exactly that (the
reference, tested by hand). It grows with entities x days, so the stores hold the same
values with fewer rows (:func:`build_user_change_rows`, :func:`build_item_change_rows`):

* **Change rows.** A row only on the days a stored value can change: the day after an
  event day ``e`` (``s = e + 1``) and the days a window lets that day go (``s + 7``,
  ``s + 30``, ``s + 90``; items also ``s + 14``, the trend's second week), plus each run's
  last daily row (users) and the first and last snapshot day (items). Between two rows no
  event enters or leaves a window, so every count, mean, share and trend is constant.
  Rows grow with event-days (at most four or five per event-day), not with days.
* **Day-varying columns, derived at read time** from the row and the read day
  ``d = min(day(t), end)``: ``user_days_since_last_event = min(stored + (d - row day),
  cap)``; ``item_days_since_release = stored + (d - row day)``; ``item_popularity_rank``
  from every item's 30-day count as of ``d``; ``item_rating_mean_bayes`` from the stored
  ``item_rating_sum`` (kept beside the features) and the global mean as of ``d`` (the sum
  of every item's ratings over their counts). :mod:`reelrank.features.point_in_time`
  derives them; every reader goes through it (the library provider, Feast retrieval and
  materialization in :mod:`reelrank.features.feast.store`), and the tests require the
  result to equal an as-of lookup in the daily tables, value for value.

Both schemes come from the same per-(entity, active day) cumulative sums
(:class:`UserHistory`, :class:`ItemHistory`) evaluated on a grid of (entity, day) rows, so
the library can also evaluate them directly as of any day without building a table.

The dataset end is ``end`` if given, else the midnight after the last event.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
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
_NS_PER_DAY: Final = 86_400 * 10**9
_SNAP: Final = "snap"  # working column: snapshot day as days since the epoch
_GENRE_TMP: Final[tuple[str, ...]] = tuple(f"g{i}" for i in range(len(GENRE_VOCAB)))
UNKNOWN_CODE: Final = -1
"""Encoded value of a missing categorical (gender, occupation, zip region)."""
GENDER_CODES: Final = {"m": 0, "male": 0, "f": 1, "female": 1}
USER_CHANGE_OFFSETS: Final[tuple[int, ...]] = (0, *cols.WINDOWS_DAYS)
"""Days after an event's snapshot day on which a user value can change (the windows)."""
ITEM_CHANGE_OFFSETS: Final[tuple[int, ...]] = (0, 7, 14, 30, 90)
"""The same for items (the trend compares the last 7 days with the 7 before)."""
USER_CHUNK_EVENTS: Final = 2_000_000
"""Events per block of users when change rows are built block by block (bounds memory)."""


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


def day_of(when: pd.Timestamp) -> int:
    """Whole days since the epoch of one UTC instant (floor): its snapshot day."""
    return int((pd.Timestamp(when) - _EPOCH) // _DAY)


def fresh_days(days: np.ndarray, when: pd.Timestamp, ttl: timedelta) -> np.ndarray:
    """Whether rows stamped at the midnights of ``days`` are within ``ttl`` before ``when``."""
    oldest = (pd.Timestamp(when) - ttl - _EPOCH) // pd.Timedelta(1, "ns")
    return np.asarray(days, dtype="int64") * _NS_PER_DAY >= oldest


def day_to_timestamp(days: pd.Series | np.ndarray) -> pd.Series:
    values = pd.Series(np.asarray(days, dtype="int64"))
    return (_EPOCH + pd.to_timedelta(values, unit="D")).astype("datetime64[ns, UTC]")


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
        valid = (
            (position >= 0) & (self.entity[safe] == grid_entity)
            if len(self.entity)
            else (np.zeros(len(grid_entity), dtype=bool))
        )
        return safe, valid


def _gather(values: np.ndarray, where: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``values`` at the as-of rows; 0 where there is none (nothing happened yet)."""
    position, valid = where
    if len(values) == 0:
        return np.zeros(len(position))
    return np.where(valid, values[position], 0)


def _expand(
    entity: np.ndarray, first: np.ndarray, last: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Daily grid rows (entity, snap) for each closed range ``[first, last]``."""
    lengths = (last - first + 1).astype("int64")
    total = int(lengths.sum())
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    snap = np.repeat(first.astype("int64"), lengths) + (np.arange(total) - starts)
    return np.repeat(entity.astype("int64"), lengths), snap


def _unique(keys: np.ndarray) -> np.ndarray:
    """Sorted distinct values (a sort: numpy's hashed ``unique`` is slower on int64 keys)."""
    keys = np.sort(keys)
    return keys[np.r_[True, keys[1:] != keys[:-1]]] if len(keys) else keys


def _change_points(
    entity: np.ndarray, snap: np.ndarray, offsets: tuple[int, ...], end_snap: int
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (entity, snap + offset) <= ``end_snap``, sorted by entity then day."""
    keys = _unique(np.concatenate([_composite(entity, snap + offset) for offset in offsets]))
    grid_entity, grid_snap = keys // _KEY_SHIFT, keys % _KEY_SHIFT
    keep = grid_snap <= end_snap
    return grid_entity[keep], grid_snap[keep]


def _float32(values: np.ndarray) -> np.ndarray:
    return values.astype("float32")


def _duckdb(sql: str, **frames: pd.DataFrame) -> pd.DataFrame:
    con = duckdb.connect()
    try:
        for name, frame in frames.items():
            con.register(name, frame)
        return con.execute(sql).df()
    finally:
        con.close()


# ------------------------------------------------------------------------------ users
_USER_CUMULANTS_SQL: Final = """
WITH item_day AS (
    SELECT {item}, day, count(*) AS n FROM pop_ev GROUP BY ALL
), item_pop AS (
    SELECT {item}, day,
           ln(1 + coalesce(sum(n) OVER (PARTITION BY {item} ORDER BY day
               RANGE BETWEEN 30 PRECEDING AND 1 PRECEDING), 0)) AS lp
    FROM item_day
), user_day AS (
    SELECT e.{user}, e.day + 1 AS {snap}, count(*) AS n, sum(e.{rating}) AS s,
           sum(e.{rating} * e.{rating}) AS ss, sum(p.lp) AS slp, {genre_sums}
    FROM ev e
    JOIN item_pop p ON p.{item} = e.{item} AND p.day = e.day
    LEFT JOIN genres g ON g.{item} = e.{item}
    GROUP BY ALL
)
SELECT {user}, CAST({snap} AS INTEGER) AS {snap}, CAST(n AS INTEGER) AS n, s, ss,
       sum(slp) OVER (PARTITION BY {user} ORDER BY {snap} ROWS UNBOUNDED PRECEDING) AS cslp,
       {genre_days},
       CAST(CASE WHEN {snap} - lag({snap}) OVER (PARTITION BY {user} ORDER BY {snap})
            <= {gap} THEN 0 ELSE 1 END AS TINYINT) AS new_run
FROM user_day
ORDER BY {user}, {snap}
"""


def _cumsum_per_user(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Running sums restarting at each user's first row (exact for integer-valued data)."""
    total = np.cumsum(values)
    before = total[starts] - values[starts]
    return total - np.repeat(before, lengths)


def _user_day_cumulants(
    ev: pd.DataFrame, genres: pd.DataFrame, pop_ev: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per (user, active snapshot day) with cumulative sums, and run starts.

    ``pop_ev``: the events the items' 30-day popularity is counted over (default ``ev``;
    all events when ``ev`` is one block of users). DuckDB sums each user-day and the
    popularity log sums; the integer-valued running sums (counts, ratings of an integer
    scale, genre counts) are taken in numpy, exactly.
    """
    sql = _USER_CUMULANTS_SQL.format(
        item=ITEM_ID,
        user=USER_ID,
        rating=RATING,
        snap=_SNAP,
        gap=cols.HORIZON_DAYS + 1,
        genre_sums=", ".join(f"sum(coalesce(g.{g}, 0)) AS {g}" for g in _GENRE_TMP),
        genre_days=", ".join(f"CAST({g} AS INTEGER) AS {g}" for g in _GENRE_TMP),
    )
    day = _duckdb(sql, ev=ev, genres=genres, pop_ev=ev if pop_ev is None else pop_ev)
    user = day[USER_ID].to_numpy("int64")
    starts = np.flatnonzero(np.r_[True, user[1:] != user[:-1]]) if len(user) else user
    lengths = np.diff(np.r_[starts, len(user)])
    out = {USER_ID: user, _SNAP: day[_SNAP].to_numpy()}
    out["cn"] = _cumsum_per_user(day["n"].to_numpy("int64"), starts, lengths).astype("int32")
    for name in ("s", "ss"):
        out[f"c{name}"] = _cumsum_per_user(day[name].to_numpy("float64"), starts, lengths)
    out["cslp"] = day["cslp"].to_numpy("float64")
    for g in _GENRE_TMP:
        counts = _cumsum_per_user(day[g].to_numpy("int64"), starts, lengths)
        out[f"c{g}"] = counts.astype("int32")
    out["new_run"] = day["new_run"].to_numpy()
    return pd.DataFrame(out)


@dataclass(frozen=True)
class UserHistory:
    """Every user's cumulative sums per active snapshot day: what any user row is made of.

    Attributes:
        cum: one row per (user, snapshot day after an event day), sorted: cumulative
            count, rating sums, popularity sum, genre counts, and whether a run starts.
        side: the encoded side information per user.
        end_snap: the last snapshot day.
    """

    cum: pd.DataFrame
    side: pd.DataFrame
    end_snap: int

    @classmethod
    def from_events(
        cls,
        events: pd.DataFrame,
        users: pd.DataFrame,
        items: pd.DataFrame,
        end: pd.Timestamp | None = None,
        *,
        pop_days: pd.DataFrame | None = None,
        end_snap: int | None = None,
    ) -> UserHistory:
        """The history of ``events``; ``pop_days``: every event (as ``_event_days`` gives
        them) when ``events`` is one block of users, for the items' 30-day popularity."""
        ev = _event_days(events)
        snap = end_snap if end_snap is not None else _end_snapshot(ev["day"], end)
        cum = _user_day_cumulants(ev, _genre_matrix(items), pop_days)
        return cls(cum, _encode_side_info(users), snap)

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return self.cum[USER_ID].to_numpy("int64"), self.cum[_SNAP].to_numpy("int64")

    def dense_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Every daily row of the snapshot definition (runs of days after events)."""
        user, snap = self._arrays()
        run = np.cumsum(self.cum["new_run"].to_numpy("int64"))  # numbered across users
        run_start = np.flatnonzero(np.r_[True, run[1:] != run[:-1]])
        run_end = np.r_[run_start[1:], len(run)] - 1
        first = snap[run_start]
        last = np.minimum(snap[run_end] + cols.HORIZON_DAYS, self.end_snap)
        keep = first <= last
        return _expand(user[run_start][keep], first[keep], last[keep])

    def change_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """The change rows: event and window-exit days, plus the end of a run still open."""
        user, snap = self._arrays()
        grid_user, grid_snap = _change_points(user, snap, USER_CHANGE_OFFSETS, self.end_snap)
        if len(user):
            last = np.r_[user[1:] != user[:-1], True]
            open_run = snap[last] + cols.HORIZON_DAYS > self.end_snap
            open_run &= snap[last] <= self.end_snap
            closing = np.full(int(open_run.sum()), self.end_snap, dtype="int64")
            keys = _unique(
                np.r_[_composite(grid_user, grid_snap), _composite(user[last][open_run], closing)]
            )
            grid_user, grid_snap = keys // _KEY_SHIFT, keys % _KEY_SHIFT
        return grid_user, grid_snap

    def as_of(self, user_ids: np.ndarray, when: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
        """(mask, day) of the daily row an as-of lookup at ``when`` finds (within the ttl)."""
        user, snap = self._arrays()
        bound = min(day_of(when), self.end_snap)
        where = _AsOf(user, snap).index(user_ids, np.full(len(user_ids), bound))
        last_event = np.where(where[1], snap[where[0]] if len(snap) else 0, 0)
        row_day = np.minimum(bound, last_event + cols.HORIZON_DAYS)
        return where[1] & fresh_days(row_day, when, cols.USER_TTL), row_day

    def rows(self, grid_user: np.ndarray, grid_snap: np.ndarray) -> pd.DataFrame:
        """The user rows at (user, day) grid points (each at or after the user's first
        event's snapshot day): ``user_id, event_timestamp`` and ``USER_FEATURES``."""
        user, snap = self._arrays()
        cum = self.cum
        lookup = _AsOf(user, snap)
        position = lookup.index(grid_user, grid_snap)[0]
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
            lagged = _gather(cn, lookup.index(grid_user, grid_snap - days))
            out[name] = (total - lagged).astype("int64")
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
        out[cols.USER_MEAN_ITEM_LOG_POP] = _float32(
            cum["cslp"].to_numpy("float64")[position] / total
        )
        self._add_side_and_genres(out, position, grid_user)
        table = pd.DataFrame(out)
        table[EVENT_TIMESTAMP] = day_to_timestamp(grid_snap)
        return table[[USER_ID, EVENT_TIMESTAMP, *cols.USER_FEATURES]]

    def _add_side_and_genres(
        self, out: dict[str, np.ndarray], position: np.ndarray, grid_user: np.ndarray
    ) -> None:
        """The encoded side information and the genre shares of every grid row, into ``out``."""
        side, cum = self.side, self.cum
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
    """Daily point-in-time user features (the definition; see the module docstring).

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
    columns = [USER_ID, EVENT_TIMESTAMP, *cols.USER_FEATURES]
    if len(events) == 0:
        return pd.DataFrame(columns=columns)
    history = UserHistory.from_events(events, users, items, end)
    table = history.rows(*history.dense_grid())
    _log_table("user features", table, USER_ID, started)
    return table


def iter_user_change_rows(
    events: pd.DataFrame,
    users: pd.DataFrame,
    items: pd.DataFrame,
    end: pd.Timestamp | None = None,
    chunk_events: int = USER_CHUNK_EVENTS,
) -> Iterator[pd.DataFrame]:
    """The user change rows (module docstring), one block of users at a time.

    Each block holds whole users and about ``chunk_events`` of their events, so memory is
    bounded by a block; the blocks come in user order and together equal
    :func:`build_user_change_rows`.
    """
    if len(events) == 0:
        return
    ev_users = events[USER_ID].to_numpy(dtype="int64")
    order = np.argsort(ev_users, kind="stable")
    ordered = ev_users[order]
    first = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ids, counts = ordered[first], np.diff(np.r_[first, len(ordered)])
    bounds = np.searchsorted(np.cumsum(counts), np.arange(chunk_events, len(events), chunk_events))
    edges = np.unique(np.r_[0, bounds + 1, len(ids)].clip(0, len(ids)))
    pop_days = _event_days(events)
    end_snap = _end_snapshot(pop_days["day"], end)
    starts = np.r_[0, np.cumsum(counts)]
    for lo, hi in itertools.pairwise(edges):
        rows = np.sort(order[starts[lo] : starts[hi]])  # the block's events, input order
        block = events.iloc[rows]
        history = UserHistory.from_events(block, users, items, pop_days=pop_days, end_snap=end_snap)
        yield history.rows(*history.change_grid())


def build_user_change_rows(
    events: pd.DataFrame,
    users: pd.DataFrame,
    items: pd.DataFrame,
    end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """The user rows the stores hold: change rows only (module docstring), with
    ``user_days_since_last_event`` as of each row's day (readers derive later days)."""
    columns = [USER_ID, EVENT_TIMESTAMP, *cols.USER_FEATURES]
    blocks = list(iter_user_change_rows(events, users, items, end))
    return pd.concat(blocks, ignore_index=True) if blocks else pd.DataFrame(columns=columns)


def _log_table(what: str, table: pd.DataFrame, key: str, started: float) -> None:
    logger.info(
        "%s: %d rows, %d entities, %s..%s in %.1fs",
        what,
        len(table),
        table[key].nunique(),
        table[EVENT_TIMESTAMP].min(),
        table[EVENT_TIMESTAMP].max(),
        time.perf_counter() - started,
    )


# ------------------------------------------------------------------------------ items
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
    return _duckdb(sql, ev=ev)


@dataclass(frozen=True)
class ItemHistory:
    """Every item's cumulative counts per snapshot day with events, the catalogue, genres
    and the global mean rating before each day: what any item row is made of."""

    cum: pd.DataFrame
    catalog: pd.DataFrame
    genres: pd.DataFrame
    prior: np.ndarray  # mean rating of all events before each day, from first_snap
    first_snap: int
    end_snap: int

    @classmethod
    def from_events(
        cls, events: pd.DataFrame, items: pd.DataFrame, end: pd.Timestamp | None = None
    ) -> ItemHistory:
        ev = _event_days(events)
        end_snap = _end_snapshot(ev["day"], end)
        first_snap = int(ev["day"].min()) + 1
        cum = _item_day_cumulants(ev, end_snap)
        days = np.arange(first_snap, max(end_snap, first_snap - 1) + 1, dtype="int64")
        per_day = cum.groupby(_SNAP)[["n", "s"]].sum().reindex(days, fill_value=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            prior = np.cumsum(per_day["s"].to_numpy("float64")) / np.cumsum(
                per_day["n"].to_numpy("float64")
            )
        return cls(cum, _item_catalog(items, ev), _genre_matrix(items), prior, first_snap, end_snap)

    @property
    def item_ids(self) -> np.ndarray:
        return self.catalog[ITEM_ID].to_numpy("int64")

    @property
    def n_days(self) -> int:
        return max(self.end_snap - self.first_snap + 1, 0)

    def _counts(self, grid_item: np.ndarray, grid_snap: np.ndarray) -> dict[int, np.ndarray]:
        """Cumulative count ``0`` and rating sum ``-1`` at each grid row, and the count
        ``w`` days before it for every window ``w``."""
        lookup = _AsOf(self.cum[ITEM_ID].to_numpy("int64"), self.cum[_SNAP].to_numpy("int64"))
        cn = self.cum["cn"].to_numpy("float64")
        now = lookup.index(grid_item, grid_snap)
        out = {0: _gather(cn, now), -1: _gather(self.cum["cs"].to_numpy("float64"), now)}
        for w in (7, 14, 30, 90):
            out[w] = _gather(cn, lookup.index(grid_item, grid_snap - w))
        return out

    def _n30(self, grid_item: np.ndarray, grid_snap: np.ndarray) -> np.ndarray:
        counts = self._counts(grid_item, grid_snap)
        return counts[0] - counts[30]

    def rank_by_day(self, grid_snap: np.ndarray, n30: np.ndarray, chunk: int = 64) -> np.ndarray:
        """``item_popularity_rank`` of rows with 30-day counts ``n30`` on days ``grid_snap``:
        1 + the number of catalogue items with a larger count that day (ties share the
        best rank, like ``rankdata(method="min")``); NaN for a count of 0."""
        rank = np.full(len(n30), np.nan)
        days = _unique(grid_snap)
        ids = self.item_ids
        for lo in range(0, len(days), chunk):
            block = days[lo : lo + chunk]
            catalog = self._n30(np.repeat(ids, len(block)), np.tile(block, len(ids)))
            per_day = np.sort(catalog.reshape(len(ids), len(block)), axis=0)
            rows = np.flatnonzero((grid_snap >= block[0]) & (grid_snap <= block[-1]))
            column = np.searchsorted(block, grid_snap[rows])
            # One searchsorted over the columns laid end to end: offset each by its index.
            offset = float(np.max(catalog, initial=0.0) + np.max(n30, initial=0.0) + 1)
            flat = (per_day + offset * np.arange(len(block))).T.ravel()
            above = np.searchsorted(flat, n30[rows] + offset * column, side="right")
            rank[rows] = 1 + len(ids) * (column + 1) - above
        return np.where(n30 > 0, rank, np.nan)

    def rows(
        self, grid_item: np.ndarray, grid_snap: np.ndarray, rank: np.ndarray | None = None
    ) -> pd.DataFrame:
        """The item rows at (item, day) grid points (days from ``first_snap`` to
        ``end_snap``): ``item_id, event_timestamp``, ``ITEM_FEATURES`` and
        ``item_rating_sum``. ``rank``: the popularity ranks when already known."""
        counts = self._counts(grid_item, grid_snap)
        total, total_s = counts[0], counts[-1]
        n7, n30, n90 = total - counts[7], total - counts[30], total - counts[90]
        prev7 = counts[7] - counts[14]
        if rank is None:
            rank = self.rank_by_day(grid_snap, n30)
        k = float(cols.BAYES_PRIOR_STRENGTH)
        out: dict[str, np.ndarray] = {ITEM_ID: grid_item}
        out[cols.ITEM_EVENTS_7D] = n7.astype("int64")
        out[cols.ITEM_EVENTS_30D] = n30.astype("int64")
        out[cols.ITEM_EVENTS_90D] = n90.astype("int64")
        out[cols.ITEM_EVENTS_TOTAL] = total.astype("int64")
        out[cols.ITEM_TREND_7D] = _float32((n7 + 1.0) / (prev7 + 1.0))
        out[cols.ITEM_LOG_POP_30D] = _float32(np.log1p(n30))
        out[cols.ITEM_POPULARITY_RANK] = _float32(np.where(n30 > 0, rank, np.nan))
        prior = self.prior[grid_snap - self.first_snap]
        out[cols.ITEM_RATING_MEAN_BAYES] = _float32((total_s + k * prior) / (total + k))
        catalog_rows = pd.Index(self.catalog[ITEM_ID]).get_indexer(grid_item)
        release = self.catalog["release_day"].to_numpy("float64")[catalog_rows]
        out[cols.ITEM_DAYS_SINCE_RELEASE] = _float32(grid_snap - release)
        genre_rows = pd.Index(self.genres[ITEM_ID]).get_indexer(grid_item)
        flags = self.genres[list(_GENRE_TMP)].to_numpy("int8")
        for position, name in enumerate(cols.ITEM_GENRE):
            per_row = np.where(genre_rows >= 0, flags[np.maximum(genre_rows, 0), position], 0)
            out[name] = per_row == 1
        out[cols.ITEM_RATING_SUM] = total_s.astype("float64")
        table = pd.DataFrame(out)
        table.insert(1, EVENT_TIMESTAMP, day_to_timestamp(grid_snap))
        return table[[ITEM_ID, EVENT_TIMESTAMP, *cols.ITEM_FEATURES, cols.ITEM_RATING_SUM]]

    def dense_rank(self) -> np.ndarray:
        """Popularity ranks of the dense grid (every item x every day), item-major."""
        from scipy.stats import rankdata  # lazy: scipy.stats is slow to import

        ids, days = self.item_ids, np.arange(self.first_snap, self.end_snap + 1)
        n30 = self._n30(np.repeat(ids, len(days)), np.tile(days, len(ids)))
        by_day = -n30.reshape(len(ids), len(days))
        return rankdata(by_day, method="min", axis=0).reshape(-1).astype("float64")

    def change_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """The change rows: event days and the days windows let them go, plus the first
        and the last snapshot day of every catalogue item."""
        if self.n_days == 0:
            return np.empty(0, dtype="int64"), np.empty(0, dtype="int64")
        cum_item = self.cum[ITEM_ID].to_numpy("int64")
        cum_snap = self.cum[_SNAP].to_numpy("int64")
        grid_item, grid_snap = _change_points(
            cum_item, cum_snap, ITEM_CHANGE_OFFSETS, self.end_snap
        )
        ids = self.item_ids
        edges = np.r_[np.full(len(ids), self.first_snap), np.full(len(ids), self.end_snap)]
        keys = _unique(np.r_[_composite(grid_item, grid_snap), _composite(np.r_[ids, ids], edges)])
        return keys // _KEY_SHIFT, keys % _KEY_SHIFT


def build_item_features(
    events: pd.DataFrame,
    items: pd.DataFrame,
    end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Daily point-in-time item features (the definition; see the module docstring).

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
    columns = [ITEM_ID, EVENT_TIMESTAMP, *cols.ITEM_FEATURES]
    if len(events) == 0:
        return pd.DataFrame(columns=columns)
    history = ItemHistory.from_events(events, items, end)
    if history.n_days == 0:
        return pd.DataFrame(columns=columns)
    ids, days = history.item_ids, np.arange(history.first_snap, history.end_snap + 1)
    grid = np.repeat(ids, len(days)), np.tile(days, len(ids))
    table = history.rows(*grid, rank=history.dense_rank())[columns]
    _log_table("item features", table, ITEM_ID, started)
    return table


def build_item_change_rows(
    events: pd.DataFrame, items: pd.DataFrame, end: pd.Timestamp | None = None
) -> pd.DataFrame:
    """The item rows the stores hold: change rows only (module docstring), with the
    day-varying columns as of each row's day and ``item_rating_sum`` beside them."""
    started = time.perf_counter()
    columns = [ITEM_ID, EVENT_TIMESTAMP, *cols.ITEM_FEATURES, cols.ITEM_RATING_SUM]
    if len(events) == 0:
        return pd.DataFrame(columns=columns)
    history = ItemHistory.from_events(events, items, end)
    table = history.rows(*history.change_grid())
    _log_table("item change rows", table, ITEM_ID, started)
    return table

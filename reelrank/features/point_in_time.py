"""Features as of a time without a daily table: the library's provider and the readers'
derivation of the day-varying columns (the scheme is in :mod:`reelrank.features.builders`).

* :class:`PointInTimeFeatures` holds the cumulative sums of a set of events
  (:class:`~reelrank.features.builders.UserHistory`, :class:`~.ItemHistory`) and evaluates,
  for any ``as_of``, exactly the row an as-of lookup in the daily tables would return
  (latest row <= ``as_of`` within the views' ttl). Its memory grows with (entity, active
  day) pairs, not with the daily rows: what ``Recommender.fit`` reads its features from.
* :func:`user_values_as_of` and :func:`item_values_as_of` turn the latest *change rows*
  of the stores into the values as of ``as_of``: the same numbers, derived from the row
  and the read day (the store readers in :mod:`reelrank.features.feast.store` use them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import pandas as pd

from reelrank.features import columns as cols
from reelrank.features.builders import ItemHistory, UserHistory, day_of, fresh_days
from reelrank.features.protocol import as_feature_frame, to_utc
from reelrank.schema import EVENT_TIMESTAMP, ITEM_ID, USER_ID

_NS_PER_DAY: Final = 86_400 * 10**9


class PointInTimeFeatures:
    """The :class:`~reelrank.features.protocol.FeatureProvider` over cumulative sums of
    ``events``: user and item features as of any time, equal to the daily tables'
    as-of lookups (``InMemoryFeatureProvider`` over ``build_*_features``).

    Args:
        events, users, items: the canonical frames the features are computed from.
        end: last snapshot day (default: the midnight after the last event).
    """

    def __init__(
        self,
        events: pd.DataFrame,
        users: pd.DataFrame,
        items: pd.DataFrame,
        end: pd.Timestamp | None = None,
    ) -> None:
        self.users = UserHistory.from_events(events, users, items, end)
        self.items = ItemHistory.from_events(events, items, end)
        self._item_cache: tuple[int, pd.DataFrame] | None = None

    def user_features(self, user_ids: Sequence[int], as_of: pd.Timestamp) -> pd.DataFrame:
        """The daily row an as-of lookup at ``as_of`` finds, for each user (NaN: none)."""
        ids = np.unique(np.asarray(user_ids, dtype="int64"))
        found, day = self.users.as_of(ids, to_utc(as_of))
        rows = self.users.rows(ids[found], day[found])
        return as_feature_frame(rows, USER_ID, user_ids, cols.USER_FEATURES)

    def item_features(self, item_ids: Sequence[int], as_of: pd.Timestamp) -> pd.DataFrame:
        """The daily row of each item as of ``as_of`` (NaN before the first snapshot day
        and more than ``ITEM_TTL`` after the last)."""
        when = to_utc(as_of)
        day = min(day_of(when), self.items.end_snap)
        fresh = bool(fresh_days(np.array([day]), when, cols.ITEM_TTL)[0])
        if day < self.items.first_snap or self.items.n_days == 0 or not fresh:
            rows = pd.DataFrame(columns=[ITEM_ID, *cols.ITEM_FEATURES])
        else:
            rows = self._items_on(day)
        return as_feature_frame(rows, ITEM_ID, item_ids, cols.ITEM_FEATURES)

    def _items_on(self, day: int) -> pd.DataFrame:
        """Every catalogue item's row on ``day`` (the ranks need all of them; kept)."""
        if self._item_cache is None or self._item_cache[0] != day:
            ids = self.items.item_ids
            self._item_cache = (day, self.items.rows(ids, np.full(len(ids), day)))
        return self._item_cache[1]


def _read_day(when: pd.Timestamp, end_snap: int) -> int:
    return min(day_of(when), end_snap)


def _row_days(rows: pd.DataFrame) -> np.ndarray:
    stamps = pd.to_datetime(rows[EVENT_TIMESTAMP], utc=True)
    return (stamps.to_numpy(dtype="datetime64[ns]").astype("int64") // _NS_PER_DAY).astype("int64")


def user_values_as_of(rows: pd.DataFrame, as_of: pd.Timestamp, end_snap: int) -> pd.DataFrame:
    """Users' values as of ``as_of`` from their latest change rows at or before it.

    Args:
        rows: one change row per user (``user_id, event_timestamp``, ``USER_FEATURES``),
            the latest with ``event_timestamp <= as_of``.
        as_of: the read time (UTC).
        end_snap: the tables' last snapshot day.

    Returns:
        ``user_id`` and ``USER_FEATURES`` of the users whose daily row is within
        ``USER_TTL`` of ``as_of``: recency moved on to the read day, the rest as stored.
    """
    when = to_utc(as_of)
    day = _read_day(when, end_snap)
    row_day = _row_days(rows)
    stored = rows[cols.USER_DAYS_SINCE_LAST_EVENT].to_numpy("int64")
    # A row with capped recency is the run's last daily row; otherwise the run goes on
    # and the daily table has a row for the read day itself.
    daily_row = np.where(stored >= cols.RECENCY_CAP_DAYS, row_day, day)
    fresh = fresh_days(daily_row, when, cols.USER_TTL)
    out = rows.loc[fresh, [USER_ID, *cols.USER_FEATURES]].copy()
    moved = stored[fresh] + (day - row_day[fresh])
    out[cols.USER_DAYS_SINCE_LAST_EVENT] = np.minimum(moved, cols.RECENCY_CAP_DAYS)
    return out.reset_index(drop=True)


def item_values_as_of(rows: pd.DataFrame, as_of: pd.Timestamp, end_snap: int) -> pd.DataFrame:
    """Items' values as of ``as_of`` from *every* catalogue item's latest change row.

    The popularity rank and the global mean of the Bayesian rating are over all items,
    so ``rows`` must hold one row per catalogue item (``item_id, event_timestamp``,
    ``ITEM_FEATURES``, ``item_rating_sum``), the latest at or before ``as_of``.

    Returns:
        ``item_id`` and ``ITEM_FEATURES`` (empty when the read is more than ``ITEM_TTL``
        after the tables' end): age since release, rank and Bayesian mean as of the read
        day, the rest as stored.
    """
    when = to_utc(as_of)
    day = _read_day(when, end_snap)
    out = rows[[ITEM_ID, *cols.ITEM_FEATURES]].copy().reset_index(drop=True)
    if not fresh_days(np.array([day]), when, cols.ITEM_TTL)[0]:
        return out.iloc[:0]
    row_day = _row_days(rows)
    age = rows[cols.ITEM_DAYS_SINCE_RELEASE].to_numpy("float64") + (day - row_day)
    out[cols.ITEM_DAYS_SINCE_RELEASE] = age.astype("float32")
    n30 = rows[cols.ITEM_EVENTS_30D].to_numpy("float64")
    ordered = np.sort(n30)
    above = len(n30) - np.searchsorted(ordered, n30, side="right")
    out[cols.ITEM_POPULARITY_RANK] = np.where(n30 > 0, 1.0 + above, np.nan).astype("float32")
    total = rows[cols.ITEM_EVENTS_TOTAL].to_numpy("float64")
    total_s = rows[cols.ITEM_RATING_SUM].to_numpy("float64")
    k = float(cols.BAYES_PRIOR_STRENGTH)
    with np.errstate(invalid="ignore", divide="ignore"):
        prior = total_s.sum() / total.sum()
    bayes = (total_s + k * prior) / (total + k)
    out[cols.ITEM_RATING_MEAN_BAYES] = bayes.astype("float32")
    return out

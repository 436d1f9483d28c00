"""Feature providers over tables held in memory: the library's point-in-time tables
(:class:`InMemoryFeatureProvider`, as-of lookups with the Feast views' ttl, like Feast's
historical retrieval) and a model's own latest-value snapshot
(:class:`SnapshotFeatureProvider`, like an online store).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import numpy as np
import pandas as pd

from reelrank.features import columns as cols
from reelrank.features.protocol import as_feature_frame, to_utc
from reelrank.schema import EVENT_TIMESTAMP, ITEM_ID, USER_ID


def point_in_time_lookup(
    table: pd.DataFrame,
    key: str,
    entity_df: pd.DataFrame,
    features: tuple[str, ...],
    ttl: timedelta,
) -> pd.DataFrame:
    """Feast's as-of join in pandas: for each ``(key, event_timestamp)`` row of ``entity_df``,
    the latest ``table`` row with ``event_timestamp <= t`` and ``>= t - ttl``.

    Returns the features (float64) aligned with ``entity_df``'s index.
    """
    left = entity_df[[key, EVENT_TIMESTAMP]].copy()
    left[EVENT_TIMESTAMP] = pd.to_datetime(left[EVENT_TIMESTAMP], utc=True).astype(
        "datetime64[ns, UTC]"
    )
    left["__row"] = np.arange(len(left))
    left[key] = left[key].astype("int64")
    right = table[[key, EVENT_TIMESTAMP, *features]].copy()
    right[EVENT_TIMESTAMP] = right[EVENT_TIMESTAMP].astype("datetime64[ns, UTC]")
    right[key] = right[key].astype("int64")
    right = right.rename(columns={EVENT_TIMESTAMP: "__feature_ts"})
    merged = pd.merge_asof(
        left.sort_values(EVENT_TIMESTAMP),
        right.sort_values("__feature_ts"),
        left_on=EVENT_TIMESTAMP,
        right_on="__feature_ts",
        by=key,
        direction="backward",
        tolerance=pd.Timedelta(ttl) if ttl.total_seconds() > 0 else None,
    ).sort_values("__row")
    out = merged[list(features)].astype("float64")
    out.index = entity_df.index
    return out


class InMemoryFeatureProvider:
    """As-of lookups on library-built tables, with the ttl of the Feast views.

    Args:
        user_table: output of :func:`~reelrank.features.builders.build_user_features`.
        item_table: output of :func:`~reelrank.features.builders.build_item_features`.
    """

    def __init__(self, user_table: pd.DataFrame, item_table: pd.DataFrame) -> None:
        self.user_table = user_table.sort_values([USER_ID, EVENT_TIMESTAMP], ignore_index=True)
        self.item_table = item_table.sort_values([ITEM_ID, EVENT_TIMESTAMP], ignore_index=True)

    @staticmethod
    def _latest(
        table: pd.DataFrame,
        key: str,
        ids: Sequence[int],
        as_of: pd.Timestamp,
        features: tuple[str, ...],
        ttl: timedelta,
    ) -> pd.DataFrame:
        when = to_utc(as_of)
        stamps = table[EVENT_TIMESTAMP]
        known = table[(stamps <= when) & (stamps >= when - ttl if ttl.total_seconds() else True)]
        wanted = known[known[key].isin(np.asarray(ids, dtype="int64"))]
        return as_feature_frame(wanted, key, ids, features)  # sorted: last row is latest

    def user_features(self, user_ids: Sequence[int], as_of: pd.Timestamp) -> pd.DataFrame:
        """Latest user row with ``event_timestamp <= as_of`` within ``USER_TTL``."""
        return self._latest(
            self.user_table, USER_ID, user_ids, as_of, cols.USER_FEATURES, cols.USER_TTL
        )

    def item_features(self, item_ids: Sequence[int], as_of: pd.Timestamp) -> pd.DataFrame:
        """Latest item row with ``event_timestamp <= as_of`` within ``ITEM_TTL``."""
        return self._latest(
            self.item_table, ITEM_ID, item_ids, as_of, cols.ITEM_FEATURES, cols.ITEM_TTL
        )

    def join(self, entity_df: pd.DataFrame) -> pd.DataFrame:
        """Per-row point-in-time join like Feast's historical retrieval: ``entity_df``
        (``user_id``, ``item_id``, ``event_timestamp``, ...) plus user and item features."""
        users = point_in_time_lookup(
            self.user_table, USER_ID, entity_df, cols.USER_FEATURES, cols.USER_TTL
        )
        items = point_in_time_lookup(
            self.item_table, ITEM_ID, entity_df, cols.ITEM_FEATURES, cols.ITEM_TTL
        )
        return pd.concat([entity_df, users, items], axis=1)


class SnapshotFeatureProvider:
    """Latest feature values held in memory; ``as_of`` is ignored (like an online store).

    Args:
        user_frame: features indexed by ``user_id``.
        item_frame: features indexed by ``item_id``.
    """

    def __init__(self, user_frame: pd.DataFrame, item_frame: pd.DataFrame) -> None:
        self.user_frame = user_frame
        self.item_frame = item_frame

    def user_features(self, user_ids: Sequence[int], as_of: pd.Timestamp) -> pd.DataFrame:
        return _lookup(self.user_frame, user_ids, USER_ID)

    def item_features(self, item_ids: Sequence[int], as_of: pd.Timestamp) -> pd.DataFrame:
        return _lookup(self.item_frame, item_ids, ITEM_ID)


def _lookup(frame: pd.DataFrame, ids: Sequence[int], name: str) -> pd.DataFrame:
    """Rows of ``frame`` for ``ids`` in order; unknown ids as NaN rows (fast when all known)."""
    index = pd.Index(np.asarray(ids, dtype=np.int64), name=name)
    positions = frame.index.get_indexer(index)
    if (positions >= 0).all():
        out = frame.iloc[positions]
        out.index = index
        return out
    return frame.reindex(index)

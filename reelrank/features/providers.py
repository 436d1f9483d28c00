"""FeatureProvider implementations: in memory (library tables), Feast offline, Feast online.

All three return, for the requested ids in order, a frame indexed by the entity id whose
columns are the stored features of ``ranker_v1`` (``USER_FEATURES`` or
``ITEM_FEATURES``) as float64; unknown ids (or rows older than the view's ttl) give NaN.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from reelrank.data.schema import EVENT_TIMESTAMP, ITEM_ID, USER_ID
from reelrank.exceptions import FeatureStoreError
from reelrank.features import columns as cols

if TYPE_CHECKING:
    from feast import FeatureStore

logger = logging.getLogger(__name__)


def _utc(ts: pd.Timestamp | Any) -> pd.Timestamp:
    stamp = pd.Timestamp(ts)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _as_float_frame(
    frame: pd.DataFrame, key: str, ids: Sequence[int], features: tuple[str, ...]
) -> pd.DataFrame:
    """``frame`` (one row per id, column ``key``) as float64 features indexed by ``ids``."""
    values = frame.drop_duplicates(key, keep="last").set_index(key)[list(features)]
    out = values.astype("float64").reindex(pd.Index(np.asarray(ids, dtype="int64"), name=key))
    return out


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
        when = _utc(as_of)
        stamps = table[EVENT_TIMESTAMP]
        known = table[(stamps <= when) & (stamps >= when - ttl if ttl.total_seconds() else True)]
        wanted = known[known[key].isin(np.asarray(ids, dtype="int64"))]
        return _as_float_frame(wanted, key, ids, features)  # sorted: last row is latest

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


def _service_refs(store: FeatureStore, service: str) -> dict[str, list[str]]:
    """``{view name: ["view:feature", ...]}`` of a feature service (the source of truth)."""
    try:
        feature_service = store.get_feature_service(service)
    except Exception as error:  # Feast raises its own not-found types
        raise FeatureStoreError(
            f"feature service {service!r} is not in the registry ({error}); run apply first."
        ) from error
    refs: dict[str, list[str]] = {}
    for projection in feature_service.feature_view_projections:
        view = projection.name_to_use()
        refs[view] = [f"{view}:{feature.name}" for feature in projection.features]
    return refs


class _FeastProvider:
    def __init__(self, store: FeatureStore, service: str) -> None:
        self.store = store
        self.service = service
        refs = _service_refs(store, service)
        self._user_refs = refs.get(cols.USER_VIEW, [])
        self._item_refs = refs.get(cols.ITEM_VIEW, [])
        if not self._user_refs or not self._item_refs:
            raise FeatureStoreError(
                f"feature service {service!r} lacks {cols.USER_VIEW} or {cols.ITEM_VIEW}."
            )


class FeastOfflineProvider(_FeastProvider):
    """Point-in-time features through Feast's historical retrieval (offline store).

    Args:
        store: an applied FeatureStore (see :func:`reelrank.features.store.apply_definitions`).
        service: feature service whose features are served.
    """

    def __init__(self, store: FeatureStore, service: str = cols.FEATURE_SERVICE) -> None:
        super().__init__(store, service)

    def _fetch(
        self,
        key: str,
        ids: Sequence[int],
        as_of: pd.Timestamp,
        refs: list[str],
        features: tuple[str, ...],
    ) -> pd.DataFrame:
        unique = pd.unique(np.asarray(ids, dtype="int64"))
        entity_df = pd.DataFrame({key: unique, EVENT_TIMESTAMP: _utc(as_of)})
        if len(unique) == 0:
            return _as_float_frame(entity_df.assign(**dict.fromkeys(features)), key, ids, features)
        frame = self.store.get_historical_features(entity_df=entity_df, features=refs).to_df()
        return _as_float_frame(frame, key, ids, features)

    def user_features(self, user_ids: Sequence[int], as_of: pd.Timestamp) -> pd.DataFrame:
        return self._fetch(USER_ID, user_ids, as_of, self._user_refs, cols.USER_FEATURES)

    def item_features(self, item_ids: Sequence[int], as_of: pd.Timestamp) -> pd.DataFrame:
        return self._fetch(ITEM_ID, item_ids, as_of, self._item_refs, cols.ITEM_FEATURES)


class FeastOnlineProvider(_FeastProvider):
    """Latest features from Feast's online store (``as_of`` is ignored).

    Args:
        store: an applied and materialized FeatureStore.
        service: feature service whose features are served.
        timeout_ms: budget for one read; a slower read raises ``FeatureStoreError`` so the
            caller can degrade (``None``: wait as long as it takes).
    """

    def __init__(
        self,
        store: FeatureStore,
        service: str = cols.FEATURE_SERVICE,
        timeout_ms: float | None = None,
    ) -> None:
        super().__init__(store, service)
        self.timeout_ms = timeout_ms
        self._pool = (
            concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="feast-online")
            if timeout_ms is not None
            else None
        )

    def _read(self, key: str, ids: Sequence[int], refs: list[str]) -> dict[str, list[Any]]:
        rows = [{key: int(i)} for i in pd.unique(np.asarray(ids, dtype="int64"))]
        if not rows:
            return {key: []}
        result: dict[str, list[Any]] = self.store.get_online_features(
            features=refs, entity_rows=rows
        ).to_dict()
        return result

    def _fetch(
        self, key: str, ids: Sequence[int], refs: list[str], features: tuple[str, ...]
    ) -> pd.DataFrame:
        if self._pool is None or self.timeout_ms is None:
            data = self._read(key, ids, refs)
        else:
            future = self._pool.submit(self._read, key, ids, refs)
            try:
                data = future.result(timeout=self.timeout_ms / 1000.0)
            except concurrent.futures.TimeoutError as error:
                raise FeatureStoreError(
                    f"online feature read of {len(ids)} {key}s exceeded {self.timeout_ms} ms; "
                    "serve a fallback or raise REELRANK_ONLINE_TIMEOUT_MS."
                ) from error
        frame = pd.DataFrame(data)
        for name in features:
            if name not in frame.columns:
                frame[name] = np.nan
            frame[name] = pd.to_numeric(frame[name].astype("object"), errors="coerce")
        return _as_float_frame(frame, key, ids, features)

    def user_features(self, user_ids: Sequence[int], as_of: pd.Timestamp) -> pd.DataFrame:
        return self._fetch(USER_ID, user_ids, self._user_refs, cols.USER_FEATURES)

    def item_features(self, item_ids: Sequence[int], as_of: pd.Timestamp) -> pd.DataFrame:
        return self._fetch(ITEM_ID, item_ids, self._item_refs, cols.ITEM_FEATURES)

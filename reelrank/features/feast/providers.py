"""Feature providers backed by Feast: point-in-time retrieval (the offline store's parquet,
read with DuckDB) and the online store (latest values, with a deadline).

Both return, for the requested ids in order, a frame indexed by the entity id whose
columns are the stored features of ``ranker_v1`` (``USER_FEATURES`` or ``ITEM_FEATURES``)
as float64; unknown ids (or rows older than the view's ttl) give NaN.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from reelrank.exceptions import FeatureStoreError
from reelrank.features import columns as cols
from reelrank.features.protocol import as_feature_frame, to_utc
from reelrank.schema import ITEM_ID, USER_ID

if TYPE_CHECKING:
    from feast import FeatureStore

    from reelrank.features.offline import TableKind


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
    """Point-in-time features from the Feast offline store (the views' parquet sources).

    Read as :func:`~reelrank.features.feast.store.historical_features` reads them: the
    latest change row per entity at or before ``as_of`` through DuckDB, the day-varying
    columns derived as of ``as_of``; memory grows with the ids asked for.

    Args:
        store: an applied FeatureStore (``reelrank.features.feast.store.apply_definitions``).
        service: feature service whose features are served.
    """

    def __init__(self, store: FeatureStore, service: str = cols.FEATURE_SERVICE) -> None:
        super().__init__(store, service)
        from reelrank.features.feast.store import source_path, views_end

        self._paths = {
            name: source_path(store.get_feature_view(name))
            for name in (cols.USER_VIEW, cols.ITEM_VIEW)
        }
        self._end = views_end(store)

    def _fetch(
        self,
        kind: TableKind,
        view: str,
        key: str,
        ids: Sequence[int],
        as_of: pd.Timestamp,
        features: tuple[str, ...],
    ) -> pd.DataFrame:
        from reelrank.features.offline import values_as_of

        unique = pd.unique(np.asarray(ids, dtype="int64"))
        if len(unique) == 0:
            empty = pd.DataFrame(columns=[key, *features])
            return as_feature_frame(empty, key, ids, features)
        frame = values_as_of(kind, self._paths[view], to_utc(as_of), self._end, unique)
        return as_feature_frame(frame, key, ids, features)

    def user_features(self, user_ids: Sequence[int], as_of: pd.Timestamp) -> pd.DataFrame:
        return self._fetch("user", cols.USER_VIEW, USER_ID, user_ids, as_of, cols.USER_FEATURES)

    def item_features(self, item_ids: Sequence[int], as_of: pd.Timestamp) -> pd.DataFrame:
        return self._fetch("item", cols.ITEM_VIEW, ITEM_ID, item_ids, as_of, cols.ITEM_FEATURES)


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
        return as_feature_frame(frame, key, ids, features)

    def user_features(self, user_ids: Sequence[int], as_of: pd.Timestamp) -> pd.DataFrame:
        return self._fetch(USER_ID, user_ids, self._user_refs, cols.USER_FEATURES)

    def item_features(self, item_ids: Sequence[int], as_of: pd.Timestamp) -> pd.DataFrame:
        return self._fetch(ITEM_ID, item_ids, self._item_refs, cols.ITEM_FEATURES)

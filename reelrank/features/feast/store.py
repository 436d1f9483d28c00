"""The Feast feature store as library calls: write, apply, materialize, retrieve.

The repo definitions are built by :mod:`reelrank.features.feast.definitions` (the ``features/``
repo binds the same objects for the ``feast`` CLI); the registry and the SQLite online
store live under ``Settings().feast_path``; the offline parquet under
``Settings().features_path``. The online store is SQLite unless
``REELRANK_ONLINE_STORE=redis`` (then ``REELRANK_REDIS_URL``).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from reelrank.config import Settings
from reelrank.data.io import AtomicBatch
from reelrank.exceptions import FeatureStoreError
from reelrank.features import columns as cols
from reelrank.features.feast.definitions import (
    ITEM_FEATURES_FILE,
    USER_FEATURES_FILE,
    build_definitions,
)
from reelrank.features.feast.repo_config import (
    PROJECT,
    offline_dir,
    online_store_config,
    registry_path,
    repo_config,
)
from reelrank.schema import EARLIEST_TIMESTAMP, EVENT_TIMESTAMP, ITEM_ID, USER_ID

if TYPE_CHECKING:
    from feast import FeatureStore

logger = logging.getLogger(__name__)

_ROW: str = "__reelrank_row"
_STORES: dict[tuple[str, str, str], FeatureStore] = {}
_STORES_LOCK = threading.Lock()


def user_features_path(settings: Settings) -> Path:
    """``<features_path>/user_features.parquet``."""
    return offline_dir(settings) / USER_FEATURES_FILE


def item_features_path(settings: Settings) -> Path:
    """``<features_path>/item_features.parquet``."""
    return offline_dir(settings) / ITEM_FEATURES_FILE


def _check_table(table: pd.DataFrame, key: str, features: tuple[str, ...], what: str) -> None:
    missing = [c for c in (key, EVENT_TIMESTAMP, *features) if c not in table.columns]
    if missing:
        raise FeatureStoreError(
            f"{what} table lacks column(s) {missing[:5]}; build it with "
            f"reelrank.features.build_{what}_features."
        )


def write_offline_features(
    user_table: pd.DataFrame, item_table: pd.DataFrame, settings: Settings
) -> tuple[Path, Path]:
    """Write both feature tables as parquet atomically (both or neither); returns the paths."""
    _check_table(user_table, USER_ID, cols.USER_FEATURES, "user")
    _check_table(item_table, ITEM_ID, cols.ITEM_FEATURES, "item")
    user_path, item_path = user_features_path(settings), item_features_path(settings)
    user_path.parent.mkdir(parents=True, exist_ok=True)
    with AtomicBatch() as batch:
        batch.write_parquet(user_table[[USER_ID, EVENT_TIMESTAMP, *cols.USER_FEATURES]], user_path)
        batch.write_parquet(item_table[[ITEM_ID, EVENT_TIMESTAMP, *cols.ITEM_FEATURES]], item_path)
    logger.info(
        "offline features written: %s (%d rows), %s (%d rows)",
        user_path,
        len(user_table),
        item_path,
        len(item_table),
    )
    return user_path, item_path


def get_feature_store(settings: Settings, project: str = PROJECT) -> FeatureStore:
    """The FeatureStore for these settings (one per process and configuration, reused)."""
    key = (str(registry_path(settings)), repr(online_store_config(settings)), project)
    with _STORES_LOCK:
        store = _STORES.get(key)
        if store is None:
            from feast import FeatureStore

            started = time.perf_counter()
            registry_path(settings).parent.mkdir(parents=True, exist_ok=True)
            store = FeatureStore(config=repo_config(settings, project))
            _STORES[key] = store
            logger.info("feature store %s opened in %.1fs", project, time.perf_counter() - started)
        return store


def forget_feature_stores() -> None:
    """Drop the cached FeatureStore objects (tests that change settings)."""
    with _STORES_LOCK:
        _STORES.clear()


def apply_definitions(settings: Settings, project: str = PROJECT) -> FeatureStore:
    """``feast apply`` of the ReelRank definitions to the registry; returns the store."""
    for path in (user_features_path(settings), item_features_path(settings)):
        if not path.exists():
            raise FeatureStoreError(
                f"offline features {path} are missing; build and write them first "
                "(reelrank features, or write_offline_features)."
            )
    store = get_feature_store(settings, project)
    definitions = build_definitions(offline_dir(settings))
    started = time.perf_counter()
    store.apply(definitions.objects())
    logger.info("feast apply (%s) in %.1fs", project, time.perf_counter() - started)
    return store


def latest_feature_time(settings: Settings) -> datetime:
    """The newest ``event_timestamp`` across both offline tables (the dataset's 'now')."""
    latest: list[pd.Timestamp] = []
    for path in (user_features_path(settings), item_features_path(settings)):
        if not path.exists():
            raise FeatureStoreError(f"offline features {path} are missing; build them first.")
        column = pq.read_table(path, columns=[EVENT_TIMESTAMP]).column(0).to_pandas()
        if len(column):
            latest.append(pd.Timestamp(column.max()))
    if not latest:
        raise FeatureStoreError("the offline feature tables are empty; nothing to materialize.")
    return max(latest).tz_convert("UTC").to_pydatetime()


def materialize(
    settings: Settings,
    end: datetime | None = None,
    incremental: bool = True,
    project: str = PROJECT,
) -> dict[str, tuple[datetime, datetime]]:
    """Load the latest feature rows into the online store.

    The first run (or ``incremental=False``) loads each view over ``[end - ttl, end]``, the
    rows Feast's historical retrieval at ``end`` can return, so online and offline agree;
    later runs continue from the view's last materialized end. ``end`` defaults to the
    newest ``event_timestamp`` of the offline tables (dataset time, not the wall clock).

    Returns:
        ``{view name: (start, end)}`` of the intervals materialized (skipped views absent).
    """
    store = get_feature_store(settings, project)
    end_time = pd.Timestamp(end if end is not None else latest_feature_time(settings))
    end_time = end_time.tz_localize("UTC") if end_time.tzinfo is None else end_time
    done: dict[str, tuple[datetime, datetime]] = {}
    views = store.list_feature_views()
    if not views:
        raise FeatureStoreError(
            f"no feature views in the registry {registry_path(settings)}; run apply first."
        )
    for view in views:
        previous = view.most_recent_end_time
        if incremental and previous is not None:
            start = pd.Timestamp(previous)
            start = start.tz_localize("UTC") if start.tzinfo is None else start
        elif view.ttl is not None and view.ttl.total_seconds() > 0:
            start = end_time - view.ttl
        else:
            start = EARLIEST_TIMESTAMP
        if start >= end_time:
            logger.info("materialize %s: up to date at %s", view.name, end_time)
            continue
        started = time.perf_counter()
        store.materialize(
            start_date=start.to_pydatetime(),
            end_date=end_time.to_pydatetime(),
            feature_views=[view.name],
        )
        logger.info(
            "materialized %s over %s..%s in %.1fs",
            view.name,
            start,
            end_time,
            time.perf_counter() - started,
        )
        done[view.name] = (start.to_pydatetime(), end_time.to_pydatetime())
    return done


def historical_features(
    store: FeatureStore, entity_df: pd.DataFrame, service: str = cols.FEATURE_SERVICE
) -> pd.DataFrame:
    """Point-in-time join of ``entity_df`` with the features of ``service``.

    Feast's file (dask) offline store drops an entity row whose entity has feature rows
    but none valid at its time (all later, or older than the ttl), and merges identical
    rows. So each view is retrieved on the distinct ``(join key, event_timestamp)`` pairs
    and joined back: a pair Feast dropped has, by that rule, no valid row, i.e. nulls.

    Args:
        store: an applied FeatureStore.
        entity_df: the view join keys (``user_id``, ``item_id``), ``event_timestamp``
            (UTC) and any label columns, which are kept.
        service: feature service name.

    Returns:
        ``entity_df``'s columns plus the service's features, in ``entity_df``'s row order
        and index. Rows with no feature row within the ttl get nulls.
    """
    if EVENT_TIMESTAMP not in entity_df.columns:
        raise FeatureStoreError("entity_df lacks event_timestamp; give the label times (UTC).")
    result = entity_df.copy()
    result[EVENT_TIMESTAMP] = pd.to_datetime(result[EVENT_TIMESTAMP], utc=True)
    try:
        feature_service = store.get_feature_service(service)
    except Exception as error:  # Feast raises its own not-found types
        raise FeatureStoreError(
            f"feature service {service!r} is not in the registry ({error}); run apply first."
        ) from error
    for projection in feature_service.feature_view_projections:
        view = store.get_feature_view(projection.name)
        keys = [column.name for column in view.entity_columns]
        missing = [k for k in keys if k not in result.columns]
        if missing:
            raise FeatureStoreError(
                f"entity_df lacks {missing}, the join key(s) of view {view.name!r}."
            )
        refs = [f"{projection.name_to_use()}:{f.name}" for f in projection.features]
        names = [f.name for f in projection.features]
        pairs = result[[*keys, EVENT_TIMESTAMP]].drop_duplicates(ignore_index=True)
        pairs[_ROW] = np.arange(len(pairs))
        got = store.get_historical_features(entity_df=pairs, features=refs).to_df()
        pairs = pairs.merge(got[[_ROW, *names]], on=_ROW, how="left").drop(columns=[_ROW])
        result = result.merge(pairs, on=[*keys, EVENT_TIMESTAMP], how="left")
    result.index = entity_df.index
    return result

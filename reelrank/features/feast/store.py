"""The Feast feature store as library calls: write, apply, materialize, retrieve.

The offline parquet holds *change rows* (:mod:`reelrank.features.builders`): a row when a
stored value changes, the day-varying columns as of the row. Every read here goes
through DuckDB over the parquet (never a whole table in memory) and derives those columns
as of the read time (:mod:`reelrank.features.point_in_time`): :func:`historical_features`
and :class:`~reelrank.features.feast.providers.FeastOfflineProvider` (point-in-time
retrieval) and :func:`materialize` (the latest row of each entity, in chunks, written
through Feast into its online store). Feast's own file-store retrieval of these files
would return the day-varying columns as of each row, not as of the read.

The repo definitions are built by :mod:`reelrank.features.feast.definitions` (the ``features/``
repo binds the same objects for the ``feast`` CLI); the registry and the SQLite online
store live under ``Settings().feast_path``; the offline parquet under
``Settings().features_path``. The online store is SQLite unless
``REELRANK_ONLINE_STORE=redis`` (then ``REELRANK_REDIS_URL``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pandas as pd

from reelrank.config import Settings
from reelrank.data.io import AtomicBatch, atomic_write_json, remove_stale_temps
from reelrank.exceptions import FeatureStoreError
from reelrank.features import columns as cols
from reelrank.features import offline
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
from reelrank.features.protocol import to_utc
from reelrank.schema import EARLIEST_TIMESTAMP, EVENT_TIMESTAMP, ITEM_ID, USER_ID, Dataset

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

logger = logging.getLogger(__name__)

ONLINE_WRITE_ROWS: Final = 10_000
"""Entities written to the online store per call (bounds the protos Feast builds at once)."""
_STORES: dict[tuple[str, str, str, str], FeatureStore] = {}
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
            f"reelrank.features.builders.build_{what}_change_rows."
        )


def write_offline_features(
    user_table: pd.DataFrame, item_table: pd.DataFrame, settings: Settings
) -> tuple[Path, Path]:
    """Write two change-row tables held in memory as parquet atomically (both or neither).

    For small data (tests, benchmarks); the pipeline writes block by block with
    :func:`stage_feature_table` and :func:`publish_feature_tables`.
    """
    _check_table(user_table, USER_ID, cols.USER_FEATURES, "user")
    _check_table(item_table, ITEM_ID, (*cols.ITEM_FEATURES, cols.ITEM_RATING_SUM), "item")
    user_path, item_path = user_features_path(settings), item_features_path(settings)
    user_path.parent.mkdir(parents=True, exist_ok=True)
    with AtomicBatch() as batch:
        batch.write_parquet(user_table[list(offline.USER_COLUMNS)], user_path)
        batch.write_parquet(item_table[list(offline.ITEM_COLUMNS)], item_path)
    logger.info(
        "offline features written: %s (%d rows), %s (%d rows)",
        user_path,
        len(user_table),
        item_path,
        len(item_table),
    )
    return user_path, item_path


def _table_path(settings: Settings, kind: offline.TableKind) -> Path:
    return user_features_path(settings) if kind == "user" else item_features_path(settings)


def staged_path(settings: Settings, kind: offline.TableKind) -> Path:
    """Where :func:`stage_feature_table` writes a complete table before it is published."""
    path = _table_path(settings, kind)
    return path.with_name(path.name + offline.STAGED_SUFFIX)


def stage_feature_table(
    kind: offline.TableKind, dataset: Dataset, settings: Settings
) -> offline.TableStats:
    """Build one change-row table from the lake and write it beside its target, complete
    (block by block, bounded memory); :func:`publish_feature_tables` makes it live."""
    path = staged_path(settings, kind)
    remove_stale_temps(path)
    return offline.write_table(kind, dataset.events, dataset.users, dataset.items, path)


def publish_feature_tables(settings: Settings) -> tuple[Path, Path]:
    """Rename both staged tables over the offline tables, together (both were written
    completely first, so the store never holds half a table or a mix of two builds)."""
    pairs = [(staged_path(settings, k), _table_path(settings, k)) for k in ("user", "item")]
    missing = [str(staged) for staged, _ in pairs if not staged.exists()]
    if missing:
        raise FeatureStoreError(
            f"staged feature tables {missing} are missing; stage both tables first."
        )
    for staged, target in pairs:
        os.replace(staged, target)
    directory = os.open(pairs[0][1].parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the renames survive a crash
    finally:
        os.close(directory)
    return pairs[0][1], pairs[1][1]


def write_feature_tables(dataset: Dataset, settings: Settings) -> list[offline.TableStats]:
    """Both offline tables from the lake, block by block, published together."""
    stats = [stage_feature_table(kind, dataset, settings) for kind in ("user", "item")]
    publish_feature_tables(settings)
    return stats


def get_feature_store(settings: Settings, project: str = PROJECT) -> FeatureStore:
    """The FeatureStore for these settings (one per process and configuration, reused)."""
    engine = f"{settings.engine}:{settings.ray_address}"  # the offline store and batch engine
    key = (str(registry_path(settings)), repr(online_store_config(settings)), project, engine)
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
    paths = [user_features_path(settings), item_features_path(settings)]
    for path in paths:
        if not path.exists():
            raise FeatureStoreError(f"offline features {path} are missing; build them first.")
    latest = offline.table_end(paths)
    if latest is None:
        raise FeatureStoreError("the offline feature tables are empty; nothing to materialize.")
    return latest.to_pydatetime()


def view_kind(view_name: str) -> offline.TableKind:
    """Which change table a ReelRank view reads (``user_features`` or ``item_features``)."""
    if view_name == cols.USER_VIEW:
        return "user"
    if view_name == cols.ITEM_VIEW:
        return "item"
    raise FeatureStoreError(f"{view_name!r} is not a ReelRank feature view.")


def source_path(view: FeatureView) -> Path:
    """The parquet file a view's ``FileSource`` reads."""
    return Path(str(getattr(view.batch_source, "path", "")))


def views_end(store: FeatureStore) -> pd.Timestamp:
    """The tables' last snapshot day, over every view's source."""
    latest = offline.table_end([source_path(view) for view in store.list_feature_views()])
    if latest is None:
        raise FeatureStoreError("the offline feature tables are empty; build them first.")
    return latest


def _write_online(
    store: FeatureStore, view: FeatureView, values: pd.DataFrame, when: pd.Timestamp
) -> None:
    """``values`` (key + features) into the online store, stamped ``when``, in chunks."""
    names = [field.name for field in view.features]
    key = [column.name for column in view.entity_columns]
    for lo in range(0, len(values), ONLINE_WRITE_ROWS):
        chunk = values.iloc[lo : lo + ONLINE_WRITE_ROWS][[*key, *names]].copy()
        chunk.insert(len(key), EVENT_TIMESTAMP, when)
        store.write_to_online_store(view.name, df=chunk)


SOURCES_FILE: Final = "materialized_sources.json"
"""Beside the registry, per ``project/view``: the source file as it was when last
materialized (``source``: mtime in ns and size) and the online rows' timestamp then
(``written``)."""


def _sources_path(settings: Settings) -> Path:
    return registry_path(settings).parent / SOURCES_FILE


def _source_stamp(view: FeatureView) -> list[int]:
    """``[mtime_ns, size]`` of the view's source parquet (rewritten by every feature build)."""
    stat = source_path(view).stat()
    return [stat.st_mtime_ns, stat.st_size]


def _read_stamps(settings: Settings) -> dict[str, dict[str, object]]:
    path = _sources_path(settings)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # unreadable: treat every source as changed (safe)
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, dict)}


def _write_time(end_time: pd.Timestamp, written: object) -> pd.Timestamp:
    """The online rows' timestamp: ``end_time``, or just after the last write's when a
    rebuilt source restates the same end (Redis keeps a row only if it is newer than the
    stored one)."""
    if not isinstance(written, str):
        return end_time
    last = to_utc(pd.Timestamp(written))
    return end_time if end_time > last else last + pd.Timedelta(microseconds=1)


def _interval_start(
    view: FeatureView, end_time: pd.Timestamp, incremental: bool, source_changed: bool
) -> tuple[pd.Timestamp, bool]:
    """Where the interval to materialize starts, and whether it continues a previous one.

    A source rebuilt since the last materialization whose end did not move (late data:
    new rows at or before the end already materialized) is not "up to date": it restates
    the last day, whose new rows would otherwise never reach the online store (measured in
    a loop run: the served users' online ``user_days_since_last_event`` had mean 5.6 days
    where the offline tables said 2.8)."""
    previous = view.most_recent_end_time
    if incremental and previous is not None:
        start = to_utc(previous)
        if source_changed and start >= end_time:
            start = end_time - pd.Timedelta(days=1)
        return start, True
    if view.ttl is not None and view.ttl.total_seconds() > 0:
        return end_time - view.ttl, False
    return EARLIEST_TIMESTAMP, False


def materialize(
    settings: Settings,
    end: datetime | None = None,
    incremental: bool = True,
    project: str = PROJECT,
) -> dict[str, tuple[datetime, datetime]]:
    """Load every entity's values as of ``end`` into the online store.

    Each view's latest change row per entity at or before ``end`` (within the ttl) is read
    with DuckDB, its day-varying columns derived as of ``end``, and written in chunks of
    ``ONLINE_WRITE_ROWS``: memory grows with the entities, never with the table. The
    first run (or ``incremental=False``) writes every entity Feast's historical retrieval
    at ``end`` can return, so online and offline agree; a later run writes the users whose
    values moved since the view's last materialized end (a row since then, or recency not
    yet capped then) and every item (ranks and ages move daily). A view whose source was
    rebuilt since its last materialization is written again even when the end did not move
    (late data; the source's mtime and size are kept in :data:`SOURCES_FILE`). ``end``
    defaults to the newest ``event_timestamp`` of the offline tables (dataset time, not the
    wall clock).

    Returns:
        ``{view name: (start, end)}`` of the intervals materialized (skipped views absent).
    """
    store = get_feature_store(settings, project)
    end_time = to_utc(end if end is not None else latest_feature_time(settings))
    done: dict[str, tuple[datetime, datetime]] = {}
    views = store.list_feature_views()
    if not views:
        raise FeatureStoreError(
            f"no feature views in the registry {registry_path(settings)}; run apply first."
        )
    tables_end = views_end(store)
    stamps = _read_stamps(settings)
    for view in views:
        stamp_key = f"{project}/{view.name}"
        stamp = _source_stamp(view)
        last = stamps.get(stamp_key, {})
        start, continues = _interval_start(
            view, end_time, incremental, source_changed=last.get("source") != stamp
        )
        if start >= end_time:
            logger.info("materialize %s: up to date at %s", view.name, end_time)
            continue
        started = time.perf_counter()
        kind = view_kind(view.name)
        moved_since = start - pd.Timedelta(days=cols.RECENCY_CAP_DAYS)
        since = moved_since if continues and kind == "user" else None
        values = offline.values_as_of(kind, source_path(view), end_time, tables_end, since=since)
        written = _write_time(end_time, last.get("written"))
        _write_online(store, view, values, written)
        store.registry.apply_materialization(
            view, store.project, start.to_pydatetime(), end_time.to_pydatetime()
        )
        stamps[stamp_key] = {"source": stamp, "written": written.isoformat()}
        atomic_write_json(stamps, _sources_path(settings))
        logger.info(
            "materialized %s: %d entities as of %s in %.1fs",
            view.name,
            len(values),
            end_time,
            time.perf_counter() - started,
        )
        done[view.name] = (start.to_pydatetime(), end_time.to_pydatetime())
    return done


def historical_features(
    store: FeatureStore, entity_df: pd.DataFrame, service: str = cols.FEATURE_SERVICE
) -> pd.DataFrame:
    """Point-in-time join of ``entity_df`` with the features of ``service``.

    For every view of the service and every distinct time of ``entity_df``, the latest
    change row of each entity at or before that time (within the view's ttl) is read from
    the view's parquet with DuckDB and its day-varying columns derived as of the time:
    the value the daily snapshot definition gives, without loading the table.

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
    tables_end = views_end(store)
    for projection in feature_service.feature_view_projections:
        view = store.get_feature_view(projection.name)
        keys = [column.name for column in view.entity_columns]
        missing = [k for k in keys if k not in result.columns]
        if missing:
            raise FeatureStoreError(
                f"entity_df lacks {missing}, the join key(s) of view {view.name!r}."
            )
        names = [f.name for f in projection.features]
        pairs = result[[*keys, EVENT_TIMESTAMP]].drop_duplicates(ignore_index=True)
        parts = []
        for when, group in pairs.groupby(EVENT_TIMESTAMP, sort=True):
            values = offline.values_as_of(
                view_kind(view.name),
                source_path(view),
                pd.Timestamp(when),  # type: ignore[arg-type]
                tables_end,
                group[keys[0]].unique(),
            )
            parts.append(group.merge(values[[*keys, *names]], on=keys, how="left"))
        empty = pairs.assign(**dict.fromkeys(names))
        found = pd.concat(parts, ignore_index=True) if parts else empty
        result = result.merge(found, on=[*keys, EVENT_TIMESTAMP], how="left")
    result.index = entity_df.index
    return result

"""The Feast store: definitions, point-in-time retrieval equals the library, no skew."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reelrank.features import (
    ITEM_FEATURES,
    USER_FEATURES,
    InMemoryFeatureProvider,
)
from reelrank.features import columns as cols
from reelrank.features.feast.providers import FeastOfflineProvider, FeastOnlineProvider
from reelrank.features.feast.repo_config import FEAST_REPO_DIR, redis_connection_string
from reelrank.features.feast.store import historical_features, materialize
from reelrank.features.protocol import FeatureProvider
from reelrank.schema import EVENT_TIMESTAMP, ITEM_ID, USER_ID
from tests.features.conftest import SPIKE_DAY, BuiltStore, assert_late_rows_reach_online

pytestmark = pytest.mark.xdist_group("feast-store")


def test_views_and_service_are_registered_with_descriptions(built_store: BuiltStore):
    store = built_store.store
    views = {view.name: view for view in store.list_feature_views()}
    assert set(views) == {cols.USER_VIEW, cols.ITEM_VIEW}
    user_view = views[cols.USER_VIEW]
    assert [f.name for f in user_view.features] == list(USER_FEATURES)
    assert all(f.description for f in user_view.features)
    assert user_view.ttl == cols.USER_TTL
    assert user_view.owner
    service = store.get_feature_service(cols.FEATURE_SERVICE)
    served = [f.name for p in service.feature_view_projections for f in p.features]
    assert sorted(served) == sorted(USER_FEATURES + ITEM_FEATURES)
    assert service.tags["version"] == "1"


def _labels(built: BuiltStore, n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = built.item_table[EVENT_TIMESTAMP].min() - pd.Timedelta(days=2)
    seconds = rng.uniform(0, 160 * 86400, n)
    times = start + pd.to_timedelta(seconds, unit="s")
    times = times.append(pd.DatetimeIndex([SPIKE_DAY + pd.Timedelta(hours=16)] * 2))
    return pd.DataFrame(
        {
            USER_ID: np.r_[rng.integers(0, 27, n), [0, 0]],  # 25, 26 are unknown users
            ITEM_ID: np.r_[rng.integers(0, 16, n), [0, 0]],
            EVENT_TIMESTAMP: times,
            "label": rng.integers(0, 2, n + 2),
        }
    )


def test_historical_retrieval_equals_the_library(built_store: BuiltStore):
    labels = _labels(built_store)
    feast = historical_features(built_store.store, labels)
    library = InMemoryFeatureProvider(built_store.user_table, built_store.item_table).join(labels)
    assert list(feast.index) == list(labels.index)
    pd.testing.assert_series_equal(feast["label"], labels["label"])
    features = list(USER_FEATURES + ITEM_FEATURES)
    got = feast[features].astype("float64")
    want = library[features].astype("float64")
    assert want.notna().any(axis=None)
    assert want.isna().any(axis=None)  # before first rows / unknown ids: both null
    pd.testing.assert_frame_equal(got, want, check_exact=True)


def test_online_store_equals_offline_store_at_materialization_time(built_store: BuiltStore):
    _, end = built_store.materialized[cols.ITEM_VIEW]
    online = FeastOnlineProvider(built_store.store, timeout_ms=5_000)
    offline = FeastOfflineProvider(built_store.store)
    assert isinstance(online, FeatureProvider)
    users = sorted(built_store.user_table[USER_ID].unique())
    items = sorted(built_store.item_table[ITEM_ID].unique())
    when = pd.Timestamp(end)
    online_users = online.user_features(users, when)
    pd.testing.assert_frame_equal(online_users, offline.user_features(users, when))
    pd.testing.assert_frame_equal(
        online.item_features(items, when), offline.item_features(items, when)
    )
    assert online_users.notna().any(axis=None)
    in_memory = InMemoryFeatureProvider(built_store.user_table, built_store.item_table)
    pd.testing.assert_frame_equal(online_users, in_memory.user_features(users, when))


def test_online_provider_gives_nan_for_unknown_ids(built_store: BuiltStore):
    out = FeastOnlineProvider(built_store.store).item_features([0, 12345], pd.Timestamp.now())
    assert list(out.index) == [0, 12345]
    assert out.loc[12345].isna().all()
    assert out.loc[0].notna().any()


def test_materialize_again_is_incremental_and_a_no_op(built_store: BuiltStore):
    assert set(built_store.materialized) == {cols.USER_VIEW, cols.ITEM_VIEW}
    assert materialize(built_store.settings) == {}


def test_feast_cli_lists_the_views(built_store: BuiltStore):
    env = {
        **os.environ,
        "REELRANK_DATA_DIR": str(built_store.settings.data_dir),
        "REELRANK_ONLINE_STORE": "sqlite",
    }
    feast = Path(sys.executable).parent / "feast"
    result = subprocess.run(
        [str(feast), "-c", str(FEAST_REPO_DIR), "feature-views", "list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert cols.USER_VIEW in result.stdout
    assert cols.ITEM_VIEW in result.stdout


def test_redis_url_becomes_a_feast_connection_string():
    assert redis_connection_string("redis://127.0.0.1:6379/3") == "127.0.0.1:6379,db=3"
    assert redis_connection_string("redis://:pw@cache:6380") == "cache:6380,db=0,password=pw"


def test_incremental_materialization_moves_every_changed_value(world, tmp_path: Path):
    """A second materialization after more days of events rewrites each user whose values
    moved (new rows, or recency still counting) and every item: online equals offline."""
    from reelrank.config import Settings
    from reelrank.features.builders import build_item_change_rows, build_user_change_rows
    from reelrank.features.feast.store import apply_definitions, write_offline_features
    from reelrank.schema import TIMESTAMP

    settings = Settings(data_dir=tmp_path / "data", online_store="sqlite")
    cut = SPIKE_DAY + pd.Timedelta(days=5)
    intervals = []
    for events in (world.events[world.events[TIMESTAMP] < cut], world.events):
        write_offline_features(
            build_user_change_rows(events, world.users, world.items),
            build_item_change_rows(events, world.items),
            settings,
        )
        store = apply_definitions(settings, project="reelrank_incremental")
        intervals.append(materialize(settings, project="reelrank_incremental"))
    first, done = intervals
    assert done[cols.USER_VIEW][0] == first[cols.USER_VIEW][1]  # continued, not reloaded
    when = pd.Timestamp(done[cols.ITEM_VIEW][1])
    online, offline = FeastOnlineProvider(store), FeastOfflineProvider(store)
    users = sorted(world.events[USER_ID].unique())
    items = sorted(world.events[ITEM_ID].unique())
    got = online.user_features(users, when)
    pd.testing.assert_frame_equal(got, offline.user_features(users, when))
    pd.testing.assert_frame_equal(
        online.item_features(items, when), offline.item_features(items, when)
    )


def test_a_rebuilt_source_with_the_same_end_is_materialized_again(world, tmp_path: Path):
    """Late data (:func:`tests.features.conftest.assert_late_rows_reach_online`), SQLite."""
    from reelrank.config import Settings

    settings = Settings(data_dir=tmp_path / "data", online_store="sqlite")
    assert_late_rows_reach_online(settings, world, "reelrank_late")

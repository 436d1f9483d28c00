"""The Feast online store on a real Redis (127.0.0.1:6379, database 15, own project)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from reelrank.config import Settings
from reelrank.features import (
    InMemoryFeatureProvider,
    build_item_features,
    build_user_features,
)
from reelrank.features import columns as cols
from reelrank.features.builders import (
    build_item_change_rows,
    build_user_change_rows,
)
from reelrank.features.feast.providers import FeastOnlineProvider
from reelrank.features.feast.store import (
    apply_definitions,
    forget_feature_stores,
    materialize,
    write_offline_features,
)
from reelrank.schema import ITEM_ID, USER_ID
from tests.conftest import require_service
from tests.features.conftest import World, assert_late_rows_reach_online

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("feast-store")]

REDIS_URL = "redis://127.0.0.1:6379/15"


def _redis_up() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except Exception:
        return False


@pytest.fixture
def redis_settings(tmp_path: Path) -> Iterator[Settings]:
    require_service(_redis_up(), f"Redis at {REDIS_URL}")
    yield Settings(data_dir=tmp_path / "data", online_store="redis", redis_url=REDIS_URL)
    forget_feature_stores()


def test_apply_materialize_and_read_back_from_redis(redis_settings: Settings, world: World):
    project = f"reelrank_test_{os.getpid()}"
    users = build_user_features(world.events, world.users, world.items)
    items = build_item_features(world.events, world.items)
    write_offline_features(
        build_user_change_rows(world.events, world.users, world.items),
        build_item_change_rows(world.events, world.items),
        redis_settings,
    )
    store = apply_definitions(redis_settings, project=project)
    try:
        assert store.config.online_store.type == "redis"
        done = materialize(redis_settings, project=project)
        _, end = done[cols.ITEM_VIEW]
        online = FeastOnlineProvider(store, timeout_ms=5_000)
        expected = InMemoryFeatureProvider(users, items)
        user_ids = sorted(users[USER_ID].unique())
        item_ids = sorted(items[ITEM_ID].unique())
        when = pd.Timestamp(end)
        got_users = online.user_features(user_ids, when)
        assert got_users.notna().any(axis=None)
        pd.testing.assert_frame_equal(got_users, expected.user_features(user_ids, when))
        pd.testing.assert_frame_equal(
            online.item_features(item_ids, when), expected.item_features(item_ids, when)
        )
        _direct_reader_equals_the_sdk(redis_settings, project, got_users)
    finally:
        store.teardown()  # removes this project's keys from Redis


def _direct_reader_equals_the_sdk(settings: Settings, project: str, sdk: pd.DataFrame) -> None:
    """The serving path's direct HMGET reader returns what Feast's SDK returns."""
    import numpy as np

    from reelrank.exceptions import FeatureStoreError
    from serving.online.redis import RedisUserFeatureReader

    reader = RedisUserFeatureReader(settings.redis_url, project, cols.USER_VIEW, timeout_ms=2000)
    try:
        expected = sdk.reindex(columns=list(cols.USER_FEATURES))
        for user_id, row in expected.iterrows():
            np.testing.assert_array_equal(
                reader.read(int(user_id)), row.to_numpy(dtype=np.float64, na_value=np.nan)
            )
        assert np.isnan(reader.read(10**12)).all()  # an unknown user: every feature NaN
    finally:
        reader.close()
    unreachable = RedisUserFeatureReader(
        "redis://127.0.0.1:1/0", project, cols.USER_VIEW, timeout_ms=200
    )
    with pytest.raises(FeatureStoreError, match="Redis failed"):
        unreachable.read(1)


def test_a_rebuilt_source_with_the_same_end_reaches_redis(redis_settings: Settings, world: World):
    """Late data on Redis, which keeps a written row only if it is newer than the stored one:
    the restated rows are stamped just after the last write, so they land."""
    project = f"reelrank_late_{os.getpid()}"
    try:
        assert_late_rows_reach_online(redis_settings, world, project)
    finally:
        apply_definitions(redis_settings, project=project).teardown()

"""Change rows and the point-in-time provider give exactly the daily tables' as-of values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reelrank.data.synthetic import SyntheticConfig, generate_world
from reelrank.features import InMemoryFeatureProvider, build_item_features, build_user_features
from reelrank.features import columns as cols
from reelrank.features.builders import (
    build_item_change_rows,
    build_user_change_rows,
    iter_user_change_rows,
)
from reelrank.features.offline import table_end, values_as_of, write_table
from reelrank.features.point_in_time import PointInTimeFeatures
from reelrank.features.protocol import as_feature_frame
from reelrank.schema import EVENT_TIMESTAMP, ITEM_ID, TIMESTAMP, USER_ID
from tests.features.conftest import SPIKE_DAY, World


@pytest.fixture(scope="module")
def synthetic() -> World:
    world = generate_world(SyntheticConfig(n_users=150, n_items=120, n_events=8000, seed=5))
    return World(world.events(), world.users, world.items)


@pytest.fixture(params=["spike", "synthetic"])
def any_world(request: pytest.FixtureRequest, world: World, synthetic: World) -> World:
    return world if request.param == "spike" else synthetic


def _times(table: pd.DataFrame) -> list[pd.Timestamp]:
    """Every midnight from before the first row to long after the last, and times in
    the middle of days (an as-of lookup floors them to the previous midnight)."""
    first = table[EVENT_TIMESTAMP].min() - pd.Timedelta(days=2)
    last = table[EVENT_TIMESTAMP].max() + pd.Timedelta(days=400)
    midnights = list(pd.date_range(first, last, freq="23D"))
    odd = [first + pd.Timedelta(hours=37.3 * h) for h in range(0, 130, 11)]
    return [*midnights, *odd, last - pd.Timedelta(days=369), SPIKE_DAY + pd.Timedelta(hours=9)]


def _ids(world: World, key: str) -> list[int]:
    return list(range(-1, int(world.events[key].max()) + 3))  # with unknown ids


def test_point_in_time_provider_equals_the_daily_tables(any_world: World):
    daily = InMemoryFeatureProvider(
        build_user_features(any_world.events, any_world.users, any_world.items),
        build_item_features(any_world.events, any_world.items),
    )
    provider = PointInTimeFeatures(any_world.events, any_world.users, any_world.items)
    users, items = _ids(any_world, USER_ID), _ids(any_world, ITEM_ID)
    for when in _times(daily.item_table):
        pd.testing.assert_frame_equal(
            provider.user_features(users, when), daily.user_features(users, when)
        )
        pd.testing.assert_frame_equal(
            provider.item_features(items, when), daily.item_features(items, when)
        )


def test_change_rows_read_back_equal_the_daily_tables(any_world: World, tmp_path: Path):
    """The stores' tables: fewer rows, the same values at every time once derived."""
    user_daily = build_user_features(any_world.events, any_world.users, any_world.items)
    item_daily = build_item_features(any_world.events, any_world.items)
    paths = {kind: tmp_path / f"{kind}.parquet" for kind in ("user", "item")}
    for kind, path in paths.items():
        write_table(kind, any_world.events, any_world.users, any_world.items, path)
    stored = {kind: pd.read_parquet(path) for kind, path in paths.items()}
    assert len(stored["user"]) < len(user_daily)
    assert len(stored["item"]) < len(item_daily)
    end = table_end(list(paths.values()))
    assert end == item_daily[EVENT_TIMESTAMP].max()
    daily = InMemoryFeatureProvider(user_daily, item_daily)
    users, items = _ids(any_world, USER_ID), _ids(any_world, ITEM_ID)
    for when in _times(item_daily):
        got = values_as_of("user", paths["user"], when, end)
        pd.testing.assert_frame_equal(
            as_feature_frame(got, USER_ID, users, cols.USER_FEATURES),
            daily.user_features(users, when),
        )
        got = values_as_of("item", paths["item"], when, end)
        pd.testing.assert_frame_equal(
            as_feature_frame(got, ITEM_ID, items, cols.ITEM_FEATURES),
            daily.item_features(items, when),
        )


def test_user_change_rows_in_blocks_equal_one_build(synthetic: World):
    blocks = list(
        iter_user_change_rows(synthetic.events, synthetic.users, synthetic.items, chunk_events=900)
    )
    assert len(blocks) > 3
    for block in blocks:  # whole users per block, in user order
        assert block[USER_ID].is_monotonic_increasing
    assert not set(blocks[0][USER_ID]) & set(blocks[1][USER_ID])
    whole = build_user_change_rows(synthetic.events, synthetic.users, synthetic.items)
    pd.testing.assert_frame_equal(pd.concat(blocks, ignore_index=True), whole)


@pytest.mark.parametrize("days", [40, 100, 101, 131])
def test_change_row_values_never_move_because_of_later_events(
    world: World, tmp_path: Path, days: int
):
    """Truncating the events at a cutoff changes no value read at or before it."""
    cutoff = world.events[TIMESTAMP].min().floor("D") + pd.Timedelta(days=days, hours=7)
    early = world.events[world.events[TIMESTAMP] <= cutoff]
    ends = {}
    for name, events, end in (("full", world.events, None), ("cut", early, cutoff)):
        for kind in ("user", "item"):
            path = tmp_path / f"{name}-{kind}.parquet"
            write_table(kind, events, world.users, world.items, path, end=end)
        ends[name] = table_end([tmp_path / f"{name}-item.parquet"])
    for hours in (-30 * 24, -24 * 7, -25, -7, 0):
        when = cutoff + pd.Timedelta(hours=hours)
        for kind in ("user", "item"):
            full = values_as_of(kind, tmp_path / f"full-{kind}.parquet", when, ends["full"])
            cut = values_as_of(kind, tmp_path / f"cut-{kind}.parquet", when, ends["cut"])
            pd.testing.assert_frame_equal(full, cut)


def test_item_change_rows_carry_the_rating_sum(world: World):
    rows = build_item_change_rows(world.events, world.items)
    last = rows.sort_values(EVENT_TIMESTAMP).drop_duplicates(ITEM_ID, keep="last")
    sums = world.events.groupby(ITEM_ID)["rating"].sum()
    got = last.set_index(ITEM_ID)[cols.ITEM_RATING_SUM]
    np.testing.assert_allclose(got.reindex(sums.index), sums.to_numpy())
    assert (rows.groupby(ITEM_ID)[EVENT_TIMESTAMP].min() == rows[EVENT_TIMESTAMP].min()).all()

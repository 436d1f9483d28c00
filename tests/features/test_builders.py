"""Feature builders: point-in-time correctness and hand-checked values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reelrank.features import build_item_features, build_user_features
from reelrank.features import columns as cols
from reelrank.features.in_memory import InMemoryFeatureProvider
from reelrank.schema import (
    EVENT_TIMESTAMP,
    GENRES,
    ITEM_ID,
    RATING,
    RELEASE_DATE,
    TIMESTAMP,
    TITLE,
    USER_ID,
)
from tests.features.conftest import (
    DORMANT_USER,
    SPIKE_DAY,
    SPIKE_ITEM,
    SPIKE_USER,
    START,
    World,
)

CUTOFFS = [
    SPIKE_DAY - pd.Timedelta(minutes=1),  # just before the spike day
    SPIKE_DAY + pd.Timedelta(hours=15, minutes=20),  # in the middle of the spike
    SPIKE_DAY + pd.Timedelta(days=1),  # the midnight after the spike
    START + pd.Timedelta(days=60, hours=7),
]


def _truncate(world: World, cutoff: pd.Timestamp) -> pd.DataFrame:
    return world.events[world.events[TIMESTAMP] <= cutoff]


def _until(table: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    return table[table[EVENT_TIMESTAMP] <= cutoff].reset_index(drop=True)


@pytest.mark.parametrize("cutoff", CUTOFFS, ids=lambda t: str(t))
def test_no_user_feature_changes_because_of_later_events(world: World, cutoff: pd.Timestamp):
    full = build_user_features(world.events, world.users, world.items)
    truncated = build_user_features(_truncate(world, cutoff), world.users, world.items, end=cutoff)
    assert len(_until(full, cutoff)) > 0
    pd.testing.assert_frame_equal(_until(full, cutoff), _until(truncated, cutoff))


@pytest.mark.parametrize("cutoff", CUTOFFS, ids=lambda t: str(t))
def test_no_item_feature_changes_because_of_later_events(world: World, cutoff: pd.Timestamp):
    full = build_item_features(world.events, world.items)
    truncated = build_item_features(_truncate(world, cutoff), world.items, end=cutoff)
    pd.testing.assert_frame_equal(_until(full, cutoff), _until(truncated, cutoff))


def test_the_spike_shows_only_from_the_next_snapshot(world: World):
    """The comparison above can fail: the spike moves features, but only after it."""
    items = build_item_features(world.events, world.items).set_index([ITEM_ID, EVENT_TIMESTAMP])
    users = build_user_features(world.events, world.users, world.items)
    users = users.set_index([USER_ID, EVENT_TIMESTAMP])
    spike_day_row = items.loc[(SPIKE_ITEM, SPIKE_DAY)]
    next_row = items.loc[(SPIKE_ITEM, SPIKE_DAY + pd.Timedelta(days=1))]
    assert next_row[cols.ITEM_EVENTS_7D] - spike_day_row[cols.ITEM_EVENTS_7D] >= 30
    assert next_row[cols.ITEM_POPULARITY_RANK] == 1
    assert (SPIKE_USER, SPIKE_DAY) not in users.index  # no events before: no row yet
    assert users.loc[(SPIKE_USER, SPIKE_DAY + pd.Timedelta(days=1)), cols.USER_EVENTS_7D] == 40


def test_user_rows_stop_after_the_horizon_and_stay_exact(world: World):
    table = build_user_features(world.events, world.users, world.items)
    rows = table[table[USER_ID] == DORMANT_USER].set_index(EVENT_TIMESTAMP)
    day = pd.Timedelta(days=1)
    last_early = START + 9 * day  # second event's day
    assert rows.index.min() == START + 3 * day
    end_of_run = last_early + (cols.HORIZON_DAYS + 1) * day
    assert end_of_run in rows.index
    assert end_of_run + day not in rows.index  # gap: no rows while nothing changes
    assert rows.loc[end_of_run, cols.USER_EVENTS_90D] == 0
    assert rows.loc[end_of_run, cols.USER_DAYS_SINCE_LAST_EVENT] == cols.RECENCY_CAP_DAYS
    assert rows.loc[end_of_run, cols.USER_RATING_MEAN] == pytest.approx(3.0)
    # As-of lookups in the gap return that last row, which is the true value there.
    provider = InMemoryFeatureProvider(table, build_item_features(world.events, world.items))
    in_gap = provider.user_features([DORMANT_USER], START + 128 * day)
    assert in_gap.loc[DORMANT_USER, cols.USER_EVENTS_TOTAL] == 2
    assert in_gap.loc[DORMANT_USER, cols.USER_DAYS_SINCE_LAST_EVENT] == cols.RECENCY_CAP_DAYS
    back = rows.loc[START + 132 * day]
    assert back[cols.USER_EVENTS_7D] == 1
    assert back[cols.USER_EVENTS_TOTAL] == 3
    assert back[cols.USER_DAYS_SINCE_LAST_EVENT] == 1


def _tiny() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    t0 = pd.Timestamp("2020-03-01", tz="UTC")
    events = pd.DataFrame(
        {
            USER_ID: [1, 1, 1, 2],
            ITEM_ID: [10, 11, 10, 10],
            RATING: [4.0, 2.0, 5.0, 3.0],
            TIMESTAMP: [
                t0 + pd.Timedelta(hours=5),
                t0 + pd.Timedelta(days=1, hours=1),
                t0 + pd.Timedelta(days=10, hours=23),
                t0 + pd.Timedelta(days=10, hours=1),
            ],
        }
    )
    users = pd.DataFrame({USER_ID: [1, 2], "gender": ["F", None], "age": [31, None]})
    items = pd.DataFrame(
        {
            ITEM_ID: [10, 11, 12],
            TITLE: pd.array(["A", "B", "C"], dtype="string"),
            GENRES: [["Comedy", "Drama"], ["Drama"], []],
            RELEASE_DATE: pd.to_datetime(["2020-02-01", None, "2020-03-05"], utc=True),
        }
    )
    return events, users, items


def test_user_values_by_hand():
    events, users, items = _tiny()
    table = build_user_features(events, users, items).set_index([USER_ID, EVENT_TIMESTAMP])
    at = table.loc[(1, pd.Timestamp("2020-03-05", tz="UTC"))]  # after events 1 and 2
    assert at[cols.USER_EVENTS_7D] == 2
    assert at[cols.USER_RATING_MEAN] == pytest.approx(3.0)
    assert at[cols.USER_RATING_STD] == pytest.approx(np.std([4.0, 2.0], ddof=1))
    assert at[cols.USER_DAYS_SINCE_LAST_EVENT] == 3  # last event on 03-02
    assert at["user_genre_share_drama"] == pytest.approx(1.0)
    assert at["user_genre_share_comedy"] == pytest.approx(0.5)
    assert at[cols.USER_GENDER] == 1
    assert at[cols.USER_AGE] == 31
    assert at[cols.USER_ZIP_REGION] == -1  # no zip_code column
    later = table.loc[(1, pd.Timestamp("2020-03-12", tz="UTC"))]
    assert later[cols.USER_EVENTS_7D] == 1
    assert later[cols.USER_EVENTS_30D] == 3
    first = table.loc[(2, pd.Timestamp("2020-03-12", tz="UTC"))]
    assert np.isnan(first[cols.USER_RATING_STD])  # a single rating has no spread
    assert first[cols.USER_GENDER] == -1


def test_item_values_by_hand():
    events, _, items = _tiny()
    table = build_item_features(events, items).set_index([ITEM_ID, EVENT_TIMESTAMP])
    day = pd.Timestamp("2020-03-12", tz="UTC")
    item10 = table.loc[(10, day)]
    global_mean = events[RATING].mean()
    k = cols.BAYES_PRIOR_STRENGTH
    assert item10[cols.ITEM_EVENTS_TOTAL] == 3
    expected = (4.0 + 5.0 + 3.0 + k * global_mean) / (3 + k)
    assert item10[cols.ITEM_RATING_MEAN_BAYES] == pytest.approx(expected, rel=1e-6)
    assert item10[cols.ITEM_TREND_7D] == pytest.approx(
        (2 + 1) / (1 + 1)
    )  # 03-05..11 vs 02-27..03-04
    assert item10[cols.ITEM_POPULARITY_RANK] == 1
    assert item10[cols.ITEM_DAYS_SINCE_RELEASE] == 40
    assert item10["item_genre_comedy"]
    assert item10["item_genre_drama"]
    assert not item10["item_genre_action"]
    item11 = table.loc[(11, day)]
    assert item11[cols.ITEM_POPULARITY_RANK] == 2
    assert np.isnan(item11[cols.ITEM_DAYS_SINCE_RELEASE])
    item12 = table.loc[(12, day)]  # never rated: still has rows, no rank
    assert item12[cols.ITEM_EVENTS_TOTAL] == 0
    assert np.isnan(item12[cols.ITEM_POPULARITY_RANK])
    assert item12[cols.ITEM_RATING_MEAN_BAYES] == pytest.approx(global_mean, rel=1e-6)


def test_builders_are_deterministic(world: World):
    shuffled = world.events.sample(frac=1.0, random_state=3)
    a = build_item_features(world.events, world.items)
    b = build_item_features(shuffled, world.items)
    pd.testing.assert_frame_equal(a, b)
    c = build_user_features(world.events, world.users, world.items)
    d = build_user_features(shuffled, world.users, world.items)
    pd.testing.assert_frame_equal(c, d, check_exact=False, rtol=1e-6)


def test_feature_columns_and_keys(world: World):
    users = build_user_features(world.events, world.users, world.items)
    items = build_item_features(world.events, world.items)
    assert list(users.columns) == [USER_ID, EVENT_TIMESTAMP, *cols.USER_FEATURES]
    assert list(items.columns) == [ITEM_ID, EVENT_TIMESTAMP, *cols.ITEM_FEATURES]
    assert not users.duplicated([USER_ID, EVENT_TIMESTAMP]).any()
    assert not items.duplicated([ITEM_ID, EVENT_TIMESTAMP]).any()
    assert (users[EVENT_TIMESTAMP] == users[EVENT_TIMESTAMP].dt.normalize()).all()

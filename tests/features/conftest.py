"""Fixtures of the feature tests: a small world with a known future spike, and one
applied + materialized Feast store shared by the whole session (apply/materialize cost
seconds, mostly Feast's import)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reelrank.config import Settings
from reelrank.features import columns as cols
from reelrank.schema import (
    AGE,
    GENDER,
    GENRE_VOCAB,
    GENRES,
    ITEM_ID,
    OCCUPATION,
    RATING,
    RELEASE_DATE,
    TIMESTAMP,
    TITLE,
    USER_ID,
    ZIP_CODE,
)

START = pd.Timestamp("2001-01-01", tz="UTC")
N_DAYS = 150
SPIKE_DAY = START + pd.Timedelta(days=100)
SPIKE_ITEM = 0
SPIKE_USER = 0
DORMANT_USER = 1  # active in the first 10 days and again after day 130 (gap > horizon)


@dataclass(frozen=True)
class World:
    events: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame


def make_world(seed: int = 7, n_users: int = 25, n_items: int = 15, n_events: int = 900) -> World:
    """Random events over ``N_DAYS`` plus a spike at ``SPIKE_DAY``: the spike user rates
    the spike item (and others) 40 times that afternoon."""
    rng = np.random.default_rng(seed)
    offsets = rng.uniform(0, N_DAYS, n_events)
    users = rng.integers(2, n_users, n_events)
    events = pd.DataFrame(
        {
            USER_ID: users,
            ITEM_ID: rng.integers(0, n_items, n_events),
            RATING: rng.integers(1, 6, n_events).astype("float64"),
            TIMESTAMP: START + pd.to_timedelta(offsets, unit="D"),
        }
    )
    spike = pd.DataFrame(
        {
            USER_ID: SPIKE_USER,
            ITEM_ID: [SPIKE_ITEM] * 30 + list(range(1, 11)),
            RATING: 5.0,
            TIMESTAMP: SPIKE_DAY + pd.Timedelta(hours=15) + pd.to_timedelta(range(40), unit="min"),
        }
    )
    dormant = pd.DataFrame(
        {
            USER_ID: DORMANT_USER,
            ITEM_ID: [1, 2, 3, 4],
            RATING: [4.0, 2.0, 5.0, 3.0],
            TIMESTAMP: START + pd.to_timedelta([2.5, 9.2, 131.1, 140.7], unit="D"),
        }
    )
    events = pd.concat([events, spike, dormant], ignore_index=True)
    events[TIMESTAMP] = events[TIMESTAMP].astype("datetime64[ns, UTC]")
    user_frame = pd.DataFrame(
        {
            USER_ID: np.arange(n_users, dtype="int64"),
            AGE: rng.integers(18, 60, n_users),
            GENDER: rng.choice(["M", "F"], n_users),
            OCCUPATION: rng.choice(["engineer", "artist", "student", "other"], n_users),
            ZIP_CODE: rng.choice(["55105", "94043", "T8H1N", None], n_users),
        }
    )
    item_frame = pd.DataFrame(
        {
            ITEM_ID: np.arange(n_items, dtype="int64"),
            TITLE: pd.array([f"Movie {i}" for i in range(n_items)], dtype="string"),
            GENRES: [
                list(rng.choice(GENRE_VOCAB, rng.integers(0, 4), replace=False))
                for _ in range(n_items)
            ],
            RELEASE_DATE: (
                pd.Timestamp("1990-01-01", tz="UTC")
                + pd.to_timedelta(rng.integers(0, 4000, n_items), unit="D")
            ),
        }
    )
    return World(events, user_frame, item_frame)


@pytest.fixture(scope="session")
def world() -> World:
    return make_world()


@dataclass(frozen=True)
class BuiltStore:
    settings: Settings
    store: object
    user_table: pd.DataFrame
    item_table: pd.DataFrame
    materialized: dict[str, tuple[object, object]]


@pytest.fixture(scope="session")
def built_store(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltStore]:
    """Features of ``world`` written (the change rows the pipeline stores), applied and
    materialized into a SQLite store; the daily tables kept to compare against."""
    from reelrank.features import build_item_features, build_user_features
    from reelrank.features.builders import build_item_change_rows, build_user_change_rows
    from reelrank.features.feast.store import (
        apply_definitions,
        materialize,
        write_offline_features,
    )

    data_dir: Path = tmp_path_factory.mktemp("feast") / "data"
    settings = Settings(data_dir=data_dir, online_store="sqlite")
    user_table = build_user_features(world.events, world.users, world.items)
    item_table = build_item_features(world.events, world.items)
    write_offline_features(
        build_user_change_rows(world.events, world.users, world.items),
        build_item_change_rows(world.events, world.items),
        settings,
    )
    store = apply_definitions(settings)
    done = materialize(settings)
    return BuiltStore(settings, store, user_table, item_table, done)


def assert_late_rows_reach_online(settings: Settings, world: World, project: str) -> None:
    """Late data: the tables are rebuilt with events before their end (a play just after
    midnight had already moved the end a day on), so the end does not move. The rebuilt
    rows must still reach the online store: they used to wait a day, so the service and the
    drift monitor read day-old values. An unchanged source
    stays a no-op. Returns with the project's online rows in place (callers tear down)."""
    from reelrank.features.builders import build_item_change_rows, build_user_change_rows
    from reelrank.features.feast.providers import FeastOfflineProvider, FeastOnlineProvider
    from reelrank.features.feast.store import (
        apply_definitions,
        materialize,
        write_offline_features,
    )

    events = world.events[world.events[TIMESTAMP] < SPIKE_DAY + pd.Timedelta(days=5)]
    last_day = events[TIMESTAMP].max().floor("D")
    late = events[
        (events[TIMESTAMP] < last_day) & (events[TIMESTAMP] >= last_day - pd.Timedelta(days=1))
    ]
    assert len(late) > 0
    done = []
    for batch in (events.drop(late.index), events):
        write_offline_features(
            build_user_change_rows(batch, world.users, world.items),
            build_item_change_rows(batch, world.items),
            settings,
        )
        store = apply_definitions(settings, project=project)
        done.append(materialize(settings, project=project))
    first, again = done
    assert cols.USER_VIEW in again, "the rebuilt user table was skipped as up to date"
    assert again[cols.USER_VIEW][1] == first[cols.USER_VIEW][1]  # the end did not move
    when = pd.Timestamp(again[cols.USER_VIEW][1])
    users = sorted(late[USER_ID].unique())
    online, offline = FeastOnlineProvider(store), FeastOfflineProvider(store)
    pd.testing.assert_frame_equal(
        online.user_features(users, when), offline.user_features(users, when)
    )
    assert materialize(settings, project=project) == {}  # nothing new: a no-op

"""Fixtures of the model tests: small worlds and fast hyperparameters."""

from __future__ import annotations

import pandas as pd
import pytest

from reelrank.schema import GENRES, ITEM_ID
from tests.model.worlds import make_genre_world

FAST = {
    "n_candidates": 40,
    "sources__mf__iterations": 8,
    "sources__mf__factors": 16,
    "ranker_windows": 2,
    "ranker_label_fraction": 0.1,
    "ranker__n_estimators": 40,
    "ranker__num_leaves": 15,
    "ranker__min_child_samples": 20,
}
"""Hyperparameters that keep fits on the small worlds to about a second."""


@pytest.fixture
def fast_params() -> dict:
    return {key: (dict(value) if isinstance(value, dict) else value) for key, value in FAST.items()}


@pytest.fixture(scope="session")
def genre_world() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return make_genre_world()


@pytest.fixture(scope="session")
def item_genre(genre_world) -> dict[int, str]:
    items = genre_world[2]
    return {int(i): g[0] for i, g in zip(items[ITEM_ID], items[GENRES], strict=True)}


@pytest.fixture(scope="session")
def fitted_genre_model(genre_world):
    from reelrank import Recommender

    events, users, items = genre_world
    return Recommender(random_state=0).set_params(**FAST).fit(events, users, items)

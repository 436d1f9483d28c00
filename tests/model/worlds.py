"""Small worlds with known structure for the model tests (built in memory, never downloaded)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from reelrank.schema import (
    GENRES,
    ITEM_ID,
    RATING,
    RELEASE_DATE,
    TIMESTAMP,
    TITLE,
    USER_ID,
)

START = pd.Timestamp("2020-01-01", tz="UTC")
WORLD_GENRES = ("Comedy", "Horror", "Western", "Romance")
ITEMS_PER_GENRE = 30
SPAN_DAYS = 120


def make_genre_world(
    n_users: int = 160, events_per_user: int = 25, loyalty: float = 0.9, seed: int = 3
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Users each love one genre (``loyalty`` of their events); Zipf popularity within genre."""
    rng = np.random.default_rng(seed)
    n_genres = len(WORLD_GENRES)
    n_items = n_genres * ITEMS_PER_GENRE
    item_genre = np.repeat(np.arange(n_genres), ITEMS_PER_GENRE)
    popularity = np.tile(1.0 / np.arange(1, ITEMS_PER_GENRE + 1) ** 0.8, n_genres)
    rows = []
    for user in range(1, n_users + 1):
        favourite = user % n_genres
        weight = popularity * np.where(item_genre == favourite, loyalty, (1 - loyalty) / 3)
        chosen = rng.choice(n_items, size=events_per_user, replace=False, p=weight / weight.sum())
        first_day = rng.uniform(0, SPAN_DAYS * 0.7)
        days = np.sort(first_day + rng.uniform(0, SPAN_DAYS * 0.3, size=events_per_user))
        for item, day in zip(chosen, days, strict=True):
            loved = item_genre[item] == favourite
            rating = float(rng.integers(4, 6) if loved else rng.integers(1, 4))
            rows.append((user, int(item) + 1, rating, START + pd.Timedelta(days=float(day))))
    events = pd.DataFrame(rows, columns=[USER_ID, ITEM_ID, RATING, TIMESTAMP])
    events[TIMESTAMP] = pd.to_datetime(events[TIMESTAMP], utc=True)
    items = pd.DataFrame(
        {
            ITEM_ID: np.arange(1, n_items + 1, dtype=np.int64),
            TITLE: pd.array([f"movie {i}" for i in range(1, n_items + 1)], dtype="string"),
            GENRES: [[WORLD_GENRES[g]] for g in item_genre],
            RELEASE_DATE: pd.Series([START - pd.Timedelta(days=365)] * n_items).dt.tz_convert(
                "UTC"
            ),
        }
    )
    users = pd.DataFrame({USER_ID: np.arange(1, n_users + 1, dtype=np.int64)})
    return events, users, items

"""Column names of every frame ReelRank passes between steps, declared once.

``events``: one row per (user, item, time) interaction with an explicit rating.
``users``: one row per user with the side information the source has.
``items``: one row per item with title, genres (a list) and release date.
Recommendations: ``user_id, item_id, score, rank`` (rank 1 = best), as every model's
``recommend`` returns them. Feature columns are declared in :mod:`reelrank.features.columns`;
each column's domain (parser, range, vocabulary, pattern) in :mod:`reelrank.data.domains`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import pandas as pd

# Column names: use these constants, never string literals.
USER_ID: Final = "user_id"
ITEM_ID: Final = "item_id"
RATING: Final = "rating"
TIMESTAMP: Final = "timestamp"
TITLE: Final = "title"
GENRES: Final = "genres"
RELEASE_DATE: Final = "release_date"
AGE: Final = "age"
GENDER: Final = "gender"
OCCUPATION: Final = "occupation"
ZIP_CODE: Final = "zip_code"
IMDB_URL: Final = "imdb_url"  # MovieLens-100K items only
REASON: Final = "reason"
EVENT_TIMESTAMP: Final = "event_timestamp"  # the key Feast joins on
SCORE: Final = "score"
RANK: Final = "rank"
LABEL: Final = "label"  # the ranker's training label of a (user, candidate) pair
RECOMMENDATION_COLUMNS: Final = (USER_ID, ITEM_ID, SCORE, RANK)

EVENTS: Final = "events"
USERS: Final = "users"
ITEMS: Final = "items"
TABLES: Final = (EVENTS, USERS, ITEMS)

# The genre vocabulary shared by MovieLens-100K, MovieLens-1M and the synthetic world.
GENRE_VOCAB: Final[tuple[str, ...]] = (
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)

EARLIEST_TIMESTAMP: Final = pd.Timestamp("1995-01-01", tz="UTC")


@dataclass(frozen=True)
class TableSchema:
    """Required columns and their pandas dtypes; extra columns are allowed and kept."""

    name: str
    key: tuple[str, ...]
    dtypes: dict[str, str]

    @property
    def columns(self) -> list[str]:
        return list(self.dtypes)


EVENTS_SCHEMA: Final = TableSchema(
    name=EVENTS,
    key=(USER_ID, ITEM_ID, TIMESTAMP),
    dtypes={
        USER_ID: "int64",
        ITEM_ID: "int64",
        RATING: "float64",
        TIMESTAMP: "datetime64[ns, UTC]",
    },
)
USERS_SCHEMA: Final = TableSchema(
    name=USERS,
    key=(USER_ID,),
    dtypes={USER_ID: "int64"},
)
ITEMS_SCHEMA: Final = TableSchema(
    name=ITEMS,
    key=(ITEM_ID,),
    dtypes={
        ITEM_ID: "int64",
        TITLE: "string",
        GENRES: "object",
        RELEASE_DATE: "datetime64[ns, UTC]",
    },
)
SCHEMAS: Final = {EVENTS: EVENTS_SCHEMA, USERS: USERS_SCHEMA, ITEMS: ITEMS_SCHEMA}


@dataclass(frozen=True)
class Dataset:
    """The three canonical frames of one source, plus its rating scale.

    ``slates``: the service's served slates when the lake has them (one row per shown item;
    :func:`reelrank.loop.feedback.with_slates`), which the ranker's slate window reads.
    """

    events: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame
    rating_min: float = 1.0
    rating_max: float = 5.0
    name: str = "dataset"
    slates: pd.DataFrame | None = None

    def table(self, name: str) -> pd.DataFrame:
        return {EVENTS: self.events, USERS: self.users, ITEMS: self.items}[name]

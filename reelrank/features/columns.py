"""Feature column names, windows and the lists the ``ranker_v1`` FeatureService serves.

Every feature column is prefixed with its entity (``user_``, ``item_``, ``cross_``) so the
names stay unique when Feast joins several views without full feature names.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Final

from reelrank.schema import GENRE_VOCAB

WINDOWS_DAYS: Final[tuple[int, ...]] = (7, 30, 90)
"""Rolling windows (days) of the activity and popularity features."""
HORIZON_DAYS: Final = max(WINDOWS_DAYS)
"""After this many days without events every rolling window of an entity is empty."""
RECENCY_CAP_DAYS: Final = HORIZON_DAYS
"""``user_days_since_last_event`` is capped here, so it stays exact after the horizon."""
BAYES_PRIOR_STRENGTH: Final = 10.0
"""Pseudo-ratings at the global mean added to every item's mean rating (shrinkage)."""
POPULARITY_RANK_WINDOW_DAYS: Final = 30
"""``item_popularity_rank`` ranks items by their event count over this window."""

USER_TTL: Final = timedelta(days=365)
"""A user's latest snapshot is trusted for a year (dormant longer: treated as unknown)."""
ITEM_TTL: Final = timedelta(days=30)
"""Item values are known up to 30 days after the dataset end; later means the pipeline
stopped: treat as unknown."""

FEATURE_SERVICE: Final = "ranker_v1"
USER_VIEW: Final = "user_features"
ITEM_VIEW: Final = "item_features"


def genre_slug(genre: str) -> str:
    """``"Children's"`` -> ``"childrens"``, ``"Sci-Fi"`` -> ``"sci_fi"`` (column-safe)."""
    return re.sub(r"[^a-z0-9]+", "_", genre.lower().replace("'", "")).strip("_")


GENRE_SLUGS: Final[tuple[str, ...]] = tuple(genre_slug(g) for g in GENRE_VOCAB)

# --- user features (view ``user_features``) -------------------------------------------
USER_EVENTS_7D: Final = "user_events_7d"
USER_EVENTS_30D: Final = "user_events_30d"
USER_EVENTS_90D: Final = "user_events_90d"
USER_EVENTS_TOTAL: Final = "user_events_total"
USER_RATING_MEAN: Final = "user_rating_mean"
USER_RATING_STD: Final = "user_rating_std"
USER_RATING_MEAN_30D: Final = "user_rating_mean_30d"
USER_DAYS_SINCE_LAST_EVENT: Final = "user_days_since_last_event"
USER_MEAN_ITEM_LOG_POP: Final = "user_mean_item_log_pop"
USER_AGE: Final = "user_age"
USER_GENDER: Final = "user_gender"
USER_OCCUPATION: Final = "user_occupation"
USER_ZIP_REGION: Final = "user_zip_region"
USER_GENRE_SHARE: Final[tuple[str, ...]] = tuple(f"user_genre_share_{s}" for s in GENRE_SLUGS)

USER_FEATURES: Final[tuple[str, ...]] = (
    USER_EVENTS_7D,
    USER_EVENTS_30D,
    USER_EVENTS_90D,
    USER_EVENTS_TOTAL,
    USER_RATING_MEAN,
    USER_RATING_STD,
    USER_RATING_MEAN_30D,
    USER_DAYS_SINCE_LAST_EVENT,
    USER_MEAN_ITEM_LOG_POP,
    USER_AGE,
    USER_GENDER,
    USER_OCCUPATION,
    USER_ZIP_REGION,
    *USER_GENRE_SHARE,
)

# --- item features (view ``item_features``) -------------------------------------------
ITEM_EVENTS_7D: Final = "item_events_7d"
ITEM_EVENTS_30D: Final = "item_events_30d"
ITEM_EVENTS_90D: Final = "item_events_90d"
ITEM_EVENTS_TOTAL: Final = "item_events_total"
ITEM_TREND_7D: Final = "item_trend_7d"
ITEM_LOG_POP_30D: Final = "item_log_pop_30d"
ITEM_POPULARITY_RANK: Final = "item_popularity_rank"
ITEM_RATING_MEAN_BAYES: Final = "item_rating_mean_bayes"
ITEM_DAYS_SINCE_RELEASE: Final = "item_days_since_release"
ITEM_GENRE: Final[tuple[str, ...]] = tuple(f"item_genre_{s}" for s in GENRE_SLUGS)

ITEM_FEATURES: Final[tuple[str, ...]] = (
    ITEM_EVENTS_7D,
    ITEM_EVENTS_30D,
    ITEM_EVENTS_90D,
    ITEM_EVENTS_TOTAL,
    ITEM_TREND_7D,
    ITEM_LOG_POP_30D,
    ITEM_POPULARITY_RANK,
    ITEM_RATING_MEAN_BAYES,
    ITEM_DAYS_SINCE_RELEASE,
    *ITEM_GENRE,
)

ITEM_RATING_SUM: Final = "item_rating_sum"
"""Stored beside the item features, not one of them: the sum of the item's ratings before
the row's day, from which readers derive ``item_rating_mean_bayes`` as of a later day."""

# --- request-time cross features ------------------------------------------------------
CROSS_GENRE_AFFINITY_MEAN: Final = "cross_genre_affinity_mean"
CROSS_GENRE_AFFINITY_MAX: Final = "cross_genre_affinity_max"
CROSS_RATING_GAP: Final = "cross_rating_gap"
CROSS_POPULARITY_GAP: Final = "cross_popularity_gap"

CROSS_FEATURES: Final[tuple[str, ...]] = (
    CROSS_GENRE_AFFINITY_MEAN,
    CROSS_GENRE_AFFINITY_MAX,
    CROSS_RATING_GAP,
    CROSS_POPULARITY_GAP,
)

RANKER_FEATURES: Final[tuple[str, ...]] = USER_FEATURES + ITEM_FEATURES + CROSS_FEATURES
"""Everything a ranker sees: stored user and item features plus the request-time ones."""

CATEGORICAL_FEATURES: Final[tuple[str, ...]] = (USER_GENDER, USER_OCCUPATION, USER_ZIP_REGION)
"""Encoded categoricals (codes, -1 unknown): tree rankers split them as categories."""

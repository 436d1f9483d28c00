"""Request-time user x item features: one pure function, called by training and serving."""

from __future__ import annotations

import numpy as np
import pandas as pd

from reelrank.data.schema import ITEM_ID, USER_ID
from reelrank.exceptions import ValidationError
from reelrank.features import columns as cols


def cross_features(
    user_frame: pd.DataFrame, item_frame: pd.DataFrame, pairs: pd.DataFrame
) -> pd.DataFrame:
    """Cross features for each (user, item) pair.

    Args:
        user_frame: user features indexed by ``user_id`` (as a FeatureProvider returns),
            with at least the genre shares, ``user_rating_mean`` and
            ``user_mean_item_log_pop``.
        item_frame: item features indexed by ``item_id``, with at least the item genre
            columns, ``item_rating_mean_bayes`` and ``item_log_pop_30d``.
        pairs: frame with ``user_id`` and ``item_id`` columns (any other columns ignored).

    Returns:
        Frame aligned with ``pairs`` (same index, same order) holding
        :data:`~reelrank.features.columns.CROSS_FEATURES` (float64): mean and max of the
        user's genre shares over the item's genres, ``|user mean - item Bayesian mean|``
        and item log popularity minus the user's mean log popularity of what they watched.
        Unknown users or items give NaN, never an error.
    """
    for frame, needed, what in (
        (pairs, (USER_ID, ITEM_ID), "pairs"),
        (
            user_frame,
            (*cols.USER_GENRE_SHARE, cols.USER_RATING_MEAN, cols.USER_MEAN_ITEM_LOG_POP),
            "user_frame",
        ),
        (
            item_frame,
            (*cols.ITEM_GENRE, cols.ITEM_RATING_MEAN_BAYES, cols.ITEM_LOG_POP_30D),
            "item_frame",
        ),
    ):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise ValidationError(
                f"cross_features: {what} lacks column(s) {missing[:5]}; pass the frames a "
                "FeatureProvider returns (indexed by id) and pairs with user_id, item_id."
            )
    users = user_frame[~user_frame.index.duplicated(keep="last")].reindex(pairs[USER_ID].to_numpy())
    items = item_frame[~item_frame.index.duplicated(keep="last")].reindex(pairs[ITEM_ID].to_numpy())
    shares = users[list(cols.USER_GENRE_SHARE)].to_numpy(dtype="float64", na_value=np.nan)
    flags = items[list(cols.ITEM_GENRE)].to_numpy(dtype="float64", na_value=np.nan)
    n_genres = flags.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        affinity_mean = (shares * flags).sum(axis=1) / n_genres
        masked = np.where(flags > 0, shares, -np.inf)
        affinity_max = masked.max(axis=1)
    no_genre = ~(n_genres > 0)  # also true when the item is unknown (NaN)
    unknown = np.isnan(shares).any(axis=1) | np.isnan(flags).any(axis=1)
    affinity_mean[no_genre | unknown] = np.nan
    affinity_max[no_genre | unknown] = np.nan

    def column(frame: pd.DataFrame, name: str) -> np.ndarray:
        return frame[name].to_numpy(dtype="float64", na_value=np.nan)

    rating_gap = np.abs(
        column(users, cols.USER_RATING_MEAN) - column(items, cols.ITEM_RATING_MEAN_BAYES)
    )
    popularity_gap = column(items, cols.ITEM_LOG_POP_30D) - column(
        users, cols.USER_MEAN_ITEM_LOG_POP
    )
    return pd.DataFrame(
        {
            cols.CROSS_GENRE_AFFINITY_MEAN: affinity_mean,
            cols.CROSS_GENRE_AFFINITY_MAX: affinity_max,
            cols.CROSS_RATING_GAP: rating_gap,
            cols.CROSS_POPULARITY_GAP: popularity_gap,
        },
        index=pairs.index,
    )

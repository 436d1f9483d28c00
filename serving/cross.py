"""Cross features of one user against many items, in arrays (the request-path form).

Numerically the same as :func:`reelrank.features.cross.cross_features` (the function
training uses; ``tests/serving/test_cross.py`` proves equality on random and real
inputs), without building pandas frames per request: the item side is prepared once per
model state, the user side is one row.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from reelrank.features import columns as cols

_USER_SHARES = [cols.USER_FEATURES.index(c) for c in cols.USER_GENRE_SHARE]
_USER_RATING_MEAN = cols.USER_FEATURES.index(cols.USER_RATING_MEAN)
_USER_LOG_POP = cols.USER_FEATURES.index(cols.USER_MEAN_ITEM_LOG_POP)


class ItemCrossInputs:
    """The item columns the cross features read, as float64 arrays by catalogue column.

    Args:
        item_frame: item features (``ITEM_FEATURES``), one row per catalogue column.
    """

    def __init__(self, item_frame: pd.DataFrame) -> None:
        def column(name: str) -> np.ndarray:
            if name not in item_frame.columns:
                return np.full(len(item_frame), np.nan)
            return item_frame[name].to_numpy(dtype=np.float64, na_value=np.nan)

        self.flags = np.column_stack([column(c) for c in cols.ITEM_GENRE])
        self.rating_mean_bayes = column(cols.ITEM_RATING_MEAN_BAYES)
        self.log_pop_30d = column(cols.ITEM_LOG_POP_30D)
        self.n_genres = self.flags.sum(axis=1)
        self.flag_unknown = np.isnan(self.flags).any(axis=1)
        self.has_flag = self.flags > 0


def user_cross_features(
    user_row: np.ndarray, items: ItemCrossInputs, item_columns: Sequence[int] | np.ndarray
) -> np.ndarray:
    """``(len(item_columns), 4)`` float64 in ``CROSS_FEATURES`` order for one user.

    Args:
        user_row: the user's stored features in ``USER_FEATURES`` order (NaN = missing).
        items: the prepared item side.
        item_columns: catalogue columns of the candidates.
    """
    columns = np.asarray(item_columns, dtype=np.int64)
    shares = user_row[_USER_SHARES]
    flags = items.flags[columns]
    n_genres = items.n_genres[columns]
    with np.errstate(invalid="ignore", divide="ignore"):
        affinity_mean = (flags * shares).sum(axis=1) / n_genres
        masked = np.where(items.has_flag[columns], shares, -np.inf)
        affinity_max = masked.max(axis=1)
    invalid = ~(n_genres > 0) | items.flag_unknown[columns] | bool(np.isnan(shares).any())
    affinity_mean[invalid] = np.nan
    affinity_max[invalid] = np.nan
    out = np.empty((len(columns), 4), dtype=np.float64)
    out[:, 0] = affinity_mean
    out[:, 1] = affinity_max
    out[:, 2] = np.abs(user_row[_USER_RATING_MEAN] - items.rating_mean_bayes[columns])
    out[:, 3] = items.log_pop_30d[columns] - user_row[_USER_LOG_POP]
    return out

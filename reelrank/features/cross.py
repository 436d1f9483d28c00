"""Request-time user x item features: one compiled core, called by training and serving.

:func:`cross_feature_matrix` computes the four cross features from array inputs; training
calls it through :func:`cross_features` (frames of pairs), the serving hot path calls it
with one user's row against the candidates' rows of an :class:`ItemCrossInputs` prepared
once per model load. Same function, so there is no training/serving skew
(``tests/serving/test_parts.py``). It is a numba loop (a dozen numpy calls per request
cost more in call overhead than in arithmetic) that adds in numpy's order: its values are
bit-identical to the array expressions of :func:`cross_feature_matrix_numpy`, the
readable definition (``tests/features/test_cross_and_providers.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd

from reelrank.exceptions import ValidationError
from reelrank.features import columns as cols
from reelrank.schema import ITEM_ID, USER_ID


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
    user_side = UserCrossInputs.from_frame(users)
    out = cross_feature_matrix(user_side, ItemCrossInputs(items))
    affinity_mean, affinity_max, rating_gap, popularity_gap = out.T
    return pd.DataFrame(
        {
            cols.CROSS_GENRE_AFFINITY_MEAN: affinity_mean,
            cols.CROSS_GENRE_AFFINITY_MAX: affinity_max,
            cols.CROSS_RATING_GAP: rating_gap,
            cols.CROSS_POPULARITY_GAP: popularity_gap,
        },
        index=pairs.index,
    )


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    return frame[name].to_numpy(dtype=np.float64, na_value=np.nan)


class ItemCrossInputs:
    """The item side of the cross features, one row per item, as float64 arrays.

    Built once per model load for the whole catalogue (serving) or per batch of pairs
    (training); row sums and NaN checks are done here so the per-request work is gathers.

    Args:
        item_frame: item features with the item genre flags, ``item_rating_mean_bayes``
            and ``item_log_pop_30d`` (missing columns read as NaN).
    """

    def __init__(self, item_frame: pd.DataFrame) -> None:
        self.flags = np.column_stack([_column(item_frame, c) for c in cols.ITEM_GENRE])
        self.rating_mean_bayes = _column(item_frame, cols.ITEM_RATING_MEAN_BAYES)
        self.log_pop_30d = _column(item_frame, cols.ITEM_LOG_POP_30D)
        self.n_genres = self.flags.sum(axis=1)
        self.has_flag = self.flags > 0
        # An item without genres (or unknown) has no affinity; NaN flags make it unknown.
        self.no_affinity = ~(self.n_genres > 0) | np.isnan(self.flags).any(axis=1)

    def __len__(self) -> int:
        return len(self.n_genres)


@dataclass(frozen=True)
class UserCrossInputs:
    """The user side: genre shares ``(n, G)`` or one user's ``(G,)``, and two means.

    ``rating_mean`` and ``log_pop`` are ``(n,)`` arrays aligned with the pairs, or scalars
    for one user.
    """

    shares: np.ndarray
    rating_mean: np.ndarray | float
    log_pop: np.ndarray | float

    @classmethod
    def from_frame(cls, users: pd.DataFrame) -> UserCrossInputs:
        """One row per pair (a user frame reindexed by the pairs' user ids)."""
        return cls(
            shares=np.column_stack([_column(users, c) for c in cols.USER_GENRE_SHARE]),
            rating_mean=_column(users, cols.USER_RATING_MEAN),
            log_pop=_column(users, cols.USER_MEAN_ITEM_LOG_POP),
        )

    @classmethod
    def from_row(cls, user_row: np.ndarray) -> UserCrossInputs:
        """One user's stored features in ``USER_FEATURES`` order (NaN = missing)."""
        return cls(
            shares=user_row[_USER_SHARES],
            rating_mean=float(user_row[_USER_RATING_MEAN]),
            log_pop=float(user_row[_USER_LOG_POP]),
        )


_USER_SHARES = [cols.USER_FEATURES.index(c) for c in cols.USER_GENRE_SHARE]
_USER_RATING_MEAN = cols.USER_FEATURES.index(cols.USER_RATING_MEAN)
_USER_LOG_POP = cols.USER_FEATURES.index(cols.USER_MEAN_ITEM_LOG_POP)


def cross_feature_matrix(
    users: UserCrossInputs,
    items: ItemCrossInputs,
    item_rows: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """``(n, 4)`` float64 in ``CROSS_FEATURES`` order.

    A compiled loop (numba): serving calls this for one user and ~150 candidates on every
    request, where a dozen numpy calls cost more in call overhead than in arithmetic. It
    adds the genre products in numpy's pairwise order, so the values are bit-identical to
    the array expressions of :func:`cross_feature_matrix_numpy` (``tests/features``).

    Args:
        users: the user side, one row per pair or one user for every row.
        items: the item side.
        item_rows: rows of ``items`` to pair with (default: every row, in order).
    """
    rows = (
        np.arange(len(items), dtype=np.int64)
        if item_rows is None
        else np.asarray(item_rows, dtype=np.int64)
    )
    if len(rows) and (rows.min() < 0 or rows.max() >= len(items)):
        raise IndexError(
            f"cross features: item rows must lie in [0, {len(items)}); got "
            f"{int(rows.min())}..{int(rows.max())}"
        )  # the compiled loop does not check bounds
    shares = np.atleast_2d(np.asarray(users.shares, dtype=np.float64))
    if shares.shape[1] != items.flags.shape[1] or shares.shape[1] > _PAIRWISE_BLOCK:
        raise ValidationError(
            f"cross features: {shares.shape[1]} user genre shares for "
            f"{items.flags.shape[1]} item genres (at most {_PAIRWISE_BLOCK}); build both "
            "sides from the same genre list (reelrank.features.columns)."
        )
    rating_mean = np.atleast_1d(np.asarray(users.rating_mean, dtype=np.float64))
    log_pop = np.atleast_1d(np.asarray(users.log_pop, dtype=np.float64))
    if not (len(shares) == len(rating_mean) == len(log_pop) and len(shares) in (1, len(rows))):
        raise ValidationError(
            f"cross features: {len(shares)} user rows for {len(rows)} pairs; pass one user "
            "or one row per pair."
        )
    out = np.empty((len(rows), 4), dtype=np.float64)
    _cross_loop(
        items.flags,
        items.n_genres,
        items.has_flag,
        items.no_affinity,
        items.rating_mean_bayes,
        items.log_pop_30d,
        rows,
        np.ascontiguousarray(shares),
        rating_mean,
        log_pop,
        out,
    )
    return out


_PAIRWISE_BLOCK = 128  # numpy's PW_BLOCKSIZE: up to here its sum is one unrolled block


@numba.njit(nogil=True, error_model="numpy", cache=True)
def _pairwise_sum(values: np.ndarray) -> float:  # pragma: no cover - compiled
    """numpy's pairwise summation of a contiguous float64 vector of up to 128 values
    (``pairwise_sum`` in numpy/_core/src/umath/loops_utils.h.src)."""
    n = values.shape[0]
    if n < 8:
        total = -0.0
        for i in range(n):
            total += values[i]
        return total
    r0, r1, r2, r3 = values[0], values[1], values[2], values[3]
    r4, r5, r6, r7 = values[4], values[5], values[6], values[7]
    i = 8
    while i < n - n % 8:
        r0 += values[i]
        r1 += values[i + 1]
        r2 += values[i + 2]
        r3 += values[i + 3]
        r4 += values[i + 4]
        r5 += values[i + 5]
        r6 += values[i + 6]
        r7 += values[i + 7]
        i += 8
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        total += values[i]
        i += 1
    return total


@numba.njit(nogil=True, error_model="numpy", cache=True)
def _cross_loop(
    flags: np.ndarray,
    n_genres: np.ndarray,
    has_flag: np.ndarray,
    no_affinity: np.ndarray,
    bayes: np.ndarray,
    item_log_pop: np.ndarray,
    rows: np.ndarray,
    shares: np.ndarray,
    rating_mean: np.ndarray,
    user_log_pop: np.ndarray,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled; tested against cross_feature_matrix_numpy
    n_genres_total = shares.shape[1]
    one_user = shares.shape[0] == 1
    products = np.empty(n_genres_total, dtype=np.float64)
    user_invalid = np.zeros(shares.shape[0], dtype=np.bool_)
    for u in range(shares.shape[0]):
        for g in range(n_genres_total):
            if np.isnan(shares[u, g]):
                user_invalid[u] = True
    for p in range(rows.shape[0]):
        i = rows[p]
        u = 0 if one_user else p
        for g in range(n_genres_total):
            products[g] = flags[i, g] * shares[u, g]
        best = -np.inf  # (a NaN share makes the user invalid: no NaN reaches the max)
        for g in range(n_genres_total):
            if has_flag[i, g] and shares[u, g] > best:
                best = shares[u, g]
        if no_affinity[i] or user_invalid[u]:
            out[p, 0] = np.nan
            out[p, 1] = np.nan
        else:
            # + 0.0: numpy's reduction starts from +0.0 (a sum of -0.0 products is +0.0)
            out[p, 0] = (0.0 + _pairwise_sum(products)) / n_genres[i]
            out[p, 1] = best
        out[p, 2] = abs(rating_mean[u] - bayes[i])
        out[p, 3] = item_log_pop[i] - user_log_pop[u]


def cross_feature_matrix_numpy(
    users: UserCrossInputs,
    items: ItemCrossInputs,
    item_rows: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """:func:`cross_feature_matrix` as numpy array expressions: the definition the
    compiled loop is tested against."""
    if item_rows is None:
        flags, n_genres, has_flag = items.flags, items.n_genres, items.has_flag
        no_affinity, bayes, log_pop = items.no_affinity, items.rating_mean_bayes, items.log_pop_30d
    else:
        rows = np.asarray(item_rows, dtype=np.int64)
        flags, n_genres, has_flag = items.flags[rows], items.n_genres[rows], items.has_flag[rows]
        no_affinity = items.no_affinity[rows]
        bayes, log_pop = items.rating_mean_bayes[rows], items.log_pop_30d[rows]
    shares = users.shares
    out = np.empty((len(n_genres), 4), dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        np.divide((flags * shares).sum(axis=1), n_genres, out=out[:, 0])
        np.where(has_flag, shares, -np.inf).max(axis=1, out=out[:, 1], initial=-np.inf)
    invalid = no_affinity | np.isnan(shares).any(axis=-1)
    out[invalid, :2] = np.nan
    np.abs(np.subtract(users.rating_mean, bayes), out=out[:, 2])
    np.subtract(log_pop, users.log_pop, out=out[:, 3])
    return out

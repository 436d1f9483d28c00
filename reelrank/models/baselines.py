"""Baselines every model is compared against, on identical folds: the ladder.

Every baseline follows the recommender API (``fit(events, users=None, items=None)`` and
``recommend(user_ids, k, exclude_seen)``) so the cross-validation code treats them exactly
like :class:`~reelrank.models.recommender.Recommender`. The simple ones (popularity,
item-kNN) are here; the strong ones (EASE, ALS, BPR) are retrieval sources judged alone
(:class:`SourceBaseline`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, clone

from reelrank.exceptions import NotFittedError
from reelrank.models.interactions import InteractionMatrix, cosine_neighbours
from reelrank.models.retrieval import CandidateSource
from reelrank.models.sources import EASESource, MatrixFactorizationSource
from reelrank.schema import ITEM_ID, RANK, SCORE, USER_ID

RECOMMENDATION_COLUMNS = [USER_ID, ITEM_ID, SCORE, RANK]


class _MatrixRecommender(BaseEstimator):
    """Shared plumbing: id maps, the user x item matrix and top-k selection."""

    def _index(self, events: pd.DataFrame) -> sp.csr_matrix:
        for column in (USER_ID, ITEM_ID):
            if column not in events.columns:
                raise ValueError(f"events lack the column {column!r}; pass canonical events.")
        self.user_ids_ = np.sort(events[USER_ID].unique())
        self.item_ids_ = np.sort(events[ITEM_ID].unique())
        rows = np.searchsorted(self.user_ids_, events[USER_ID].to_numpy())
        cols = np.searchsorted(self.item_ids_, events[ITEM_ID].to_numpy())
        matrix = sp.csr_matrix(
            (np.ones(len(events), dtype=np.float64), (rows, cols)),
            shape=(len(self.user_ids_), len(self.item_ids_)),
        )
        matrix.data[:] = 1.0  # repeated pairs count once
        self.seen_ = matrix
        self.popularity_ = np.asarray(matrix.sum(axis=0)).ravel()
        return matrix

    def _user_scores(self, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError  # pragma: no cover - every subclass defines it

    def recommend(
        self, user_ids: Iterable[int], k: int = 10, exclude_seen: bool = True
    ) -> pd.DataFrame:
        if not hasattr(self, "seen_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(events) first.")
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}.")
        users = np.asarray(list(dict.fromkeys(int(u) for u in user_ids)), dtype=np.int64)
        k = min(k, len(self.item_ids_))
        positions = np.searchsorted(self.user_ids_, users)
        positions = np.clip(positions, 0, max(len(self.user_ids_) - 1, 0))
        known = (len(self.user_ids_) > 0) & (self.user_ids_[positions] == users)
        scores = np.tile(self.popularity_.astype(np.float64), (len(users), 1))
        if known.any():
            scores[known] = self._user_scores(positions[known])
        if exclude_seen and known.any():
            seen = self.seen_[positions[known]]
            block = scores[known]
            block[seen.nonzero()] = -np.inf
            scores[known] = block
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        top = np.take_along_axis(scores, order, axis=1)
        frame = pd.DataFrame(
            {
                USER_ID: np.repeat(users, k),
                ITEM_ID: self.item_ids_[order].ravel(),
                SCORE: top.ravel(),
                RANK: np.tile(np.arange(1, k + 1), len(users)),
            }
        )
        return frame[np.isfinite(frame[SCORE])].reset_index(drop=True)


class PopularityBaseline(_MatrixRecommender):
    """Recommend the items most users interacted with (the same list for everyone)."""

    def fit(
        self,
        events: pd.DataFrame,
        users: pd.DataFrame | None = None,
        items: pd.DataFrame | None = None,
    ) -> PopularityBaseline:
        self._index(events)
        return self

    def _user_scores(self, rows: np.ndarray) -> np.ndarray:
        return np.tile(self.popularity_.astype(np.float64), (len(rows), 1))


class ItemKNNBaseline(_MatrixRecommender):
    """Item-based k-nearest neighbours: cosine similarity of item columns, top ``neighbours``.

    A user's score for item j is the sum of j's similarities to the items the user saw.
    """

    def __init__(self, neighbours: int = 100, shrinkage: float = 10.0) -> None:
        self.neighbours = neighbours
        self.shrinkage = shrinkage

    def fit(
        self,
        events: pd.DataFrame,
        users: pd.DataFrame | None = None,
        items: pd.DataFrame | None = None,
    ) -> ItemKNNBaseline:
        if self.neighbours < 1:
            raise ValueError(f"neighbours must be >= 1, got {self.neighbours}.")
        matrix = self._index(events)
        # Column-wise top-k kept sparse, ties at the cut kept (cosine_neighbours).
        self.similarity_ = cosine_neighbours(
            matrix, self.neighbours, self.shrinkage, keep_ties=True, epsilon=1e-12
        )
        return self

    def _user_scores(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray((self.seen_[rows] @ self.similarity_).toarray())


class SourceBaseline(BaseEstimator):
    """A retrieval source on its own as a recommender: its top ``k`` unseen items per user.

    How the ladder's strong baselines (EASE, ALS, BPR) are judged on the same folds as
    the two-stage model: one source, no ranker. Users the source cannot score (unknown to
    a personalised source) get the most popular unseen items.

    Args:
        source: the unfitted source (its hyperparameters are this baseline's, nested as
            ``source__<param>``).
    """

    def __init__(self, source: CandidateSource | None = None) -> None:
        self.source = source

    def fit(
        self,
        events: pd.DataFrame,
        users: pd.DataFrame | None = None,
        items: pd.DataFrame | None = None,
    ) -> SourceBaseline:
        if self.source is None:
            raise ValueError("SourceBaseline needs a source, e.g. EASESource().")
        matrix = InteractionMatrix.from_events(events)
        self.source_ = clone(self.source).fit(matrix)
        self.fallback_ = PopularityBaseline().fit(events)
        return self

    def recommend(
        self, user_ids: Iterable[int], k: int = 10, exclude_seen: bool = True
    ) -> pd.DataFrame:
        if not hasattr(self, "source_"):
            raise NotFittedError("SourceBaseline is not fitted; call fit(events) first.")
        users = np.asarray(list(dict.fromkeys(int(u) for u in user_ids)), dtype=np.int64)
        matrix = self.source_.interactions_
        known = users[matrix.user_rows(users) >= 0] if self.source_.personalised else users
        frames = [self.source_.candidates(known, n=k, exclude_seen=exclude_seen)]
        unknown = np.setdiff1d(users, known)
        if len(unknown):
            frames.append(self.fallback_.recommend(unknown, k=k, exclude_seen=exclude_seen))
        out = pd.concat([f[RECOMMENDATION_COLUMNS] for f in frames], ignore_index=True)
        return out.astype({USER_ID: "int64", ITEM_ID: "int64", RANK: "int64"})


def ease_baseline(**params: Any) -> SourceBaseline:
    return SourceBaseline(EASESource(**params))


def als_baseline(**params: Any) -> SourceBaseline:
    return SourceBaseline(MatrixFactorizationSource(algorithm="als", **params))


def bpr_baseline(**params: Any) -> SourceBaseline:
    return SourceBaseline(MatrixFactorizationSource(algorithm="bpr", **params))

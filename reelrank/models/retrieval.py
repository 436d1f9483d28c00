"""Stage 1: candidate retrieval.

Every source is a small scikit-learn style estimator with one interface:

* ``fit(interactions)`` where ``interactions`` is an :class:`InteractionMatrix` (or a
  canonical events frame, which is encoded on the fly);
* ``all_scores(user_ids)`` -> dense ``(len(user_ids), n_items)`` scores in the column order
  of ``interactions.item_ids``; rows of users the source cannot score are ``NaN``;
* ``candidates(user_ids, n)`` -> frame ``[user_id, item_id, score, rank]``, the top ``n``
  unseen items per user, ``rank`` 1..n.

:func:`retrieve` runs several sources at once and keeps, for every candidate in the union,
every source's score and rank (the ranker's retrieval features).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator

from reelrank.exceptions import NotFittedError
from reelrank.models.interactions import (
    USER_CHUNK,
    InteractionMatrix,
    as_interactions,
    mask_seen,
    ranks_at,
    top_n,
    top_n_mask,
)
from reelrank.models.registry import Registry
from reelrank.schema import ITEM_ID, RANK, SCORE, USER_ID


def score_column(source: str) -> str:
    """The candidate-frame column holding ``source``'s score."""
    return f"{source}_{SCORE}"


def rank_column(source: str) -> str:
    """The candidate-frame column holding ``source``'s rank (1 = best; NaN = not scored)."""
    return f"{source}_{RANK}"


class CandidateSource(BaseEstimator, ABC):
    """Base class of the retrieval sources (see the module docstring for the interface)."""

    name: ClassVar[str] = "source"
    personalised: ClassVar[bool] = True

    def fit(self, interactions: InteractionMatrix | pd.DataFrame) -> Self:
        self.interactions_ = as_interactions(interactions)
        self._fit(self.interactions_)
        return self

    @abstractmethod
    def _fit(self, interactions: InteractionMatrix) -> None: ...

    @abstractmethod
    def _score_rows(self, rows: np.ndarray) -> np.ndarray:
        """Dense float32 scores for matrix rows (all >= 0; the caller handles unknown rows)."""

    def _check_fitted(self) -> InteractionMatrix:
        if not hasattr(self, "interactions_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(interactions).")
        return self.interactions_

    def scores_for_rows(
        self, rows: np.ndarray, exclude_seen: bool = True, seen: sp.csr_matrix | None = None
    ) -> np.ndarray:
        """Scores of every catalogue item for matrix ``rows``; NaN rows for unscorable users.

        ``seen`` (the rows' seen matrix) may be passed in when several sources share it.
        """
        matrix = self._check_fitted()
        rows = np.asarray(rows, dtype=np.int64)
        known = rows >= 0
        if self.personalised:
            out = np.full((len(rows), matrix.n_items), np.nan, dtype=np.float32)
            if known.any():
                out[known] = self._score_rows(rows[known])
        else:
            out = np.broadcast_to(self._score_rows(rows[:1]), (len(rows), matrix.n_items)).copy()
        if exclude_seen:
            mask_seen(out, matrix.seen_rows(rows) if seen is None else seen)
        return out

    def all_scores(self, user_ids: Sequence[int], exclude_seen: bool = True) -> np.ndarray:
        """Scores of every catalogue item (columns = ``interactions_.item_ids``) per user."""
        matrix = self._check_fitted()
        return self.scores_for_rows(matrix.user_rows(user_ids), exclude_seen=exclude_seen)

    def candidates(
        self, user_ids: Sequence[int], n: int = 100, exclude_seen: bool = True
    ) -> pd.DataFrame:
        """Top ``n`` items per user: ``[user_id, item_id, score, rank]``."""
        matrix = self._check_fitted()
        ids = np.asarray(user_ids, dtype=np.int64)
        frames = []
        for start in range(0, len(ids), USER_CHUNK):
            chunk = ids[start : start + USER_CHUNK]
            scores = self.scores_for_rows(matrix.user_rows(chunk), exclude_seen=exclude_seen)
            rows, cols = top_n(scores, n)
            frame = pd.DataFrame(
                {
                    USER_ID: chunk[rows],
                    ITEM_ID: matrix.item_ids[cols],
                    SCORE: scores[rows, cols].astype(np.float64),
                }
            )
            frame[RANK] = frame.groupby(USER_ID, sort=False).cumcount() + 1
            frames.append(frame)
        if not frames:
            return pd.DataFrame({USER_ID: [], ITEM_ID: [], SCORE: [], RANK: []})
        return pd.concat(frames, ignore_index=True)


SOURCES: Registry[Callable[..., CandidateSource]] = Registry(
    "retrieval source", builtins="reelrank.models.sources"
)
"""Source factories by name (the built-in sources register themselves on first use)."""


def register_source(name: str, factory: Callable[..., CandidateSource]) -> None:
    """Make ``name`` buildable with :func:`make_source` (e.g. from ``reelrank train --sources``)."""
    SOURCES.register(name, factory)


def make_source(name: str, **params: object) -> CandidateSource:
    """Build the source registered as ``name`` (``popularity``, ``ease``, ``itemknn``, ``mf``)."""
    return SOURCES.make(name, **params)


@dataclass(frozen=True)
class RetrievedBlock:
    """Union candidates of a user batch in array form (the fast path used by serving)."""

    rows: np.ndarray  # index into the requested user batch
    item_columns: np.ndarray  # catalogue column of each candidate
    features: np.ndarray  # (n_candidates, 2 * n_sources): score then rank per source
    feature_names: list[str]


def retrieve_block(
    sources: Mapping[str, CandidateSource],
    interactions: InteractionMatrix,
    user_ids: Sequence[int] | np.ndarray,
    n: int,
    exclude_seen: bool = True,
) -> RetrievedBlock:
    """Union of each source's top ``n`` for ``user_ids``, every source's score and rank kept."""
    rows_in_matrix = interactions.user_rows(user_ids)
    n_users = len(rows_in_matrix)
    union = np.zeros((n_users, interactions.n_items), dtype=bool)
    per_source: list[np.ndarray] = []
    seen = interactions.seen_rows(rows_in_matrix) if exclude_seen else None
    for source in sources.values():
        scores = source.scores_for_rows(rows_in_matrix, exclude_seen=exclude_seen, seen=seen)
        union |= top_n_mask(scores, n)
        per_source.append(scores)
    rows, cols = np.nonzero(union)
    features = np.empty((len(rows), 2 * len(per_source)), dtype=np.float32)
    names: list[str] = []
    for j, (name, scores) in enumerate(zip(sources, per_source, strict=True)):
        features[:, 2 * j] = scores[rows, cols]
        features[:, 2 * j + 1] = ranks_at(scores, rows, cols)
        names += [score_column(name), rank_column(name)]
    return RetrievedBlock(rows=rows, item_columns=cols, features=features, feature_names=names)


def score_pairs(
    sources: Mapping[str, CandidateSource],
    interactions: InteractionMatrix,
    user_ids: Sequence[int] | np.ndarray,
    rows: np.ndarray,
    item_columns: np.ndarray,
) -> RetrievedBlock:
    """Every source's score and rank of the given cells (``rows`` index ``user_ids``;
    any order, repeats allowed): the retrieval features of items a user was *shown*,
    computed as :func:`retrieve_block` computes its candidates' (seen items masked, so a
    seen item's score is ``-inf`` and its rank NaN)."""
    rows = np.asarray(rows, dtype=np.int64)
    item_columns = np.asarray(item_columns, dtype=np.int64)
    rows_in_matrix = interactions.user_rows(user_ids)
    keys, inverse = np.unique(rows * interactions.n_items + item_columns, return_inverse=True)
    cell_rows, cell_cols = keys // interactions.n_items, keys % interactions.n_items
    seen = interactions.seen_rows(rows_in_matrix)
    features = np.empty((len(keys), 2 * len(sources)), dtype=np.float32)
    names: list[str] = []
    for j, (name, source) in enumerate(sources.items()):
        scores = source.scores_for_rows(rows_in_matrix, exclude_seen=True, seen=seen)
        features[:, 2 * j] = scores[cell_rows, cell_cols]
        features[:, 2 * j + 1] = ranks_at(scores, cell_rows, cell_cols)
        names += [score_column(name), rank_column(name)]
    return RetrievedBlock(
        rows=rows, item_columns=item_columns, features=features[inverse], feature_names=names
    )


def retrieve(
    sources: Mapping[str, CandidateSource],
    interactions: InteractionMatrix,
    user_ids: Sequence[int] | np.ndarray,
    n: int = 100,
    exclude_seen: bool = True,
) -> pd.DataFrame:
    """Union candidates as a frame: ``user_id, item_id`` then ``<source>_score, <source>_rank``.

    A candidate outside a source's top ``n`` still carries that source's score and its rank
    over the whole catalogue; users a source cannot score (unknown users, for personalised
    sources) get NaN there.
    """
    ids = np.asarray(user_ids, dtype=np.int64)
    frames = []
    for start in range(0, len(ids), USER_CHUNK):
        chunk = ids[start : start + USER_CHUNK]
        block = retrieve_block(sources, interactions, chunk, n, exclude_seen=exclude_seen)
        frame = pd.DataFrame(block.features, columns=block.feature_names)
        frame.insert(0, ITEM_ID, interactions.item_ids[block.item_columns])
        frame.insert(0, USER_ID, chunk[block.rows])
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=[USER_ID, ITEM_ID])
    return pd.concat(frames, ignore_index=True)

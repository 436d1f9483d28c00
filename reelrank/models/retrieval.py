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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator

from reelrank.data.schema import ITEM_ID, TIMESTAMP, USER_ID
from reelrank.exceptions import NotFittedError, ValidationError

SCORE: Final = "score"
RANK: Final = "rank"
SECONDS_PER_DAY: Final = 86_400.0
USER_CHUNK: Final = 1024


def score_column(source: str) -> str:
    """The candidate-frame column holding ``source``'s score."""
    return f"{source}_{SCORE}"


def rank_column(source: str) -> str:
    """The candidate-frame column holding ``source``'s rank (1 = best; NaN = not scored)."""
    return f"{source}_{RANK}"


@dataclass(frozen=True)
class InteractionMatrix:
    """Events encoded once for every source: users x items, binary, with recency weights.

    Attributes:
        user_ids: user id of each row.
        item_ids: item id of each column (the catalogue: items seen in events, plus any
            extra catalogue items given).
        seen: binary CSR matrix, 1 where the user interacted with the item.
        event_columns: catalogue column of every event (duplicates kept).
        event_age_days: age of every event in days, measured from ``last_timestamp``.
        last_timestamp: the latest event time (the "now" of this matrix).
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    seen: sp.csr_matrix
    event_columns: np.ndarray
    event_age_days: np.ndarray
    last_timestamp: pd.Timestamp

    @classmethod
    def from_events(
        cls,
        events: pd.DataFrame,
        catalogue: Sequence[int] | np.ndarray | None = None,
    ) -> InteractionMatrix:
        """Encode a canonical events frame (``user_id, item_id, timestamp``; rating unused)."""
        missing = {USER_ID, ITEM_ID, TIMESTAMP} - set(events.columns)
        if missing:
            raise ValidationError(
                f"events frame lacks columns {sorted(missing)}; pass the canonical events frame "
                f"({USER_ID}, {ITEM_ID}, rating, {TIMESTAMP})."
            )
        if events.empty:
            raise ValidationError("events frame is empty; a recommender needs interactions to fit.")
        user_ids = np.unique(events[USER_ID].to_numpy(dtype=np.int64))
        item_ids = np.unique(events[ITEM_ID].to_numpy(dtype=np.int64))
        if catalogue is not None:
            item_ids = np.union1d(item_ids, np.asarray(catalogue, dtype=np.int64))
        rows = np.searchsorted(user_ids, events[USER_ID].to_numpy(dtype=np.int64))
        cols = np.searchsorted(item_ids, events[ITEM_ID].to_numpy(dtype=np.int64))
        seen = sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)),
            shape=(len(user_ids), len(item_ids)),
        )
        seen.sum_duplicates()
        seen.data[:] = 1.0
        timestamps = pd.to_datetime(events[TIMESTAMP], utc=True)
        last = timestamps.max()
        age_days = (last - timestamps).dt.total_seconds().to_numpy() / SECONDS_PER_DAY
        return cls(
            user_ids=user_ids,
            item_ids=item_ids,
            seen=seen,
            event_columns=cols.astype(np.int64),
            event_age_days=age_days.astype(np.float64),
            last_timestamp=pd.Timestamp(last),
        )

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def user_rows(self, user_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Row index of each user id; -1 for users not in the matrix."""
        ids = np.asarray(user_ids, dtype=np.int64)
        pos = np.searchsorted(self.user_ids, ids)
        pos = np.clip(pos, 0, max(self.n_users - 1, 0))
        known = self.user_ids[pos] == ids if self.n_users else np.zeros(len(ids), dtype=bool)
        return np.where(known, pos, -1)

    def item_columns(self, item_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Column index of each item id; -1 for items not in the catalogue."""
        ids = np.asarray(item_ids, dtype=np.int64)
        pos = np.clip(np.searchsorted(self.item_ids, ids), 0, max(self.n_items - 1, 0))
        return np.where(self.item_ids[pos] == ids, pos, -1)

    def seen_rows(self, rows: np.ndarray) -> sp.csr_matrix:
        """Seen matrix for ``rows`` (unknown rows, -1, are empty)."""
        safe = np.where(rows >= 0, rows, 0)
        block = self.seen[safe]
        if (rows < 0).any():
            block = sp.diags((rows >= 0).astype(np.float32)) @ block
            block = sp.csr_matrix(block)
            block.eliminate_zeros()
        return block


def _as_interactions(interactions: InteractionMatrix | pd.DataFrame) -> InteractionMatrix:
    if isinstance(interactions, InteractionMatrix):
        return interactions
    return InteractionMatrix.from_events(interactions)


def mask_seen(scores: np.ndarray, seen: sp.csr_matrix) -> np.ndarray:
    """Set ``scores`` of seen items to ``-inf`` in place and return it."""
    coo = seen.tocoo()
    scores[coo.row, coo.col] = -np.inf
    return scores


def rank_rows(scores: np.ndarray) -> np.ndarray:
    """Per-row rank (1 = highest) of every column; NaN and -inf entries get NaN rank."""
    valid = np.isfinite(scores)
    filled = np.where(valid, scores, -np.inf)
    order = np.argsort(-filled, axis=1, kind="stable")
    ranks = np.empty(scores.shape, dtype=np.float32)
    np.put_along_axis(ranks, order, np.arange(1, scores.shape[1] + 1, dtype=np.float32), axis=1)
    ranks[~valid] = np.nan
    return ranks


def top_n(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Row, column pairs of the ``n`` best finite scores per row, ordered by row then rank."""
    if scores.size == 0 or n <= 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    n_cols = scores.shape[1]
    filled = np.where(np.isfinite(scores), scores, -np.inf)
    if n < n_cols:
        part = np.argpartition(-filled, n - 1, axis=1)[:, :n]
    else:
        part = np.tile(np.arange(n_cols), (scores.shape[0], 1))
    part_scores = np.take_along_axis(filled, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    cols = np.take_along_axis(part, order, axis=1)
    rows = np.repeat(np.arange(scores.shape[0]), cols.shape[1])
    cols = cols.ravel()
    keep = np.isfinite(filled[rows, cols])
    return rows[keep], cols[keep]


class CandidateSource(BaseEstimator, ABC):
    """Base class of the retrieval sources (see the module docstring for the interface)."""

    name: ClassVar[str] = "source"
    personalised: ClassVar[bool] = True

    def fit(self, interactions: InteractionMatrix | pd.DataFrame) -> Self:
        self.interactions_ = _as_interactions(interactions)
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


class PopularitySource(CandidateSource):
    """Recency-weighted popularity: every event counts ``0.5 ** (age / half_life_days)``.

    Scores are normalised so the most popular item scores 1 (comparable across refits).
    """

    name: ClassVar[str] = "popularity"
    personalised: ClassVar[bool] = False

    def __init__(self, half_life_days: float = 30.0) -> None:
        self.half_life_days = half_life_days

    def _fit(self, interactions: InteractionMatrix) -> None:
        decay = np.power(0.5, interactions.event_age_days / max(self.half_life_days, 1e-9))
        weight = np.bincount(
            interactions.event_columns, weights=decay, minlength=interactions.n_items
        )
        self.item_scores_ = (weight / max(float(weight.max()), 1e-12)).astype(np.float32)

    def _score_rows(self, rows: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.item_scores_, (len(rows), len(self.item_scores_)))


class EASESource(CandidateSource):
    """EASE (Steck 2019): closed-form linear item-item model, ``B = I - P / diag(P)``.

    Args:
        l2: ridge strength lambda (200-500 suits MovieLens-100K).
        max_items: fit on the ``max_items`` most frequent items only (the Gram inverse is
            cubic in items); other items score 0.
    """

    name: ClassVar[str] = "ease"

    def __init__(self, l2: float = 300.0, max_items: int = 20_000) -> None:
        self.l2 = l2
        self.max_items = max_items

    def _fit(self, interactions: InteractionMatrix) -> None:
        counts = np.asarray(interactions.seen.sum(axis=0)).ravel()
        order = np.argsort(-counts, kind="stable")[: self.max_items]
        self.item_subset_ = np.sort(order)
        X = interactions.seen[:, self.item_subset_]
        gram = (X.T @ X).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.l2
        precision = np.linalg.inv(gram)
        weights = -precision / np.diag(precision)
        weights[np.diag_indices_from(weights)] = 0.0
        self.weights_ = weights.astype(np.float32)

    def _score_rows(self, rows: np.ndarray) -> np.ndarray:
        X = self.interactions_.seen[rows]
        if len(self.item_subset_) == self.interactions_.n_items:
            return np.asarray(X @ self.weights_, dtype=np.float32)
        sub = np.asarray(X[:, self.item_subset_] @ self.weights_, dtype=np.float32)
        out = np.zeros((len(rows), self.interactions_.n_items), dtype=np.float32)
        out[:, self.item_subset_] = sub
        return out


class ItemKNNSource(CandidateSource):
    """Item-item cosine similarity on co-occurrence, pruned to ``neighbours`` per item."""

    name: ClassVar[str] = "itemknn"

    def __init__(self, neighbours: int = 100, shrink: float = 10.0) -> None:
        self.neighbours = neighbours
        self.shrink = shrink

    def _fit(self, interactions: InteractionMatrix) -> None:
        X = interactions.seen
        co = (X.T @ X).toarray().astype(np.float32)
        norms = np.sqrt(np.diag(co)).astype(np.float32)
        sim = co / (np.outer(norms, norms) + self.shrink)
        np.fill_diagonal(sim, 0.0)
        if self.neighbours < sim.shape[1]:
            cut = np.argpartition(-sim, self.neighbours - 1, axis=0)[self.neighbours :, :]
            np.put_along_axis(sim, cut, 0.0, axis=0)
        self.similarity_ = sp.csr_matrix(sim)

    def _score_rows(self, rows: np.ndarray) -> np.ndarray:
        X = self.interactions_.seen[rows]
        return np.asarray((X @ self.similarity_).toarray(), dtype=np.float32)


class MatrixFactorizationSource(CandidateSource):
    """Implicit-feedback matrix factorisation with the ``implicit`` library (ALS or BPR).

    Only the learned factors are kept (plain numpy), so the source pickles cleanly.
    Determinism: ``random_state`` and ``num_threads=1``.
    """

    name: ClassVar[str] = "mf"

    def __init__(
        self,
        algorithm: str = "als",
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 2.0,
        iterations: int = 20,
        learning_rate: float = 0.05,
        random_state: int | None = 0,
    ) -> None:
        self.algorithm = algorithm
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.learning_rate = learning_rate
        self.random_state = random_state

    def _fit(self, interactions: InteractionMatrix) -> None:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            if self.algorithm == "als":
                from implicit.cpu.als import AlternatingLeastSquares

                model = AlternatingLeastSquares(
                    factors=self.factors,
                    regularization=self.regularization,
                    alpha=self.alpha,
                    iterations=self.iterations,
                    num_threads=1,
                    random_state=self.random_state,
                )
            elif self.algorithm == "bpr":
                from implicit.cpu.bpr import BayesianPersonalizedRanking

                model = BayesianPersonalizedRanking(
                    factors=self.factors,
                    learning_rate=self.learning_rate,
                    regularization=self.regularization,
                    iterations=self.iterations,
                    num_threads=1,
                    random_state=self.random_state,
                )
            else:
                raise ValidationError(
                    f"unknown matrix-factorisation algorithm {self.algorithm!r}; "
                    "use 'als' or 'bpr'."
                )
            model.fit(interactions.seen.astype(np.float32).tocsr(), show_progress=False)
        self.user_factors_ = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float32)

    def _score_rows(self, rows: np.ndarray) -> np.ndarray:
        return self.user_factors_[rows] @ self.item_factors_.T


SOURCES: Final[dict[str, type[CandidateSource]]] = {
    PopularitySource.name: PopularitySource,
    EASESource.name: EASESource,
    ItemKNNSource.name: ItemKNNSource,
    MatrixFactorizationSource.name: MatrixFactorizationSource,
}


def make_source(name: str, **params: object) -> CandidateSource:
    """Build a source by registry name (``popularity``, ``ease``, ``itemknn``, ``mf``)."""
    if name not in SOURCES:
        raise ValidationError(f"unknown retrieval source {name!r}; choose from {sorted(SOURCES)}.")
    return SOURCES[name](**params)


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
    per_source: list[tuple[np.ndarray, np.ndarray]] = []
    seen = interactions.seen_rows(rows_in_matrix) if exclude_seen else None
    for source in sources.values():
        scores = source.scores_for_rows(rows_in_matrix, exclude_seen=exclude_seen, seen=seen)
        ranks = rank_rows(scores)
        union |= ranks <= n
        per_source.append((scores, ranks))
    rows, cols = np.nonzero(union)
    features = np.empty((len(rows), 2 * len(per_source)), dtype=np.float32)
    names: list[str] = []
    for j, (name, (scores, ranks)) in enumerate(zip(sources, per_source, strict=True)):
        features[:, 2 * j] = scores[rows, cols]
        features[:, 2 * j + 1] = ranks[rows, cols]
        names += [score_column(name), rank_column(name)]
    return RetrievedBlock(rows=rows, item_columns=cols, features=features, feature_names=names)


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


def candidate_recall(
    candidates: pd.DataFrame,
    relevant: pd.DataFrame,
    sources: Sequence[str],
    cutoffs: Sequence[int] = (50, 100, 200),
) -> pd.DataFrame:
    """Candidate recall@N per source and for the union of the sources' top N.

    Recall of a user = share of their relevant (``user_id, item_id``) pairs found in the
    candidate set; averaged over users with at least one relevant item. ``candidates`` must
    come from :func:`retrieve` with ``n >= max(cutoffs)``.

    Returns:
        A frame indexed by source name (plus ``union``) with one ``recall@N`` column per N.
    """
    rel = relevant[[USER_ID, ITEM_ID]].drop_duplicates()
    n_relevant = rel.groupby(USER_ID).size()
    joined = rel.merge(candidates, on=[USER_ID, ITEM_ID], how="left")
    out: dict[str, dict[str, float]] = {}

    def _recall(hit: pd.Series) -> float:
        per_user = hit.groupby(joined[USER_ID]).sum() / n_relevant
        return float(per_user.reindex(n_relevant.index, fill_value=0.0).mean())

    for cutoff in cutoffs:
        union_hit = pd.Series(False, index=joined.index)
        for source in sources:
            hit = joined[rank_column(source)].le(cutoff).fillna(False).astype(bool)
            union_hit |= hit
            out.setdefault(source, {})[f"recall@{cutoff}"] = _recall(hit)
        out.setdefault("union", {})[f"recall@{cutoff}"] = _recall(union_hit)
    return pd.DataFrame(out).T

"""The built-in retrieval sources: popularity, EASE, item-kNN and matrix factorisation.

Each is one :class:`~reelrank.models.retrieval.CandidateSource` subclass, registered under
its name at the bottom of this module; a new source is one class plus
:func:`~reelrank.models.retrieval.register_source` (no edit of the recommender).
"""

from __future__ import annotations

from typing import ClassVar, Final

import numpy as np

from reelrank.exceptions import ValidationError
from reelrank.models.interactions import InteractionMatrix, cosine_neighbours
from reelrank.models.retrieval import CandidateSource, register_source

DEFAULT_EASE_MAX_ITEMS: Final = 2_500
"""EASE's item cap (see :class:`EASESource`)."""


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
        max_items: fit on the ``max_items`` most frequent items only; other items score 0
            (they still come from the other sources). The fit holds the Gram matrix and its
            inverse in float64 (16 B x n^2) and inverts in ~2 n^3 flops, and a training
            run fits EASE some sixty times: the default 2,500 (100 MB, a second or two on
            2 cores) covers every MovieLens-100K title; 20,000 would be 6.4 GB per fit.
    """

    name: ClassVar[str] = "ease"

    def __init__(self, l2: float = 300.0, max_items: int = DEFAULT_EASE_MAX_ITEMS) -> None:
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
    """Item-item cosine similarity on co-occurrence, pruned to ``neighbours`` per item.

    Built a block of items at a time and kept sparse (:func:`cosine_neighbours`): memory
    ``O(items x neighbours)``, 16 MB for 20,000 items and 100 neighbours, where the dense
    matrix would take 1.6 GB.
    """

    name: ClassVar[str] = "itemknn"

    def __init__(self, neighbours: int = 100, shrink: float = 10.0) -> None:
        self.neighbours = neighbours
        self.shrink = shrink

    def _fit(self, interactions: InteractionMatrix) -> None:
        self.similarity_ = cosine_neighbours(
            interactions.seen, self.neighbours, self.shrink, dtype=np.float32
        )

    def _score_rows(self, rows: np.ndarray) -> np.ndarray:
        X = self.interactions_.seen[rows]
        return np.asarray((X @ self.similarity_).toarray(), dtype=np.float32)


class MatrixFactorizationSource(CandidateSource):
    """Implicit-feedback matrix factorisation with the ``implicit`` library (ALS or BPR).

    Only the learned factors are kept (plain numpy), so the source pickles cleanly.
    Determinism: ``random_state``. ALS solves each user's and item's factors independently,
    so it runs on every core (0: all; 1.8x faster on 2 cores) with bitwise the same factors
    as one thread; BPR's stochastic gradient updates race between threads, so it runs on
    one.
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
                    num_threads=0,
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


for _source in (PopularitySource, EASESource, ItemKNNSource, MatrixFactorizationSource):
    register_source(_source.name, _source)

"""A retrieval source and a ranker from outside the package, registered by addition only.

``REELRANK_PLUGINS=tests.pipelines.toy_plugins reelrank train --sources popularity,toy
--ranker toy-linear`` trains them: this module is all a portfolio extender writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Self

import numpy as np
from sklearn.base import BaseEstimator

from reelrank.models.interactions import InteractionMatrix
from reelrank.models.ranking import register_ranker
from reelrank.models.retrieval import CandidateSource, register_source


class ToySource(CandidateSource):
    """Items by how many users watched them, raised to ``boost`` (the same for everyone)."""

    name: ClassVar[str] = "toy"
    personalised: ClassVar[bool] = False

    def __init__(self, boost: float = 1.0) -> None:
        self.boost = boost

    def _fit(self, interactions: InteractionMatrix) -> None:
        counts = np.asarray(interactions.seen.sum(axis=0), dtype=np.float64).ravel()
        self.item_scores_ = (counts**self.boost).astype(np.float32)

    def _score_rows(self, rows: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.item_scores_, (len(rows), len(self.item_scores_)))


class ToyLinearRanker(BaseEstimator):
    """Least squares of the labels on the features (NaN read as 0): no importances."""

    def __init__(self, ridge: float = 1.0) -> None:
        self.ridge = ridge

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        group_sizes: np.ndarray,
        feature_names: Sequence[str],
        categorical: Sequence[str] = (),
    ) -> Self:
        A = np.nan_to_num(np.asarray(X, dtype=np.float64))
        gram = A.T @ A + self.ridge * np.eye(A.shape[1])
        self.coef_ = np.linalg.solve(gram, A.T @ np.asarray(y, dtype=np.float64))
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.nan_to_num(np.asarray(X, dtype=np.float64)) @ self.coef_


register_source("toy", ToySource)
register_ranker("toy-linear", ToyLinearRanker)

"""k-nearest neighbours from scratch (brute force, Euclidean distance).

Fitting only stores the training set. To predict for ``x``:

1. compute ``d_i = ||x - x_i||`` for every training point;
2. take the ``k`` smallest (``argpartition`` then sort those ``k``: ``O(n)`` not ``O(n log n)``);
3. weights ``w_i = 1`` (``"uniform"``) or ``w_i = 1 / d_i`` (``"distance"``; if some
   neighbours sit exactly on ``x``, only they count);
4. classification: ``P(c | x) = sum_{i: y_i = c} w_i / sum_i w_i``, predict the arg-max
   (ties go to the smallest label); regression: ``y_hat = sum_i w_i y_i / sum_i w_i``.

Distances use ``||a - b||^2 = ||a||^2 - 2 a.b + ||b||^2`` as one matrix product,
computed in chunks of query rows so memory stays bounded.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from reelrank.scratch._validation import (
    FloatArray,
    IntArray,
    ScratchInputError,
    check_array,
    check_is_fitted,
    check_n_features,
    check_x_y,
    encode_labels,
)
from reelrank.scratch.kmeans import squared_distances

Weights = Literal["uniform", "distance"]
_CHUNK_ELEMENTS = 4_000_000  # query rows x training rows per distance block


class _KNeighborsBase(BaseEstimator):
    def __init__(self, n_neighbors: int = 5, *, weights: Weights = "uniform") -> None:
        self.n_neighbors = n_neighbors
        self.weights = weights

    def _fit_inputs(self, X: ArrayLike, y: ArrayLike, numeric_y: bool) -> NDArray[Any]:
        if self.weights not in ("uniform", "distance"):
            raise ScratchInputError(
                f"weights must be 'uniform' or 'distance'; got {self.weights!r}."
            )
        X_checked, y_checked = check_x_y(X, y, numeric_y=numeric_y)
        if not 1 <= self.n_neighbors <= X_checked.shape[0]:
            raise ScratchInputError(
                f"n_neighbors={self.n_neighbors} must be between 1 and the number of "
                f"training samples ({X_checked.shape[0]})."
            )
        self.n_features_in_ = X_checked.shape[1]
        self.n_samples_fit_ = X_checked.shape[0]
        self._fit_X = X_checked
        return y_checked

    def kneighbors(
        self, X: ArrayLike, n_neighbors: int | None = None
    ) -> tuple[FloatArray, IntArray]:
        """Distances to, and indices of, the nearest training points (nearest first)."""
        check_is_fitted(self, "_fit_X")
        X_checked = check_array(X)
        check_n_features(self, X_checked)
        k = self.n_neighbors if n_neighbors is None else n_neighbors
        n_train = self._fit_X.shape[0]
        chunk = max(1, _CHUNK_ELEMENTS // n_train)
        distances = np.empty((X_checked.shape[0], k))
        indices = np.empty((X_checked.shape[0], k), dtype=np.int64)
        for start in range(0, X_checked.shape[0], chunk):
            d2 = squared_distances(X_checked[start : start + chunk], self._fit_X)
            rows = np.arange(d2.shape[0])[:, None]
            nearest = (
                np.argpartition(d2, k - 1, axis=1)[:, :k]
                if k < n_train
                else (np.broadcast_to(np.arange(n_train), d2.shape))
            )
            order = np.argsort(d2[rows, nearest], axis=1, kind="stable")
            nearest = nearest[rows, order]
            indices[start : start + chunk] = nearest
            distances[start : start + chunk] = np.sqrt(d2[rows, nearest])
        return distances, indices

    def _neighbor_weights(self, distances: FloatArray) -> FloatArray:
        if self.weights == "uniform":
            return np.ones_like(distances)
        with np.errstate(divide="ignore"):
            inverse = 1.0 / distances
        exact = np.isinf(inverse)
        exact_rows = exact.any(axis=1)
        inverse[exact_rows] = exact[exact_rows]
        return inverse


class KNeighborsClassifier(ClassifierMixin, _KNeighborsBase):
    """Majority (or distance-weighted) vote of the ``n_neighbors`` nearest training points.

    Args:
        n_neighbors: ``k``.
        weights: ``"uniform"`` or ``"distance"`` (``1 / d``).
    """

    def fit(self, X: ArrayLike, y: ArrayLike) -> KNeighborsClassifier:
        """Store the training data."""
        labels = self._fit_inputs(X, y, numeric_y=False)
        self.classes_, self._y_codes = encode_labels(labels)
        return self

    def predict_proba(self, X: ArrayLike) -> FloatArray:
        """Weighted share of each class among the neighbours, columns in ``classes_`` order."""
        distances, indices = self.kneighbors(X)
        weights = self._neighbor_weights(distances)
        codes = self._y_codes[indices]
        proba = np.zeros((codes.shape[0], self.classes_.size))
        np.add.at(proba, (np.arange(codes.shape[0])[:, None], codes), weights)
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """Most likely class (first in sorted order on ties)."""
        best = self.predict_proba(X).argmax(axis=1)
        return self.classes_[best]


class KNeighborsRegressor(RegressorMixin, _KNeighborsBase):
    """Mean (or distance-weighted mean) target of the ``n_neighbors`` nearest training points.

    Args:
        n_neighbors: ``k``.
        weights: ``"uniform"`` or ``"distance"`` (``1 / d``).
    """

    def fit(self, X: ArrayLike, y: ArrayLike) -> KNeighborsRegressor:
        """Store the training data."""
        self._y = np.asarray(self._fit_inputs(X, y, numeric_y=True), dtype=np.float64)
        return self

    def predict(self, X: ArrayLike) -> FloatArray:
        """Weighted average of the neighbours' targets."""
        distances, indices = self.kneighbors(X)
        weights = self._neighbor_weights(distances)
        return (weights * self._y[indices]).sum(axis=1) / weights.sum(axis=1)

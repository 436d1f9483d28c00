"""Feature scaling from scratch: min-max and z-score (standard) scaling.

Min-max maps each column to ``[a, b]``::

    scale_j = (b - a) / (max_j - min_j)        x' = x * scale_j + (a - min_j * scale_j)

Z-score centres each column and divides by its population standard deviation::

    mu_j = mean(x_j)        sigma_j = sqrt(mean((x_j - mu_j)^2))        x' = (x - mu_j) / sigma_j

Constant columns get a scale of 1 (no division by zero). The variance uses the
*corrected two-pass* formula ``(sum(d^2) - sum(d)^2 / n) / n`` with ``d = x - mu``,
which cancels the rounding error of the first pass; it is what scikit-learn does,
so both give bit-identical results.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, TransformerMixin

from reelrank.scratch._validation import (
    FloatArray,
    ScratchInputError,
    check_array,
    check_is_fitted,
    check_n_features,
)

_EPS = float(np.finfo(np.float64).eps)


def mean_and_scale(X: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Column means, population variances and safe standard deviations of ``X``.

    Returns:
        ``(mean, var, scale)`` where ``scale`` is ``sqrt(var)`` with (near-)constant
        columns set to 1.
    """
    n = X.shape[0]
    mean = X.sum(axis=0) / n
    centred = X - mean
    correction = centred.sum(axis=0)
    var = ((centred**2).sum(axis=0) - correction**2 / n) / n
    # A column is constant if its variance is within rounding error of zero.
    constant = var <= n * _EPS * var + (n * mean * _EPS) ** 2
    scale = np.sqrt(var)
    scale[constant] = 1.0
    return mean, var, scale


class MinMaxScaler(TransformerMixin, BaseEstimator):
    """Scale each feature to ``feature_range`` using the min and max seen in ``fit``.

    Args:
        feature_range: Target interval ``(a, b)`` with ``a < b``.
    """

    def __init__(self, feature_range: tuple[float, float] = (0.0, 1.0)) -> None:
        self.feature_range = feature_range

    def fit(self, X: ArrayLike, y: object = None) -> MinMaxScaler:
        """Learn ``data_min_``, ``data_max_``, ``scale_`` and ``min_``."""
        low, high = self.feature_range
        if not low < high:
            raise ScratchInputError(
                f"feature_range must be (low, high) with low < high; got {self.feature_range}."
            )
        X_checked = check_array(X)
        data_min = X_checked.min(axis=0)
        data_max = X_checked.max(axis=0)
        data_range = data_max - data_min
        safe_range = data_range.copy()
        safe_range[safe_range < 10 * _EPS] = 1.0
        self.n_features_in_ = X_checked.shape[1]
        self.data_min_ = data_min
        self.data_max_ = data_max
        self.data_range_ = data_range
        self.scale_: FloatArray = (high - low) / safe_range
        self.min_: FloatArray = low - data_min * self.scale_
        return self

    def transform(self, X: ArrayLike) -> FloatArray:
        """Return ``X * scale_ + min_``."""
        check_is_fitted(self, "scale_")
        X_checked = check_array(X)
        check_n_features(self, X_checked)
        out = X_checked.copy()
        out *= self.scale_
        out += self.min_
        return out

    def inverse_transform(self, X: ArrayLike) -> FloatArray:
        """Undo :meth:`transform`: ``(X - min_) / scale_``."""
        check_is_fitted(self, "scale_")
        X_checked = check_array(X)
        check_n_features(self, X_checked)
        out = X_checked.copy()
        out -= self.min_
        out /= self.scale_
        return out


class StandardScaler(TransformerMixin, BaseEstimator):
    """Z-score scaling: subtract the column mean, divide by the column standard deviation.

    Args:
        with_mean: Centre the data.
        with_std: Divide by the standard deviation.
    """

    def __init__(self, *, with_mean: bool = True, with_std: bool = True) -> None:
        self.with_mean = with_mean
        self.with_std = with_std

    def fit(self, X: ArrayLike, y: object = None) -> StandardScaler:
        """Learn ``mean_``, ``var_`` and ``scale_`` (population statistics, ddof=0)."""
        X_checked = check_array(X)
        mean, var, scale = mean_and_scale(X_checked)
        self.n_features_in_ = X_checked.shape[1]
        self.n_samples_seen_ = X_checked.shape[0]
        self.mean_: FloatArray = mean
        self.var_: FloatArray = var
        self.scale_: FloatArray = scale
        return self

    def transform(self, X: ArrayLike) -> FloatArray:
        """Return ``(X - mean_) / scale_`` (each step only if enabled)."""
        check_is_fitted(self, "scale_")
        X_checked = check_array(X)
        check_n_features(self, X_checked)
        out = X_checked.copy()
        if self.with_mean:
            out -= self.mean_
        if self.with_std:
            out /= self.scale_
        return out

    def inverse_transform(self, X: ArrayLike) -> FloatArray:
        """Undo :meth:`transform`: ``X * scale_ + mean_``."""
        check_is_fitted(self, "scale_")
        X_checked = check_array(X)
        check_n_features(self, X_checked)
        out = X_checked.copy()
        if self.with_std:
            out *= self.scale_
        if self.with_mean:
            out += self.mean_
        return out

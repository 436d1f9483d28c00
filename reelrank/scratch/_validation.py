"""Input checks shared by the scratch estimators (NumPy only).

Every estimator validates what it is given before learning from it: a 2-D
finite float matrix, a 1-D target of the same length, and at predict time the
same number of features as at fit time. Errors are project exceptions that also
subclass ``ValueError`` so scikit-learn tooling that catches ``ValueError``
(``cross_val_score(error_score=...)``, ``check_estimator``) keeps working.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from reelrank.exceptions import NotFittedError, ValidationError

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


class ScratchInputError(ValidationError, ValueError):
    """An input given to a scratch estimator or metric has the wrong shape, type or values."""


def check_array(X: ArrayLike, *, name: str = "X", allow_nan: bool = False) -> FloatArray:
    """Return ``X`` as a C-contiguous 2-D float64 array, or raise ScratchInputError."""
    try:
        array = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ScratchInputError(
            f"{name} must be numeric (a 2-D array or DataFrame of numbers): {exc}. "
            "Encode categorical columns before fitting."
        ) from exc
    if array.ndim == 1:
        raise ScratchInputError(
            f"{name} must be 2-D (n_samples, n_features); got a 1-D array of shape "
            f"{array.shape}. Reshape with X.reshape(-1, 1) for a single feature."
        )
    if array.ndim != 2:
        raise ScratchInputError(f"{name} must be 2-D; got {array.ndim} dimensions.")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ScratchInputError(
            f"{name} has shape {array.shape}; at least one sample and one feature are needed."
        )
    if not allow_nan and not np.all(np.isfinite(array)):
        raise ScratchInputError(
            f"{name} contains NaN or infinite values; impute or drop them before fitting "
            "(the scratch models do not handle missing values)."
        )
    return np.ascontiguousarray(array)


def check_1d(y: ArrayLike, *, name: str = "y") -> NDArray[Any]:
    """Return ``y`` as a 1-D array (a column vector is flattened)."""
    array = np.asarray(y)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array.ravel()
    if array.ndim != 1:
        raise ScratchInputError(f"{name} must be 1-D; got shape {array.shape}.")
    return array


def check_x_y(X: ArrayLike, y: ArrayLike, *, numeric_y: bool = False) -> tuple[FloatArray, Any]:
    """Validate a design matrix and its target together (same number of rows)."""
    X_checked = check_array(X)
    y_checked = check_1d(y)
    if y_checked.shape[0] != X_checked.shape[0]:
        raise ScratchInputError(
            f"X has {X_checked.shape[0]} rows but y has {y_checked.shape[0]}; "
            "they must describe the same samples."
        )
    if numeric_y:
        y_checked = np.asarray(y_checked, dtype=np.float64)
        if not np.all(np.isfinite(y_checked)):
            raise ScratchInputError("y contains NaN or infinite values; drop those rows.")
    return X_checked, y_checked


def check_is_fitted(estimator: object, attribute: str) -> None:
    """Raise NotFittedError if ``estimator`` has not learned ``attribute`` yet."""
    if not hasattr(estimator, attribute):
        raise NotFittedError(
            f"This {type(estimator).__name__} is not fitted yet; call fit(X, y) first."
        )


def check_n_features(estimator: object, X: FloatArray) -> None:
    """Raise if ``X`` has a different number of columns than the data seen in ``fit``."""
    expected = int(estimator.n_features_in_)  # type: ignore[attr-defined]
    if X.shape[1] != expected:
        raise ScratchInputError(
            f"X has {X.shape[1]} features but {type(estimator).__name__} was fitted with "
            f"{expected}; pass the same columns as in fit."
        )


def check_random_state(seed: int | np.random.Generator | None) -> np.random.Generator:
    """Turn ``None``, an int or a Generator into a ``numpy.random.Generator``."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def encode_labels(y: NDArray[Any]) -> tuple[NDArray[Any], IntArray]:
    """Return (sorted unique classes, integer code of each label)."""
    classes, codes = np.unique(y, return_inverse=True)
    return classes, codes.astype(np.int64)

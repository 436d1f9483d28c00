"""Small deterministic data sets shared by the scratch parity tests."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def regression_data() -> tuple[np.ndarray, np.ndarray]:
    """400 x 6 standardised features, linear target with small Gaussian noise."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6))
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    y = X @ np.array([1.5, -2.0, 0.5, 0.0, 3.0, -1.0]) + 0.7 + rng.normal(scale=0.3, size=400)
    return X, y


@pytest.fixture(scope="session")
def binary_data() -> tuple[np.ndarray, np.ndarray]:
    """400 x 8 standardised features, labels drawn from a sparse logistic model."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 8))
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    w = np.array([1.5, -2.0, 0.5, 0.0, 0.0, 1.0, 0.0, -0.3])
    y = (rng.random(400) < 1.0 / (1.0 + np.exp(-(X @ w + 0.3)))).astype(int)
    return X, y


@pytest.fixture(scope="session")
def multiclass_data() -> tuple[np.ndarray, np.ndarray]:
    """300 x 5 continuous features, three classes (string labels to exercise encoding)."""
    rng = np.random.default_rng(2)
    centers = np.array([[0, 0, 0, 0, 0], [2, 2, 0, 1, 0], [0, 2, 2, 0, 1]], dtype=float)
    codes = rng.integers(0, 3, size=300)
    X = centers[codes] + rng.normal(scale=1.0, size=(300, 5))
    return X, np.array(["action", "comedy", "drama"])[codes]


@pytest.fixture(scope="session")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    """Four well-separated 2-D Gaussian blobs, 75 points each."""
    rng = np.random.default_rng(3)
    centers = np.array([[-6.0, -6.0], [6.0, -6.0], [-6.0, 6.0], [6.0, 6.0]])
    labels = np.repeat(np.arange(4), 75)
    return centers[labels] + rng.normal(scale=0.8, size=(300, 2)), labels


@pytest.fixture(scope="session", autouse=True)
def _single_threaded_blas():
    """Small matrices: one BLAS thread is faster and immune to oversubscribed CI runners."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield

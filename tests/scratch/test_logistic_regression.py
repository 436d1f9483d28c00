"""Parity: scratch logistic regression vs sklearn.linear_model.LogisticRegression."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression as SkLogisticRegression

from reelrank.scratch.logistic_regression import LogisticRegression

COEF_ATOL = 1e-4
PROBA_ATOL = 1e-5

# (scratch penalty, C, sklearn keyword arguments)
PENALTY_CASES = [
    ("l2", 1.0, {"solver": "lbfgs"}),
    ("l2", 0.05, {"solver": "lbfgs"}),
    (None, 1.0, {"solver": "lbfgs", "C": np.inf}),
    ("l1", 0.1, {"solver": "saga", "l1_ratio": 1.0}),
    ("elasticnet", 0.1, {"solver": "saga", "l1_ratio": 0.5}),
]


def _sklearn_fit(C, kwargs, X, y):
    params = {"C": C, "tol": 1e-10, "max_iter": 100_000, **kwargs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation notices about `penalty`
        return SkLogisticRegression(**params).fit(X, y)


@pytest.mark.parametrize(("penalty", "C", "sk_kwargs"), PENALTY_CASES)
def test_matches_sklearn(binary_data, penalty, C, sk_kwargs):
    X, y = binary_data
    reference = _sklearn_fit(C, sk_kwargs, X, y)
    model = LogisticRegression(penalty, C=C, l1_ratio=0.5, standardize=False, tol=1e-8).fit(X, y)
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=0, atol=COEF_ATOL)
    np.testing.assert_allclose(model.intercept_, reference.intercept_, rtol=0, atol=COEF_ATOL)
    np.testing.assert_allclose(
        model.predict_proba(X), reference.predict_proba(X), rtol=0, atol=PROBA_ATOL
    )
    np.testing.assert_array_equal(model.predict(X), reference.predict(X))


@pytest.mark.parametrize("penalty", ["l1", "elasticnet"])
def test_sparse_penalties_zero_the_same_weights(binary_data, penalty):
    X, y = binary_data
    ratio = 1.0 if penalty == "l1" else 0.5
    reference = _sklearn_fit(0.1, {"solver": "saga", "l1_ratio": ratio}, X, y)
    model = LogisticRegression(penalty, C=0.1, l1_ratio=0.5, standardize=False, tol=1e-8)
    model.fit(X, y)
    assert (model.coef_ == 0).sum() >= 1
    np.testing.assert_array_equal(model.coef_ == 0, reference.coef_ == 0)


def test_internal_standardisation_gives_same_model_on_any_scale(binary_data):
    X, y = binary_data
    shifted = X * np.array([1e3, 1e-3, 1, 50, 1, 1, 1, 7]) + 1e4
    on_raw = LogisticRegression("l2", C=1.0, tol=1e-9).fit(shifted, y)
    on_standard = LogisticRegression("l2", C=1.0, tol=1e-9).fit(X, y)
    np.testing.assert_allclose(
        on_raw.predict_proba(shifted), on_standard.predict_proba(X), rtol=0, atol=1e-6
    )


def test_string_labels_and_class_order(binary_data):
    X, y = binary_data
    labels = np.where(y == 1, "watched", "skipped")
    model = LogisticRegression().fit(X, labels)
    assert model.classes_.tolist() == ["skipped", "watched"]
    assert set(model.predict(X)) <= {"skipped", "watched"}


def test_more_than_two_classes_is_rejected(multiclass_data):
    X, y = multiclass_data
    with pytest.raises(ValueError, match="binary"):
        LogisticRegression().fit(X, y)


def test_loss_history_is_finite_and_falls(binary_data):
    X, y = binary_data
    model = LogisticRegression("l1", C=0.5).fit(X, y)
    history = np.asarray(model.loss_history_)
    assert np.isfinite(history).all()
    assert history[-1] < history[0]

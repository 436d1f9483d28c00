"""Scratch MLP: numerical gradient check and accuracy comparable to sklearn's MLPClassifier."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.model_selection import cross_val_score
from sklearn.neural_network import MLPClassifier as SkMLPClassifier

from reelrank.exceptions import ReelRankError
from reelrank.scratch.mlp import MLPClassifier
from reelrank.scratch.model_selection import StratifiedKFold

GRADIENT_RTOL = 1e-6
ACCURACY_GAP = 0.03


def _max_relative_gradient_error(model, X, y, h=1e-6):
    _, coef_grads, intercept_grads = model.loss_and_gradients(X, y)
    worst = 0.0
    for params, grads in ((model.coefs_, coef_grads), (model.intercepts_, intercept_grads)):
        for param, grad in zip(params, grads, strict=True):
            for index in np.ndindex(param.shape):
                original = param[index]
                param[index] = original + h
                loss_plus = model.loss_and_gradients(X, y)[0]
                param[index] = original - h
                loss_minus = model.loss_and_gradients(X, y)[0]
                param[index] = original
                numeric = (loss_plus - loss_minus) / (2 * h)
                scale = max(abs(numeric) + abs(grad[index]), 1e-8)
                worst = max(worst, abs(numeric - grad[index]) / scale)
    return worst


@pytest.mark.parametrize("activation", ["tanh", "logistic"])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_backprop_matches_finite_differences(multiclass_data, activation, n_classes):
    X, y = multiclass_data
    X, y = X[:40], y[:40]
    if n_classes == 2:
        y = np.where(y == "action", "action", "other")
    model = MLPClassifier((6, 4), activation=activation, alpha=0.1, max_iter=3, random_state=0)
    model.fit(X, y)
    assert _max_relative_gradient_error(model, X, y) < GRADIENT_RTOL


def test_relu_gradients_match_away_from_kinks(binary_data):
    X, y = binary_data
    model = MLPClassifier((5,), activation="relu", max_iter=2, random_state=0).fit(X, y)
    assert _max_relative_gradient_error(model, X[:30], y[:30]) < GRADIENT_RTOL


@pytest.mark.parametrize(("solver", "learning_rate"), [("adam", 0.001), ("sgd", 0.05)])
def test_accuracy_is_comparable_to_sklearn(multiclass_data, solver, learning_rate):
    X, y = multiclass_data
    params = {
        "hidden_layer_sizes": (16,),
        "max_iter": 200,
        "random_state": 0,
        "solver": solver,
        "learning_rate_init": learning_rate,
    }
    cv = StratifiedKFold(5)
    ours = cross_val_score(MLPClassifier(**params), X, y, cv=cv).mean()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning
        theirs = cross_val_score(SkMLPClassifier(**params), X, y, cv=cv).mean()
    assert ours >= theirs - ACCURACY_GAP
    assert ours > 0.75
    proba = MLPClassifier(**params).fit(X, y).predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_robust_on_raw_wide_features():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 40)) * rng.uniform(0.01, 1e4, size=40) + 1e5
    X[:, 3] = 7.0  # a constant column
    y = (X[:, 0] - 1e5 + rng.normal(scale=100, size=3000) > 0).astype(int)
    model = MLPClassifier((32,), learning_rate_init=0.01, max_iter=10, random_state=0).fit(X, y)
    assert np.isfinite(model.predict_proba(X)).all()
    assert (model.predict(X) == y).mean() > 0.8


def test_absurd_learning_rate_gives_no_nan(binary_data):
    X, y = binary_data
    model = MLPClassifier(
        (8,), solver="sgd", learning_rate_init=1e6, momentum=0.0, standardize=False, max_iter=5
    )
    try:
        proba = model.fit(X * 1e6, y).predict_proba(X * 1e6)
    except ReelRankError as exc:  # the guard against non-finite weights may fire instead
        message = str(exc)
    else:
        message = "diverged" if np.isfinite(proba).all() else "NaN in predict_proba"
    assert "diverged" in message

"""Parity: scratch linear regression (all solvers) vs sklearn.linear_model.LinearRegression."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression as SkLinearRegression

from reelrank.exceptions import ReelRankError
from reelrank.scratch.linear_regression import LinearRegression

# (solver, hyperparameters, absolute tolerance on coef_ and intercept_)
SOLVER_CASES = [
    ("normal", {}, 1e-10),
    ("batch", {"learning_rate": 0.5}, 1e-5),
    ("sgd", {"learning_rate": 0.02, "lr_decay": 1.0, "max_iter": 30}, 1e-3),
    ("minibatch", {"learning_rate": 0.1, "lr_decay": 0.5, "max_iter": 200}, 1e-3),
    ("adam", {"learning_rate": 0.05, "batch_size": 400, "max_iter": 300}, 1e-4),
]


@pytest.mark.parametrize(("solver", "params", "atol"), SOLVER_CASES)
def test_coefficients_match_sklearn(regression_data, solver, params, atol):
    X, y = regression_data
    reference = SkLinearRegression().fit(X, y)
    model = LinearRegression(solver, random_state=0, n_iter_no_change=1000, **params).fit(X, y)
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=0, atol=atol)
    assert model.intercept_ == pytest.approx(reference.intercept_, abs=atol)
    np.testing.assert_allclose(model.predict(X), reference.predict(X), rtol=0, atol=10 * atol)


def test_closed_form_without_intercept_matches_sklearn(regression_data):
    X, y = regression_data
    reference = SkLinearRegression(fit_intercept=False).fit(X, y)
    model = LinearRegression("normal", fit_intercept=False).fit(X, y)
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=0, atol=1e-10)
    assert model.intercept_ == 0.0


@pytest.mark.parametrize(
    ("solver", "learning_rate"),
    [("batch", 0.3), ("sgd", 0.01), ("minibatch", 0.05), ("adam", 0.05)],
)
def test_loss_history_decreases_overall(regression_data, solver, learning_rate):
    X, y = regression_data
    model = LinearRegression(solver, learning_rate=learning_rate, max_iter=20, random_state=0)
    model.fit(X, y)
    history = model.loss_history_
    assert len(history) == model.n_iter_ + 1
    assert history[-1] < 0.1 * history[0]


def test_divergence_raises_a_clear_error(regression_data):
    X, y = regression_data
    with pytest.raises(ReelRankError, match="diverged"):
        LinearRegression("batch", learning_rate=50.0, max_iter=200).fit(X * 100, y)


def test_unknown_solver_is_rejected(regression_data):
    X, y = regression_data
    with pytest.raises(ValueError, match="solver must be one of"):
        LinearRegression("newton").fit(X, y)  # type: ignore[arg-type]

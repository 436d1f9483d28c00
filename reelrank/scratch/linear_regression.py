"""Linear regression from scratch: gradient descent (four flavours) and the closed form.

Model ``y_hat = X w + b``; loss (half mean squared error)::

    L(w, b) = 1 / (2 n) * sum_i (x_i . w + b - y_i)^2
    dL/dw   = X^T r / n,   dL/db = mean(r),   r = X w + b - y

Solvers (one *epoch* = one pass over the data):

* ``"batch"``: one step per epoch on the full gradient: ``theta -= eta * grad``.
* ``"sgd"``: one step per sample, in a fresh random order every epoch.
* ``"minibatch"``: one step per batch of ``batch_size`` samples.
* ``"adam"``: mini-batch steps with Adam: ``m = b1 m + (1 - b1) g``,
  ``v = b2 v + (1 - b2) g^2``, ``theta -= eta * m_hat / (sqrt(v_hat) + eps)``
  with bias corrections ``m_hat = m / (1 - b1^t)``, ``v_hat = v / (1 - b2^t)``.
* ``"normal"``: the closed form, ``min ||[X 1] theta - y||^2`` solved by least
  squares (``lstsq``, an SVD; never invert ``X^T X`` explicitly).

The step size decays as ``eta_epoch = learning_rate / (1 + lr_decay * epoch)``
(Robbins-Monro: with a decaying step, SGD converges instead of jittering).
Gradient descent needs features on comparable scales: standardise ``X`` first
(e.g. ``Pipeline([("scale", StandardScaler()), ("lr", LinearRegression())])``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, RegressorMixin

from reelrank.exceptions import ReelRankError
from reelrank.scratch._validation import (
    FloatArray,
    ScratchInputError,
    check_array,
    check_is_fitted,
    check_n_features,
    check_random_state,
    check_x_y,
)

Solver = Literal["batch", "sgd", "minibatch", "adam", "normal"]
SOLVERS: tuple[str, ...] = ("batch", "sgd", "minibatch", "adam", "normal")
_DIVERGENCE_FACTOR = 1e4


def half_mse(X: FloatArray, y: FloatArray, w: FloatArray, b: float) -> float:
    """``1 / (2 n) * ||X w + b - y||^2``."""
    residual = X @ w + b - y
    return float(residual @ residual) / (2 * y.shape[0])


class LinearRegression(RegressorMixin, BaseEstimator):
    """Least-squares linear regression trained by gradient descent or solved in closed form.

    Args:
        solver: ``"batch"``, ``"sgd"``, ``"minibatch"``, ``"adam"`` or ``"normal"``.
        learning_rate: Initial step size ``eta``.
        max_iter: Maximum number of epochs (ignored by ``"normal"``).
        batch_size: Samples per step for ``"minibatch"`` and ``"adam"``.
        lr_decay: Step-size decay per epoch (0 keeps it constant).
        tol: Stop when the epoch loss has not improved by more than ``tol`` for
            ``n_iter_no_change`` consecutive epochs.
        n_iter_no_change: Patience for ``tol``.
        fit_intercept: Learn a bias ``b``.
        beta1: Adam's first-moment decay.
        beta2: Adam's second-moment decay.
        random_state: Seed for the sample order and the initial weights.

    Attributes:
        coef_: Weights ``w``, shape ``(n_features,)``.
        intercept_: Bias ``b``.
        loss_history_: Half-MSE on the full training set after each epoch
            (index 0 is the loss at the initial weights).
        n_iter_: Epochs run.
    """

    def __init__(
        self,
        solver: Solver = "batch",
        *,
        learning_rate: float = 0.01,
        max_iter: int = 1000,
        batch_size: int = 32,
        lr_decay: float = 0.0,
        tol: float = 1e-10,
        n_iter_no_change: int = 5,
        fit_intercept: bool = True,
        beta1: float = 0.9,
        beta2: float = 0.999,
        random_state: int | None = None,
    ) -> None:
        self.solver = solver
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.lr_decay = lr_decay
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.fit_intercept = fit_intercept
        self.beta1 = beta1
        self.beta2 = beta2
        self.random_state = random_state

    def _check_params(self) -> None:
        if self.solver not in SOLVERS:
            raise ScratchInputError(f"solver must be one of {SOLVERS}; got {self.solver!r}.")
        if self.learning_rate <= 0 or self.max_iter < 1 or self.batch_size < 1:
            raise ScratchInputError(
                "learning_rate must be > 0, max_iter >= 1 and batch_size >= 1; got "
                f"{self.learning_rate}, {self.max_iter}, {self.batch_size}."
            )

    def fit(self, X: ArrayLike, y: ArrayLike) -> LinearRegression:
        """Learn ``coef_`` and ``intercept_`` from ``X`` (n, d) and ``y`` (n,)."""
        self._check_params()
        X_checked, y_checked = check_x_y(X, y, numeric_y=True)
        self.n_features_in_ = X_checked.shape[1]
        if self.solver == "normal":
            self._fit_normal(X_checked, y_checked)
        else:
            self._fit_gradient(X_checked, y_checked)
        return self

    def _fit_normal(self, X: FloatArray, y: FloatArray) -> None:
        if self.fit_intercept:
            # Centre, solve without intercept, recover b = mean(y) - mean(X) . w.
            x_mean, y_mean = X.mean(axis=0), y.mean()
            w = np.linalg.lstsq(X - x_mean, y - y_mean, rcond=None)[0]
            b = float(y_mean - x_mean @ w)
        else:
            w, b = np.linalg.lstsq(X, y, rcond=None)[0], 0.0
        self.coef_: FloatArray = w
        self.intercept_ = b
        self.loss_history_ = [half_mse(X, y, w, b)]
        self.n_iter_ = 0

    def _fit_gradient(self, X: FloatArray, y: FloatArray) -> None:
        n, d = X.shape
        rng = check_random_state(self.random_state)
        w: FloatArray = np.asarray(rng.normal(scale=0.01, size=d), dtype=np.float64)
        b = 0.0
        batch = {"batch": n, "sgd": 1}.get(self.solver, min(self.batch_size, n))
        m_w, v_w = np.zeros(d), np.zeros(d)
        m_b = v_b = 0.0
        t = 0
        history = [half_mse(X, y, w, b)]
        best, stale = history[0], 0
        epoch = 0
        for epoch in range(1, self.max_iter + 1):
            eta = self.learning_rate / (1.0 + self.lr_decay * (epoch - 1))
            order = np.arange(n) if batch == n else rng.permutation(n)
            for start in range(0, n, batch):
                rows = order[start : start + batch]
                X_b = X[rows]
                residual = X_b @ w + b - y[rows]
                grad_w = X_b.T @ residual / rows.size
                grad_b = float(residual.mean()) if self.fit_intercept else 0.0
                if self.solver == "adam":
                    t += 1
                    m_w = self.beta1 * m_w + (1 - self.beta1) * grad_w
                    v_w = self.beta2 * v_w + (1 - self.beta2) * grad_w**2
                    m_b = self.beta1 * m_b + (1 - self.beta1) * grad_b
                    v_b = self.beta2 * v_b + (1 - self.beta2) * grad_b**2
                    c1, c2 = 1 - self.beta1**t, 1 - self.beta2**t
                    w = w - eta * (m_w / c1) / (np.sqrt(v_w / c2) + 1e-8)
                    b = b - eta * (m_b / c1) / (np.sqrt(v_b / c2) + 1e-8)
                else:
                    w = w - eta * grad_w
                    b = b - eta * grad_b
            loss = half_mse(X, y, w, b)
            # Far worse than predicting 0 (the start) means the steps are too large.
            if not np.isfinite(loss) or loss > _DIVERGENCE_FACTOR * max(history[0], 1.0):
                raise ReelRankError(
                    f"LinearRegression({self.solver!r}) diverged at epoch {epoch} "
                    f"(learning_rate={self.learning_rate}); lower the learning rate or "
                    "standardise X."
                )
            history.append(loss)
            if loss < best - self.tol:
                best, stale = loss, 0
            else:
                stale += 1
                if stale >= self.n_iter_no_change:
                    break
        self.coef_ = w
        self.intercept_ = float(b)
        self.loss_history_ = history
        self.n_iter_ = epoch

    def predict(self, X: ArrayLike) -> FloatArray:
        """``X @ coef_ + intercept_``."""
        check_is_fitted(self, "coef_")
        X_checked = check_array(X)
        check_n_features(self, X_checked)
        return X_checked @ self.coef_ + self.intercept_

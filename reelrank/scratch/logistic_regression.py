"""Binary logistic regression from scratch with L1, L2 and elastic-net penalties.

Model ``p(y=1 | x) = sigma(x . w + b)`` with ``sigma(z) = 1 / (1 + exp(-z))``.
Objective (scikit-learn's, divided by ``C n``; the intercept is not penalised)::

    F(w, b) = 1/n sum_i log(1 + exp(-s_i (x_i . w + b)))            s_i in {-1, +1}
              + lam * ((1 - rho) / 2 ||w||^2 + rho ||w||_1),      lam = 1 / (C n)

``rho = 0`` for ``"l2"``, ``1`` for ``"l1"``, ``l1_ratio`` for ``"elasticnet"``;
``penalty=None`` sets ``lam = 0``. The smooth part has gradient
``X^T (p - y) / n + lam (1 - rho) w`` and is ``L``-smooth with
``L = lambda_max(X~^T X~) / (4 n) + lam (1 - rho)`` (``X~`` = ``X`` with a column
of ones). The L1 part is handled by its proximal operator, soft-thresholding::

    prox(v)_j = sign(v_j) * max(|v_j| - step * lam * rho, 0)

which sets small weights exactly to zero. The solver is FISTA (accelerated
proximal gradient, step ``1 / L``) with adaptive restart: momentum is reset when
it points uphill, which makes it converge linearly on these strongly convex
problems. It stops when the gradient mapping ``L * |theta_k - theta_k+1|`` is
below ``tol`` everywhere.

``standardize=True`` (default) fits on z-scored columns and maps the weights back
to the original units (the penalty then acts on standardised weights, as in
glmnet). Set it to ``False`` for scikit-learn's exact objective on raw columns.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin

from reelrank.exceptions import ReelRankError
from reelrank.scratch._validation import (
    FloatArray,
    ScratchInputError,
    check_array,
    check_is_fitted,
    check_n_features,
    check_x_y,
    encode_labels,
)
from reelrank.scratch.preprocessing import mean_and_scale

Penalty = Literal["l1", "l2", "elasticnet"] | None
PENALTIES: tuple[str | None, ...] = ("l1", "l2", "elasticnet", None)


def sigmoid(z: FloatArray) -> FloatArray:
    """Numerically stable logistic function (no overflow for large ``|z|``)."""
    out = np.empty_like(z)
    positive = z >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-z[positive]))
    exp_z = np.exp(z[~positive])
    out[~positive] = exp_z / (1.0 + exp_z)
    return out


def log_loss_from_logits(z: FloatArray, y01: FloatArray) -> float:
    """Mean binary cross-entropy ``mean(log(1 + exp(z)) - y z)``, computed stably."""
    return float(np.mean(np.logaddexp(0.0, z) - y01 * z))


def soft_threshold(v: FloatArray, threshold: float) -> FloatArray:
    """Proximal operator of ``threshold * ||v||_1``."""
    return np.sign(v) * np.maximum(np.abs(v) - threshold, 0.0)


class LogisticRegression(ClassifierMixin, BaseEstimator):
    """Binary logistic regression fitted by FISTA (proximal gradient with momentum).

    Args:
        penalty: ``"l2"``, ``"l1"``, ``"elasticnet"`` or ``None``.
        C: Inverse regularisation strength (larger ``C`` = weaker penalty).
        l1_ratio: Share of L1 in the elastic net (``rho``); only used by ``"elasticnet"``.
        fit_intercept: Learn an unpenalised bias.
        standardize: Z-score the columns internally (robust default for raw features).
        max_iter: Maximum proximal-gradient iterations.
        tol: Stop when every component of the gradient mapping is below ``tol``.

    Attributes:
        classes_: The two class labels (sorted); ``classes_[1]`` is the positive one.
        coef_: Weights in the original feature units, shape ``(1, n_features)``.
        intercept_: Bias, shape ``(1,)``.
        loss_history_: Objective ``F`` at each iteration.
        n_iter_: Iterations run.
    """

    def __init__(
        self,
        penalty: Penalty = "l2",
        *,
        C: float = 1.0,
        l1_ratio: float = 0.5,
        fit_intercept: bool = True,
        standardize: bool = True,
        max_iter: int = 5000,
        tol: float = 1e-6,
    ) -> None:
        self.penalty = penalty
        self.C = C
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.standardize = standardize
        self.max_iter = max_iter
        self.tol = tol

    def _penalty_weights(self, n_samples: int) -> tuple[float, float]:
        """Return ``(lam, rho)``."""
        if self.penalty not in PENALTIES:
            raise ScratchInputError(f"penalty must be one of {PENALTIES}; got {self.penalty!r}.")
        if self.C <= 0:
            raise ScratchInputError(f"C must be > 0; got {self.C}.")
        if not 0.0 <= self.l1_ratio <= 1.0:
            raise ScratchInputError(f"l1_ratio must be in [0, 1]; got {self.l1_ratio}.")
        if self.penalty is None:
            return 0.0, 0.0
        rho = {"l2": 0.0, "l1": 1.0}.get(self.penalty, self.l1_ratio)
        return 1.0 / (self.C * n_samples), rho

    def fit(self, X: ArrayLike, y: ArrayLike) -> LogisticRegression:
        """Learn ``coef_`` and ``intercept_``; ``y`` must hold exactly two classes."""
        X_checked, y_raw = check_x_y(X, y)
        classes, codes = encode_labels(y_raw)
        if classes.size != 2:
            raise ScratchInputError(
                f"LogisticRegression here is binary; y has {classes.size} classes "
                f"({classes[:5].tolist()}...). Use the scratch MLPClassifier for more classes."
            )
        n, d = X_checked.shape
        lam, rho = self._penalty_weights(n)
        if self.standardize:
            mean, _, scale = mean_and_scale(X_checked)
            Z = (X_checked - mean) / scale
        else:
            mean, scale, Z = np.zeros(d), np.ones(d), X_checked
        y01 = codes.astype(np.float64)

        theta, history = self._fista(Z, y01, lam, rho)
        w_std = theta[:d]
        b_std = theta[d]
        self.classes_ = classes
        self.n_features_in_ = d
        self.coef_: FloatArray = (w_std / scale)[None, :]
        self.intercept_: FloatArray = np.array([b_std - float(mean @ (w_std / scale))])
        self.loss_history_ = history
        self.n_iter_ = len(history) - 1
        return self

    def _fista(
        self, Z: FloatArray, y01: FloatArray, lam: float, rho: float
    ) -> tuple[FloatArray, list[float]]:
        n, d = Z.shape
        intercept_col = 1.0 if self.fit_intercept else 0.0
        Z1 = np.hstack([Z, np.full((n, 1), intercept_col)])
        lipschitz = float(np.linalg.eigvalsh(Z1.T @ Z1 / n)[-1]) / 4.0 + lam * (1 - rho)
        step = 1.0 / lipschitz
        l2, l1 = lam * (1 - rho), lam * rho
        penalised = np.r_[np.ones(d), 0.0]

        def smooth_grad(theta: FloatArray) -> FloatArray:
            residual = sigmoid(Z1 @ theta) - y01
            return Z1.T @ residual / n + l2 * penalised * theta

        def objective(theta: FloatArray) -> float:
            w = theta[:d]
            return (
                log_loss_from_logits(Z1 @ theta, y01)
                + l2 / 2 * float(w @ w)
                + l1 * float(np.abs(w).sum())
            )

        theta = np.zeros(d + 1)
        momentum_point = theta.copy()
        t = 1.0
        history = [objective(theta)]
        for _ in range(self.max_iter):
            candidate = momentum_point - step * smooth_grad(momentum_point)
            candidate[:d] = soft_threshold(candidate[:d], step * l1)
            if not self.fit_intercept:
                candidate[d] = 0.0
            history.append(objective(candidate))
            if not np.isfinite(history[-1]):
                raise ReelRankError(
                    "LogisticRegression diverged (non-finite loss); check X for huge values "
                    "or use standardize=True."
                )
            grad_mapping = np.abs(momentum_point - candidate).max() / step
            # Adaptive restart: drop the momentum when it points uphill.
            if (momentum_point - candidate) @ (candidate - theta) > 0:
                t = 1.0
            t_next = (1.0 + np.sqrt(1.0 + 4.0 * t * t)) / 2.0
            momentum_point = candidate + ((t - 1.0) / t_next) * (candidate - theta)
            theta, t = candidate, t_next
            if grad_mapping < self.tol:
                break
        return theta, history

    def decision_function(self, X: ArrayLike) -> FloatArray:
        """Logit ``x . w + b`` of each row (positive means class ``classes_[1]``)."""
        check_is_fitted(self, "coef_")
        X_checked = check_array(X)
        check_n_features(self, X_checked)
        return X_checked @ self.coef_[0] + self.intercept_[0]

    def predict_proba(self, X: ArrayLike) -> FloatArray:
        """``[[1 - p, p], ...]`` with ``p = sigma(x . w + b)``."""
        p = sigmoid(self.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """The class with probability above one half."""
        positive = self.decision_function(X) > 0
        return self.classes_[positive.astype(np.int64)]

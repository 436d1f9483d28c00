"""A small multi-layer perceptron classifier from scratch (forward pass, backprop, Adam/SGD).

Forward pass, layers ``l = 1..L`` with ``a_0 = x``::

    z_l = a_{l-1} W_l + b_l,     a_l = g(z_l)  (hidden: relu / tanh / logistic)
    output: p = sigmoid(z_L) for two classes (one unit), softmax(z_L) for more.

Loss on a batch of ``n`` samples (cross-entropy plus scikit-learn's L2 term)::

    J = -1/n sum_i sum_c y_ic log p_ic  +  alpha / (2 n) * sum_l ||W_l||^2

Backward pass (the output non-linearity and cross-entropy combine neatly)::

    delta_L = (p - y) / n
    dJ/dW_l = a_{l-1}^T delta_l + alpha / n * W_l,    dJ/db_l = sum_i delta_l
    delta_{l-1} = (delta_l W_l^T) * g'(z_{l-1})

Training: shuffle every epoch, update on mini-batches with SGD (+ momentum) or
Adam; stop when the epoch loss has not improved by ``tol`` for
``n_iter_no_change`` epochs. Weights start Glorot-uniform:
``U(-s, s)``, ``s = sqrt(6 / (fan_in + fan_out))``. ``standardize=True`` z-scores
the inputs (recommended for raw features). :meth:`MLPClassifier.loss_and_gradients`
exposes ``J`` and its analytic gradients so they can be checked numerically.
"""

from __future__ import annotations

import itertools
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
    check_random_state,
    check_x_y,
    encode_labels,
)
from reelrank.scratch.logistic_regression import sigmoid
from reelrank.scratch.preprocessing import mean_and_scale

Activation = Literal["relu", "tanh", "logistic"]
ACTIVATIONS: tuple[str, ...] = ("relu", "tanh", "logistic")
_PROBA_FLOOR = 1e-12


def _activate(z: FloatArray, activation: str) -> FloatArray:
    if activation == "relu":
        return np.maximum(z, 0.0)
    if activation == "tanh":
        return np.tanh(z)
    return sigmoid(z)


def _activation_derivative(a: FloatArray, activation: str) -> FloatArray:
    """``g'(z)`` written in terms of the activation ``a = g(z)``."""
    if activation == "relu":
        return (a > 0).astype(np.float64)
    if activation == "tanh":
        return 1.0 - a**2
    return a * (1.0 - a)


def _softmax(z: FloatArray) -> FloatArray:
    shifted = z - z.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def forward(
    coefs: list[FloatArray], intercepts: list[FloatArray], X: FloatArray, activation: str
) -> list[FloatArray]:
    """Activations of every layer, input first; the last entry holds the output probabilities."""
    activations = [X]
    for layer, (W, b) in enumerate(zip(coefs, intercepts, strict=True)):
        z = activations[-1] @ W + b
        if layer < len(coefs) - 1:
            activations.append(_activate(z, activation))
        elif W.shape[1] == 1:
            activations.append(sigmoid(z))
        else:
            activations.append(_softmax(z))
    return activations


def loss_and_gradients(
    coefs: list[FloatArray],
    intercepts: list[FloatArray],
    X: FloatArray,
    Y: FloatArray,
    activation: str,
    alpha: float,
) -> tuple[float, list[FloatArray], list[FloatArray]]:
    """Cross-entropy + L2 loss of a batch and its gradients by backpropagation.

    Args:
        Y: Targets shaped like the output layer (``(n, 1)`` 0/1 or ``(n, K)`` one-hot).

    Returns:
        ``(loss, coef_grads, intercept_grads)`` (gradients shaped like the parameters).
    """
    n = X.shape[0]
    activations = forward(coefs, intercepts, X, activation)
    p = np.clip(activations[-1], _PROBA_FLOOR, 1.0 - _PROBA_FLOOR)
    if Y.shape[1] == 1:
        data_loss = -float(np.mean(Y * np.log(p) + (1.0 - Y) * np.log(1.0 - p)))
    else:
        data_loss = -float((Y * np.log(p)).sum()) / n
    l2 = sum(float((W * W).sum()) for W in coefs)
    loss = float(data_loss) + alpha * 0.5 * l2 / n

    coef_grads: list[FloatArray] = [np.empty(0)] * len(coefs)
    intercept_grads: list[FloatArray] = [np.empty(0)] * len(coefs)
    delta = (activations[-1] - Y) / n
    for layer in range(len(coefs) - 1, -1, -1):
        coef_grads[layer] = activations[layer].T @ delta + alpha * coefs[layer] / n
        intercept_grads[layer] = delta.sum(axis=0)
        if layer > 0:
            delta = (delta @ coefs[layer].T) * _activation_derivative(
                activations[layer], activation
            )
    return loss, coef_grads, intercept_grads


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """Fully connected neural-network classifier trained by mini-batch backpropagation.

    Args:
        hidden_layer_sizes: Units of each hidden layer.
        activation: Hidden non-linearity: ``"relu"``, ``"tanh"`` or ``"logistic"``.
        solver: ``"adam"`` or ``"sgd"`` (with ``momentum``).
        alpha: L2 penalty strength.
        batch_size: Samples per update (capped at the number of samples).
        learning_rate_init: Step size.
        max_iter: Maximum epochs.
        momentum: SGD momentum.
        tol: Minimum epoch-loss improvement that resets the patience counter.
        n_iter_no_change: Patience, in epochs.
        standardize: Z-score inputs inside the model.
        random_state: Seed for initial weights and batch order.

    Attributes:
        classes_: Class labels (sorted).
        coefs_: Weight matrices ``W_l``.
        intercepts_: Bias vectors ``b_l``.
        loss_curve_: Mean training loss of each epoch.
        n_iter_: Epochs run.
    """

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (64,),
        *,
        activation: Activation = "relu",
        solver: Literal["adam", "sgd"] = "adam",
        alpha: float = 1e-4,
        batch_size: int = 200,
        learning_rate_init: float = 1e-3,
        max_iter: int = 200,
        momentum: float = 0.9,
        tol: float = 1e-4,
        n_iter_no_change: int = 10,
        standardize: bool = True,
        random_state: int | None = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.momentum = momentum
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.standardize = standardize
        self.random_state = random_state

    def _check_params(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ScratchInputError(
                f"activation must be one of {ACTIVATIONS}; got {self.activation!r}."
            )
        if self.solver not in ("adam", "sgd"):
            raise ScratchInputError(f"solver must be 'adam' or 'sgd'; got {self.solver!r}.")
        if any(int(units) < 1 for units in self.hidden_layer_sizes):
            raise ScratchInputError(
                f"hidden_layer_sizes must be positive; got {self.hidden_layer_sizes}."
            )
        if self.learning_rate_init <= 0 or self.batch_size < 1 or self.max_iter < 1:
            raise ScratchInputError("learning_rate_init must be > 0 and batch_size, max_iter >= 1.")

    def _targets(self, codes: NDArray[np.int64]) -> FloatArray:
        if self.classes_.size == 2:
            return codes.astype(np.float64)[:, None]
        return np.eye(self.classes_.size)[codes]

    def _scaled(self, X: ArrayLike) -> FloatArray:
        X_checked = check_array(X)
        check_n_features(self, X_checked)
        return (X_checked - self.mean_) / self.scale_

    def fit(self, X: ArrayLike, y: ArrayLike) -> MLPClassifier:
        """Initialise the weights and train for up to ``max_iter`` epochs."""
        self._check_params()
        X_checked, labels = check_x_y(X, y)
        self.classes_, codes = encode_labels(labels)
        if self.classes_.size < 2:
            raise ScratchInputError("y has a single class; a classifier needs at least two.")
        d = X_checked.shape[1]
        self.n_features_in_ = d
        if self.standardize:
            self.mean_, _, self.scale_ = mean_and_scale(X_checked)
        else:
            self.mean_, self.scale_ = np.zeros(d), np.ones(d)
        Z = (X_checked - self.mean_) / self.scale_
        Y = self._targets(codes)
        rng = check_random_state(self.random_state)
        sizes = [d, *(int(u) for u in self.hidden_layer_sizes), Y.shape[1]]
        self.coefs_: list[FloatArray] = []
        self.intercepts_: list[FloatArray] = []
        for fan_in, fan_out in itertools.pairwise(sizes):
            bound = np.sqrt(6.0 / (fan_in + fan_out))
            self.coefs_.append(rng.uniform(-bound, bound, size=(fan_in, fan_out)))
            self.intercepts_.append(rng.uniform(-bound, bound, size=fan_out))
        self._train(Z, Y, rng)
        return self

    def _train(self, Z: FloatArray, Y: FloatArray, rng: np.random.Generator) -> None:
        params = [*self.coefs_, *self.intercepts_]
        first = [np.zeros_like(p) for p in params]
        second = [np.zeros_like(p) for p in params]
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        n = Z.shape[0]
        batch = min(self.batch_size, n)
        step = 0
        best, stale = np.inf, 0
        self.loss_curve_: list[float] = []
        epoch = 0
        for epoch in range(1, self.max_iter + 1):
            order = rng.permutation(n)
            epoch_loss = 0.0
            for start in range(0, n, batch):
                rows = order[start : start + batch]
                loss, coef_grads, intercept_grads = loss_and_gradients(
                    self.coefs_, self.intercepts_, Z[rows], Y[rows], self.activation, self.alpha
                )
                epoch_loss += loss * rows.size
                grads = [*coef_grads, *intercept_grads]
                step += 1
                for i, (param, grad) in enumerate(zip(params, grads, strict=True)):
                    if self.solver == "adam":
                        first[i] = beta1 * first[i] + (1 - beta1) * grad
                        second[i] = beta2 * second[i] + (1 - beta2) * grad**2
                        lr = self.learning_rate_init * np.sqrt(1 - beta2**step) / (1 - beta1**step)
                        param -= lr * first[i] / (np.sqrt(second[i]) + eps)
                    else:
                        first[i] = self.momentum * first[i] - self.learning_rate_init * grad
                        param += first[i]
            epoch_loss /= n
            if not np.isfinite(epoch_loss) or not all(np.isfinite(p).all() for p in params):
                raise ReelRankError(
                    f"MLPClassifier diverged at epoch {epoch} (loss is not finite); lower "
                    "learning_rate_init or keep standardize=True."
                )
            self.loss_curve_.append(epoch_loss)
            if epoch_loss > best - self.tol:
                stale += 1
                if stale >= self.n_iter_no_change:
                    break
            else:
                stale = 0
            best = min(best, epoch_loss)
        self.n_iter_ = epoch

    def loss_and_gradients(
        self, X: ArrayLike, y: ArrayLike
    ) -> tuple[float, list[FloatArray], list[FloatArray]]:
        """Loss ``J`` on ``(X, y)`` at the current weights and its analytic gradients.

        Perturb ``coefs_`` / ``intercepts_`` in place and call this again to check the
        gradients by finite differences.
        """
        check_is_fitted(self, "coefs_")
        Z = self._scaled(X)
        codes = np.searchsorted(self.classes_, np.asarray(y))
        return loss_and_gradients(
            self.coefs_, self.intercepts_, Z, self._targets(codes), self.activation, self.alpha
        )

    def predict_proba(self, X: ArrayLike) -> FloatArray:
        """Class probabilities, columns in ``classes_`` order."""
        check_is_fitted(self, "coefs_")
        output = forward(self.coefs_, self.intercepts_, self._scaled(X), self.activation)[-1]
        if output.shape[1] == 1:
            return np.column_stack([1.0 - output[:, 0], output[:, 0]])
        return output

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """Most probable class."""
        best = self.predict_proba(X).argmax(axis=1)
        return self.classes_[best]

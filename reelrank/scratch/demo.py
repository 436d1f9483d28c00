"""Learning figures for the scratch kit: what a learner should *see* each algorithm do.

``make_figures(out_dir)`` writes four PNGs (synthetic data, fixed seeds, a few seconds):

* ``gd_convergence.png``: batch, stochastic, mini-batch and Adam gradient descent
  on the same least-squares problem, distance to the optimum per epoch and per update;
* ``regularization_path.png``: logistic-regression weights as the L1 / L2 penalty weakens;
* ``kmeans_iterations.png``: k-means centres moving on 2-D blobs from a bad start (a local
  minimum) and from k-means++, and the inertia per step;
* ``learning_curve.png``: training vs cross-validated error as model capacity grows
  (tree depth, polynomial degree): underfitting on the left, overfitting on the right.

Uses matplotlib's object API (``Figure``) with the Agg canvas, so nothing global
(no pyplot state, no display) is touched.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from reelrank.scratch._validation import FloatArray, IntArray
from reelrank.scratch.kmeans import KMeans
from reelrank.scratch.linear_regression import LinearRegression, half_mse
from reelrank.scratch.logistic_regression import LogisticRegression, Penalty
from reelrank.scratch.model_selection import KFold
from reelrank.scratch.tree import DecisionTreeClassifier

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

FIGURE_DPI = 90
SOLVER_STYLE = {
    "batch": ("batch GD (full gradient)", 0.3, "tab:blue"),
    "sgd": ("SGD (1 sample)", 0.01, "tab:orange"),
    "minibatch": ("mini-batch GD (32)", 0.05, "tab:green"),
    "adam": ("Adam (mini-batch 32)", 0.02, "tab:red"),
}


def _regression_problem(rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    n, d = 600, 10
    mixing = np.eye(d) + 0.4 * rng.normal(size=(d, d))  # correlated features
    X = rng.normal(size=(n, d)) @ mixing
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    y = X @ rng.normal(scale=2.0, size=d) + 1.0 + rng.normal(scale=0.5, size=n)
    return X, y


def _sparse_classification(rng: np.random.Generator) -> tuple[FloatArray, IntArray, FloatArray]:
    n, d = 400, 8
    X = rng.normal(size=(n, d))
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    w = np.array([2.0, -1.5, 1.0, 0.0, 0.5, 0.0, 0.0, -0.8])
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(X @ w)))).astype(np.int64)
    return X, y, w


def _blobs(rng: np.random.Generator) -> FloatArray:
    centers = np.array([[-4.0, -3.0], [4.0, -3.0], [0.0, 4.0], [6.0, 5.0]])
    labels = np.repeat(np.arange(4), 80)
    return centers[labels] + rng.normal(scale=1.1, size=(320, 2))


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=FIGURE_DPI)
    logger.info("wrote %s (%d KB)", path, path.stat().st_size // 1024)
    return path


def plot_gd_convergence(path: Path) -> Path:
    """Suboptimality ``L(theta) - L(theta*)`` of the four gradient-descent variants."""
    from matplotlib.figure import Figure

    X, y = _regression_problem(np.random.default_rng(0))
    optimum = LinearRegression("normal").fit(X, y)
    best_loss = half_mse(X, y, optimum.coef_, optimum.intercept_)
    fig = Figure(figsize=(10, 4))
    by_epoch, by_update = fig.subplots(1, 2)
    updates_per_epoch = {"batch": 1, "sgd": X.shape[0], "minibatch": 32, "adam": 32}
    for solver, (label, learning_rate, colour) in SOLVER_STYLE.items():
        model = LinearRegression(
            solver,  # type: ignore[arg-type]
            learning_rate=learning_rate,
            max_iter=30,
            n_iter_no_change=1000,
            random_state=0,
        ).fit(X, y)
        gap = np.maximum(np.asarray(model.loss_history_) - best_loss, 1e-12)
        epochs = np.arange(gap.size)
        steps = epochs * (
            updates_per_epoch[solver]
            if solver in ("batch", "sgd")
            else int(np.ceil(X.shape[0] / updates_per_epoch[solver]))
        )
        by_epoch.semilogy(epochs, gap, label=f"{label}, lr={learning_rate}", color=colour)
        by_update.loglog(np.maximum(steps, 1), gap, color=colour)
    by_epoch.set(
        xlabel="epoch (one pass over the data)",
        ylabel="loss - optimal loss (closed form)",
        title="Same problem, same data: progress per epoch",
    )
    by_update.set(xlabel="parameter updates", title="...and per update (cost of one step differs)")
    by_epoch.legend(fontsize=8)
    for axes in (by_epoch, by_update):
        axes.grid(True, which="major", alpha=0.3)
    return _save(fig, path)


def plot_regularization_path(path: Path) -> Path:
    """Logistic-regression weights against the penalty strength for L1 and L2."""
    from matplotlib.figure import Figure

    X, y, true_w = _sparse_classification(np.random.default_rng(1))
    strengths = np.logspace(-3, 1, 30)
    fig = Figure(figsize=(10, 4))
    panels = fig.subplots(1, 2, sharey=True)
    penalties: tuple[Penalty, Penalty] = ("l1", "l2")
    for axes, penalty in zip(panels, penalties, strict=True):
        path_coefs = np.array(
            [
                LogisticRegression(penalty, C=C, standardize=False, tol=1e-7).fit(X, y).coef_[0]
                for C in strengths
            ]
        )
        for j in range(X.shape[1]):
            style = "-" if true_w[j] != 0 else ":"
            axes.semilogx(strengths, path_coefs[:, j], style, label=f"w{j} (true {true_w[j]:+.1f})")
        axes.axhline(0.0, color="black", linewidth=0.5)
        kind = "L1 (lasso): weights hit exactly 0" if penalty == "l1" else "L2 (ridge): shrink"
        axes.set(xlabel="C (inverse strength; right = weaker penalty)", title=kind)
    panels[0].set_ylabel("coefficient")
    panels[1].legend(fontsize=7, loc="upper left")
    return _save(fig, path)


def plot_kmeans_iterations(path: Path) -> Path:
    """Centres moving from a bad start (local minimum) and from k-means++, with the inertia."""
    from matplotlib.figure import Figure

    X = _blobs(np.random.default_rng(2))
    bad_start = X[[0, 10, 20, 30]]  # all four seeds in one blob
    runs = {
        "all seeds in one blob": KMeans(4, init=bad_start, n_init=1).fit(X),
        "k-means++ seeding": KMeans(4, init="k-means++", n_init=1, random_state=0).fit(X),
    }
    fig = Figure(figsize=(13, 4.2))
    *scatters, curve = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 0.8]})
    for axes, (name, model) in zip(scatters, runs.items(), strict=True):
        axes.scatter(X[:, 0], X[:, 1], c=model.labels_, s=8, cmap="tab10", alpha=0.5, vmax=9)
        history = model.centers_history_
        for k in range(history.shape[1]):
            axes.plot(history[:, k, 0], history[:, k, 1], "-o", color="black", markersize=3)
            axes.plot(*history[0, k], "x", color="red", markersize=9)
            axes.plot(*history[-1, k], "*", color="gold", markeredgecolor="black", markersize=14)
        axes.set(
            title=f"{name}: {model.n_iter_} iterations, inertia {model.inertia_:.0f}",
            xlabel="x1 (x start, * end)",
            ylabel="x2",
        )
        curve.plot(np.arange(len(model.inertia_history_)), model.inertia_history_, "-o", label=name)
    curve.set(
        xlabel="iteration",
        ylabel="inertia (sum of squared distances)",
        title="Inertia never rises, but can stall high",
        yscale="log",
    )
    curve.legend(fontsize=8)
    curve.grid(True, alpha=0.3)
    return _save(fig, path)


def _cv_errors(
    make_model: object, X: FloatArray, y: FloatArray, loss: str, n_splits: int = 5
) -> tuple[float, float]:
    train_errors: list[float] = []
    valid_errors: list[float] = []
    for train, valid in KFold(n_splits, shuffle=True, random_state=0).split(X):
        model = make_model()  # type: ignore[operator]
        model.fit(X[train], y[train])
        for rows, sink in ((train, train_errors), (valid, valid_errors)):
            prediction = model.predict(X[rows])
            error = (
                np.mean(prediction != y[rows])
                if loss == "error"
                else np.mean((prediction - y[rows]) ** 2)
            )
            sink.append(float(error))
    return float(np.mean(train_errors)), float(np.mean(valid_errors))


def plot_learning_curve(path: Path) -> Path:
    """Train vs 5-fold validation error as capacity grows: tree depth and polynomial degree."""
    from matplotlib.figure import Figure

    rng = np.random.default_rng(3)
    X_cls = rng.uniform(-3, 3, size=(400, 2))
    y_cls = (np.sin(X_cls[:, 0]) + 0.4 * X_cls[:, 1] + rng.normal(scale=0.5, size=400) > 0).astype(
        np.float64
    )
    depths = np.arange(1, 13)
    tree_curve = np.array(
        [
            _cv_errors(
                lambda d=depth: DecisionTreeClassifier(max_depth=int(d)), X_cls, y_cls, "error"
            )
            for depth in depths
        ]
    )

    x = np.sort(rng.uniform(-1, 1, size=40))
    y_reg = np.sin(3 * x) + rng.normal(scale=0.25, size=40)
    degrees = np.arange(1, 14)

    def features(degree: int) -> FloatArray:
        return np.column_stack([x**p for p in range(1, degree + 1)])

    poly_curve = np.array(
        [
            _cv_errors(lambda: LinearRegression("normal"), features(int(g)), y_reg, "mse")
            for g in degrees
        ]
    )

    fig = Figure(figsize=(10, 4))
    tree_axes, poly_axes = fig.subplots(1, 2)
    for axes, grid, curve, xlabel, ylabel in (
        (tree_axes, depths, tree_curve, "tree max_depth", "misclassification rate"),
        (poly_axes, degrees, poly_curve, "polynomial degree", "mean squared error"),
    ):
        axes.plot(grid, curve[:, 0], "-o", label="training")
        axes.plot(grid, curve[:, 1], "-o", label="validation (5-fold CV)")
        best = grid[int(np.argmin(curve[:, 1]))]
        axes.axvline(best, color="grey", linestyle="--", linewidth=1)
        axes.text(grid[0], axes.get_ylim()[1] * 0.9, "underfit", fontsize=9)
        axes.text(grid[-1], axes.get_ylim()[1] * 0.9, "overfit", fontsize=9, ha="right")
        axes.set(xlabel=xlabel, ylabel=ylabel, title=f"best validation at {best}")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=8)
    poly_axes.set_yscale("log")
    return _save(fig, path)


def make_figures(out_dir: Path) -> list[Path]:
    """Write the four learning figures into ``out_dir`` (created if missing); return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [
        plot_gd_convergence(out_dir / "gd_convergence.png"),
        plot_regularization_path(out_dir / "regularization_path.png"),
        plot_kmeans_iterations(out_dir / "kmeans_iterations.png"),
        plot_learning_curve(out_dir / "learning_curve.png"),
    ]

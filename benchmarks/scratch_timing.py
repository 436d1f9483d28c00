"""Time each scratch implementation against scikit-learn's on the same data.

Fit + predict (or the whole call for metrics and splitters), median of a few
repeats, single-threaded BLAS/OpenMP so the comparison is algorithm against
algorithm rather than core count. Prints a markdown table.

    .venv/bin/python benchmarks/scratch_timing.py [--repeats 3] [--quick]
"""

from __future__ import annotations

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402
import sklearn  # noqa: E402
from sklearn import (  # noqa: E402  # noqa: E402
    cluster,
    linear_model,
    metrics,
    model_selection,
    neighbors,
    neural_network,
    preprocessing,
    tree,
)

from reelrank.scratch import kmeans as s_kmeans  # noqa: E402
from reelrank.scratch import knn as s_knn  # noqa: E402
from reelrank.scratch import linear_regression as s_linear  # noqa: E402
from reelrank.scratch import logistic_regression as s_logistic  # noqa: E402
from reelrank.scratch import metrics as s_metrics  # noqa: E402
from reelrank.scratch import mlp as s_mlp  # noqa: E402
from reelrank.scratch import model_selection as s_model_selection  # noqa: E402
from reelrank.scratch import preprocessing as s_preprocessing  # noqa: E402
from reelrank.scratch import tree as s_tree  # noqa: E402


@dataclass
class Case:
    name: str
    data: str
    scratch: Callable[[], object]
    reference: Callable[[], object]


def _fit_predict(
    make: Callable[[], object], X: np.ndarray, y: np.ndarray | None
) -> Callable[[], object]:
    def run() -> object:
        model = make()
        model.fit(X, y)  # type: ignore[attr-defined]
        method = "predict" if hasattr(model, "predict") else "transform"
        return getattr(model, method)(X)

    return run


def _classification(rng: np.random.Generator, n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    X = rng.normal(size=(n, d))
    w = rng.normal(size=d)
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ w + 0.5 * X[:, 0] * X[:, 1])))).astype(int)
    return X, y


def build_cases(quick: bool) -> list[Case]:
    rng = np.random.default_rng(0)
    scale = 0.2 if quick else 1.0
    n_big = int(50_000 * scale)
    X_reg = rng.normal(size=(int(20_000 * scale), 20))
    y_reg = X_reg @ rng.normal(size=20) + rng.normal(size=X_reg.shape[0])
    X_big, y_big = _classification(rng, n_big, 40)
    X_mid, y_mid = _classification(rng, int(5_000 * scale), 10)
    X_blob = (
        rng.normal(size=(int(20_000 * scale), 10))
        + rng.integers(0, 8, size=(int(20_000 * scale), 1)) * 3.0
    )
    X_knn, y_knn = _classification(rng, int(5_000 * scale), 20)
    y_tree_reg = X_mid[:, 0] ** 2 + np.sin(X_mid[:, 1]) + rng.normal(scale=0.1, size=X_mid.shape[0])
    n_auc = int(1_000_000 * scale)
    auc_true = rng.integers(0, 2, size=n_auc)
    auc_score = auc_true + rng.normal(size=n_auc)
    y_folds = rng.integers(0, 5, size=int(100_000 * scale))
    X_scale = rng.normal(size=(int(100_000 * scale), 40)) * 10 + 3
    mlp_epochs = 10

    def folds(splitter: object, X: np.ndarray, y: np.ndarray) -> Callable[[], object]:
        return lambda: [test.size for _, test in splitter.split(X, y)]  # type: ignore[attr-defined]

    return [
        Case(
            "linear regression, closed form",
            f"{X_reg.shape[0]:,} x 20",
            _fit_predict(lambda: s_linear.LinearRegression("normal"), X_reg, y_reg),
            _fit_predict(linear_model.LinearRegression, X_reg, y_reg),
        ),
        Case(
            "linear regression, batch GD (100 epochs)",
            f"{X_reg.shape[0]:,} x 20",
            _fit_predict(
                lambda: s_linear.LinearRegression("batch", learning_rate=0.5, max_iter=100),
                X_reg,
                y_reg,
            ),
            _fit_predict(linear_model.LinearRegression, X_reg, y_reg),
        ),
        Case(
            "linear regression, SGD (5 epochs) vs SGDRegressor",
            f"{X_reg.shape[0]:,} x 20",
            _fit_predict(
                lambda: s_linear.LinearRegression(
                    "sgd", learning_rate=0.01, max_iter=5, random_state=0
                ),
                X_reg,
                y_reg,
            ),
            _fit_predict(
                lambda: linear_model.SGDRegressor(max_iter=5, tol=None, random_state=0),
                X_reg,
                y_reg,
            ),
        ),
        Case(
            "logistic regression L2 (FISTA vs lbfgs)",
            f"{n_big:,} x 40",
            _fit_predict(lambda: s_logistic.LogisticRegression("l2"), X_big, y_big),
            _fit_predict(linear_model.LogisticRegression, X_big, y_big),
        ),
        Case(
            "logistic regression L1 (FISTA vs saga)",
            f"{n_big:,} x 40",
            _fit_predict(lambda: s_logistic.LogisticRegression("l1", C=0.1), X_big, y_big),
            _fit_predict(
                lambda: linear_model.LogisticRegression(l1_ratio=1.0, C=0.1, solver="saga"),
                X_big,
                y_big,
            ),
        ),
        Case(
            "k-means, k=8, n_init=3",
            f"{X_blob.shape[0]:,} x 10",
            _fit_predict(lambda: s_kmeans.KMeans(8, n_init=3, random_state=0), X_blob, None),
            _fit_predict(lambda: cluster.KMeans(8, n_init=3, random_state=0), X_blob, None),
        ),
        Case(
            "k-NN classifier, k=5 (predict on train)",
            f"{X_knn.shape[0]:,} x 20",
            _fit_predict(lambda: s_knn.KNeighborsClassifier(5), X_knn, y_knn),
            _fit_predict(lambda: neighbors.KNeighborsClassifier(5), X_knn, y_knn),
        ),
        Case(
            "decision tree classifier, depth 8",
            f"{X_mid.shape[0]:,} x 10",
            _fit_predict(lambda: s_tree.DecisionTreeClassifier(max_depth=8), X_mid, y_mid),
            _fit_predict(lambda: tree.DecisionTreeClassifier(max_depth=8), X_mid, y_mid),
        ),
        Case(
            "decision tree regressor, depth 8",
            f"{X_mid.shape[0]:,} x 10",
            _fit_predict(lambda: s_tree.DecisionTreeRegressor(max_depth=8), X_mid, y_tree_reg),
            _fit_predict(lambda: tree.DecisionTreeRegressor(max_depth=8), X_mid, y_tree_reg),
        ),
        Case(
            f"MLP (64, 32), Adam, {mlp_epochs} epochs",
            f"{n_big:,} x 40",
            _fit_predict(
                lambda: s_mlp.MLPClassifier((64, 32), max_iter=mlp_epochs, random_state=0),
                X_big,
                y_big,
            ),
            _fit_predict(
                lambda: neural_network.MLPClassifier((64, 32), max_iter=mlp_epochs, random_state=0),
                X_big,
                y_big,
            ),
        ),
        Case(
            "ROC AUC",
            f"{n_auc:,} scores",
            lambda: s_metrics.roc_auc_score(auc_true, auc_score),
            lambda: metrics.roc_auc_score(auc_true, auc_score),
        ),
        Case(
            "stratified 5-fold split",
            f"{y_folds.size:,} labels",
            folds(s_model_selection.StratifiedKFold(5), y_folds[:, None], y_folds),
            folds(model_selection.StratifiedKFold(5), y_folds[:, None], y_folds),
        ),
        Case(
            "standard scaler (fit + transform)",
            f"{X_scale.shape[0]:,} x 40",
            _fit_predict(s_preprocessing.StandardScaler, X_scale, None),
            _fit_predict(preprocessing.StandardScaler, X_scale, None),
        ),
    ]


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    run()  # warm-up: imports, caches, first-touch allocations
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="data 5x smaller")
    args = parser.parse_args()
    print(
        f"Python {platform.python_version()}, NumPy {np.__version__}, scikit-learn "
        f"{sklearn.__version__}, {os.cpu_count()} CPUs, 1 BLAS/OpenMP thread, "
        f"median of {args.repeats}\n"
    )
    print("| algorithm | data | scratch (ms) | scikit-learn (ms) | scratch / sklearn |")
    print("| --- | --- | ---: | ---: | ---: |")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings from capped iterations
        for case in build_cases(args.quick):
            ours = median_seconds(case.scratch, args.repeats)
            theirs = median_seconds(case.reference, args.repeats)
            print(
                f"| {case.name} | {case.data} | {ours * 1e3:,.1f} | {theirs * 1e3:,.1f} | "
                f"{ours / theirs:,.1f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()

"""K-means clustering from scratch (Lloyd's algorithm with k-means++ seeding).

Minimise the inertia ``J = sum_i min_k ||x_i - mu_k||^2`` by alternating

1. assignment: ``c_i = argmin_k ||x_i - mu_k||^2``;
2. update: ``mu_k = mean{x_i : c_i = k}``.

Each step can only lower ``J``, so it converges (to a local minimum). Stop when
the labels no longer change or the centres moved less than
``tol * mean(var(X))`` in total squared distance. Restart ``n_init`` times and
keep the run with the lowest inertia.

k-means++ seeding: the first centre is a uniform random sample; each next one is
drawn with probability proportional to ``D(x)^2``, the squared distance to the
nearest centre chosen so far ("greedy" variant: draw ``2 + ln k`` candidates and
keep the one that lowers the potential most). Expected inertia is within
``O(log k)`` of the optimum before any Lloyd iteration.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin

from reelrank.scratch._validation import (
    FloatArray,
    IntArray,
    ScratchInputError,
    check_array,
    check_is_fitted,
    check_n_features,
    check_random_state,
)

Init = Literal["k-means++", "random"]


def squared_distances(X: FloatArray, centers: FloatArray) -> FloatArray:
    """``D[i, k] = ||x_i - c_k||^2`` via ``||x||^2 - 2 x.c + ||c||^2`` (clipped at 0)."""
    d2 = (X * X).sum(axis=1)[:, None] - 2.0 * X @ centers.T + (centers * centers).sum(axis=1)
    return np.maximum(d2, 0.0)


def kmeans_plusplus(
    X: FloatArray, n_clusters: int, rng: np.random.Generator, n_local_trials: int | None = None
) -> FloatArray:
    """Greedy k-means++ seeding: return ``n_clusters`` initial centres drawn from ``X``."""
    n = X.shape[0]
    trials = n_local_trials if n_local_trials is not None else 2 + int(np.log(n_clusters))
    centers = np.empty((n_clusters, X.shape[1]))
    centers[0] = X[rng.integers(n)]
    closest = squared_distances(X, centers[:1])[:, 0]
    for k in range(1, n_clusters):
        potential = closest.sum()
        if potential <= 0:  # fewer distinct points than clusters: any point will do
            candidates = rng.integers(n, size=trials)
        else:
            cumulative = np.cumsum(closest)
            candidates = np.searchsorted(cumulative, rng.random(trials) * potential)
            candidates = np.minimum(candidates, n - 1)
        # Keep the candidate that lowers the total potential the most.
        candidate_d2 = np.minimum(closest[None, :], squared_distances(X, X[candidates]).T)
        best = int(np.argmin(candidate_d2.sum(axis=1)))
        centers[k] = X[candidates[best]]
        closest = candidate_d2[best]
    return centers


class KMeans(TransformerMixin, ClusterMixin, BaseEstimator):
    """K-means with k-means++ (or random, or given) initial centres and ``n_init`` restarts.

    Args:
        n_clusters: Number of clusters ``k``.
        init: ``"k-means++"``, ``"random"`` (k distinct samples) or an array ``(k, d)``.
        n_init: Independent restarts (forced to 1 when ``init`` is an array).
        max_iter: Maximum Lloyd iterations per run.
        tol: Relative tolerance on the total squared centre shift.
        random_state: Seed.

    Attributes:
        cluster_centers_: ``(k, d)`` centres of the best run.
        labels_: Cluster of each training sample.
        inertia_: Sum of squared distances to the closest centre.
        n_iter_: Lloyd iterations of the best run.
        inertia_history_: Inertia of the best run before each update (for plotting).
        centers_history_: Centres of the best run, initial ones first, ``(n_iter_ + 1, k, d)``.
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: Init | ArrayLike = "k-means++",
        n_init: int = 10,
        max_iter: int = 300,
        tol: float = 1e-4,
        random_state: int | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def _initial_centers(self, X: FloatArray, rng: np.random.Generator) -> FloatArray:
        if isinstance(self.init, str):
            if self.init == "k-means++":
                return kmeans_plusplus(X, self.n_clusters, rng)
            if self.init == "random":
                return X[rng.choice(X.shape[0], size=self.n_clusters, replace=False)].copy()
            raise ScratchInputError(
                f"init must be 'k-means++', 'random' or an array; got {self.init!r}."
            )
        centers = check_array(self.init, name="init")
        if centers.shape != (self.n_clusters, X.shape[1]):
            raise ScratchInputError(
                f"init has shape {centers.shape}; expected (n_clusters, n_features) = "
                f"({self.n_clusters}, {X.shape[1]})."
            )
        return centers.copy()

    def fit(self, X: ArrayLike, y: object = None) -> KMeans:
        """Cluster ``X``; keeps the restart with the lowest inertia."""
        X_checked = check_array(X)
        if not 1 <= self.n_clusters <= X_checked.shape[0]:
            raise ScratchInputError(
                f"n_clusters={self.n_clusters} must be between 1 and the number of samples "
                f"({X_checked.shape[0]})."
            )
        rng = check_random_state(self.random_state)
        tol = self.tol * float(np.mean(np.var(X_checked, axis=0)))
        n_runs = 1 if not isinstance(self.init, str) else self.n_init
        best: dict[str, Any] | None = None
        for _ in range(n_runs):
            run = self._lloyd(X_checked, self._initial_centers(X_checked, rng), tol)
            if best is None or run["inertia"] < best["inertia"]:
                best = run
        assert best is not None
        self.n_features_in_ = X_checked.shape[1]
        self.cluster_centers_: FloatArray = best["centers"]
        self.labels_: IntArray = best["labels"]
        self.inertia_: float = best["inertia"]
        self.n_iter_: int = best["n_iter"]
        self.inertia_history_: list[float] = best["inertia_history"]
        self.centers_history_: FloatArray = np.stack(best["centers_history"])
        return self

    def _lloyd(self, X: FloatArray, centers: FloatArray, tol: float) -> dict[str, Any]:
        k = self.n_clusters
        labels = np.full(X.shape[0], -1)
        centers_history = [centers.copy()]
        inertia_history: list[float] = []
        n_iter = 0
        while n_iter < self.max_iter:
            n_iter += 1
            d2 = squared_distances(X, centers)
            new_labels = d2.argmin(axis=1)
            inertia_history.append(float(d2[np.arange(X.shape[0]), new_labels].sum()))
            counts = np.bincount(new_labels, minlength=k)
            sums = np.zeros_like(centers)
            np.add.at(sums, new_labels, X)
            new_centers = centers.copy()
            filled = counts > 0
            new_centers[filled] = sums[filled] / counts[filled, None]
            # An empty cluster is moved to the point farthest from its current centre.
            for empty in np.flatnonzero(~filled):
                far = int(d2[np.arange(X.shape[0]), new_labels].argmax())
                new_centers[empty] = X[far]
                d2[far] = 0.0
            shift = float(((new_centers - centers) ** 2).sum())
            centers = new_centers
            centers_history.append(centers.copy())
            converged = np.array_equal(new_labels, labels) or shift <= tol
            labels = new_labels
            if converged:
                break
        # Final assignment so labels are consistent with the returned centres.
        d2 = squared_distances(X, centers)
        labels = d2.argmin(axis=1)
        inertia = float(d2[np.arange(X.shape[0]), labels].sum())
        return {
            "centers": centers,
            "labels": labels.astype(np.int64),
            "inertia": inertia,
            "n_iter": n_iter,
            "inertia_history": [*inertia_history, inertia],
            "centers_history": centers_history,
        }

    def transform(self, X: ArrayLike) -> FloatArray:
        """Euclidean distance of each sample to each centre, ``(n, k)``."""
        check_is_fitted(self, "cluster_centers_")
        X_checked = check_array(X)
        check_n_features(self, X_checked)
        return np.sqrt(squared_distances(X_checked, self.cluster_centers_))

    def predict(self, X: ArrayLike) -> IntArray:
        """Index of the closest centre for each sample."""
        return self.transform(X).argmin(axis=1)

    def score(self, X: ArrayLike, y: object = None) -> float:
        """Negative inertia of ``X`` under the fitted centres (higher is better)."""
        distances = self.transform(X)
        return -float((distances.min(axis=1) ** 2).sum())

"""Parity: scratch k-means vs sklearn.cluster.KMeans."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans as SkKMeans
from sklearn.metrics import adjusted_rand_score

from reelrank.scratch.kmeans import KMeans, kmeans_plusplus


def test_same_initial_centres_give_same_lloyd_result(blobs):
    X, _ = blobs
    rng = np.random.default_rng(0)
    init = X[rng.choice(len(X), size=4, replace=False)]
    reference = SkKMeans(4, init=init, n_init=1, algorithm="lloyd").fit(X)
    model = KMeans(4, init=init, n_init=1).fit(X)
    np.testing.assert_array_equal(model.labels_, reference.labels_)
    np.testing.assert_allclose(model.cluster_centers_, reference.cluster_centers_, atol=1e-10)
    assert model.inertia_ == pytest.approx(reference.inertia_, rel=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kmeans_plusplus_finds_the_same_clustering(blobs, seed):
    X, truth = blobs
    reference = SkKMeans(4, n_init=10, random_state=seed).fit(X)
    model = KMeans(4, n_init=10, random_state=seed).fit(X)
    assert adjusted_rand_score(model.labels_, reference.labels_) == 1.0
    assert adjusted_rand_score(model.labels_, truth) == 1.0
    assert model.inertia_ == pytest.approx(reference.inertia_, rel=0.01)


def test_history_records_every_iteration(blobs):
    X, _ = blobs
    model = KMeans(4, init="random", n_init=1, random_state=5).fit(X)
    assert model.centers_history_.shape == (model.n_iter_ + 1, 4, 2)
    assert len(model.inertia_history_) == model.n_iter_ + 1
    history = np.asarray(model.inertia_history_)
    assert np.all(np.diff(history) <= 1e-9)  # Lloyd never increases the inertia
    assert history[-1] == pytest.approx(model.inertia_)


def test_kmeans_plusplus_spreads_centres_over_the_blobs(blobs):
    X, truth = blobs
    centers = kmeans_plusplus(X, 4, np.random.default_rng(0))
    nearest_blob = {int(truth[np.argmin(((X - c) ** 2).sum(axis=1))]) for c in centers}
    assert nearest_blob == {0, 1, 2, 3}


def test_predict_and_transform_agree(blobs):
    X, _ = blobs
    model = KMeans(4, random_state=0).fit(X)
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    assert model.transform(X).shape == (len(X), 4)
    assert model.score(X) == pytest.approx(-model.inertia_)


def test_too_many_clusters_is_rejected():
    with pytest.raises(ValueError, match="n_clusters"):
        KMeans(5).fit(np.zeros((3, 2)))

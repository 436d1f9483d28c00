"""Parity: scratch k-NN vs sklearn.neighbors (exact on data without distance ties)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier as SkKNNClassifier
from sklearn.neighbors import KNeighborsRegressor as SkKNNRegressor

from reelrank.scratch.knn import KNeighborsClassifier, KNeighborsRegressor


@pytest.mark.parametrize("weights", ["uniform", "distance"])
@pytest.mark.parametrize("k", [1, 4, 7])
def test_classifier_matches_sklearn_exactly(multiclass_data, weights, k):
    X, y = multiclass_data
    train, test = slice(0, 200), slice(200, None)
    reference = SkKNNClassifier(k, weights=weights, algorithm="brute").fit(X[train], y[train])
    model = KNeighborsClassifier(k, weights=weights).fit(X[train], y[train])
    np.testing.assert_array_equal(model.predict(X[test]), reference.predict(X[test]))
    np.testing.assert_allclose(
        model.predict_proba(X[test]), reference.predict_proba(X[test]), rtol=0, atol=1e-12
    )
    distances, indices = model.kneighbors(X[test])
    ref_distances, ref_indices = reference.kneighbors(X[test])
    np.testing.assert_array_equal(indices, ref_indices)
    np.testing.assert_allclose(distances, ref_distances, rtol=0, atol=1e-9)


@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_regressor_matches_sklearn(regression_data, weights):
    X, y = regression_data
    reference = SkKNNRegressor(5, weights=weights, algorithm="brute").fit(X[:300], y[:300])
    model = KNeighborsRegressor(5, weights=weights).fit(X[:300], y[:300])
    np.testing.assert_allclose(model.predict(X[300:]), reference.predict(X[300:]), rtol=1e-12)


def test_distance_weights_with_an_exact_match_use_only_that_point():
    X = np.array([[0.0], [1.0], [3.0]])
    y = np.array([10.0, 20.0, 40.0])
    model = KNeighborsRegressor(3, weights="distance").fit(X, y)
    assert model.predict(np.array([[1.0]]))[0] == 20.0
    reference = SkKNNRegressor(3, weights="distance").fit(X, y)
    assert reference.predict(np.array([[1.0]]))[0] == 20.0


def test_vote_ties_go_to_the_smallest_label():
    X = np.array([[0.0], [2.0]])
    model = KNeighborsClassifier(2).fit(X, np.array(["b", "a"]))
    assert model.predict(np.array([[1.0]]))[0] == "a"

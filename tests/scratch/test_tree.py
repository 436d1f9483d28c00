"""Parity: scratch CART vs sklearn.tree.

scikit-learn visits features in a random order, so when two splits are exactly as
good its tree depends on ``random_state``. Each case first checks that sklearn
builds the *same* tree for eight seeds (the data has no ties at any node), then
requires the scratch tree to be identical: node count, split features,
thresholds (bit-exact: features are float32-representable, as sklearn stores
them) and leaf values (1e-12).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.tree import DecisionTreeClassifier as SkTreeClassifier
from sklearn.tree import DecisionTreeRegressor as SkTreeRegressor

from reelrank.scratch.tree import DecisionTreeClassifier, DecisionTreeRegressor


def _tree_without_ties(sk_class, X, y, **params):
    trees = [sk_class(random_state=seed, **params).fit(X, y) for seed in range(8)]
    signatures = {(t.tree_.feature.tobytes(), t.tree_.threshold.tobytes()) for t in trees}
    assert len(signatures) == 1, "fixture has tied splits; pick data without ties"
    return trees[0]


def _assert_same_tree(model, reference):
    assert model.tree_.node_count == reference.tree_.node_count
    np.testing.assert_array_equal(model.tree_.feature, reference.tree_.feature)
    np.testing.assert_array_equal(model.tree_.threshold, reference.tree_.threshold)
    np.testing.assert_array_equal(model.tree_.children_left, reference.tree_.children_left)
    np.testing.assert_array_equal(model.tree_.n_node_samples, reference.tree_.n_node_samples)
    np.testing.assert_allclose(
        model.tree_.value.reshape(reference.tree_.value.shape[0], -1),
        reference.tree_.value.reshape(reference.tree_.value.shape[0], -1),
        rtol=0,
        atol=1e-12,
    )
    np.testing.assert_allclose(
        model.feature_importances_, reference.feature_importances_, rtol=0, atol=1e-12
    )


def _classification(n_features, seed):
    X, y = make_classification(
        n_samples=300,
        n_features=n_features,
        n_informative=n_features,
        n_redundant=0,
        n_repeated=0,
        n_clusters_per_class=1,
        flip_y=0.05,
        random_state=seed,
    )
    return X.astype(np.float32).astype(np.float64), y


@pytest.mark.parametrize("criterion", ["gini", "entropy"])
@pytest.mark.parametrize(
    ("n_features", "seed", "params"),
    [
        (1, 0, {"max_depth": None}),
        (1, 2, {"max_depth": 5}),
        (2, 0, {"max_depth": 3}),
        (4, 0, {"max_depth": 3}),
        (1, 1, {"max_depth": None, "min_samples_split": 10, "min_samples_leaf": 3}),
    ],
)
def test_classifier_tree_matches_sklearn(criterion, n_features, seed, params):
    X, y = _classification(n_features, seed)
    reference = _tree_without_ties(SkTreeClassifier, X, y, criterion=criterion, **params)
    model = DecisionTreeClassifier(criterion, **params).fit(X, y)
    _assert_same_tree(model, reference)
    probe = np.random.default_rng(seed).normal(size=(200, n_features)) * 2
    np.testing.assert_array_equal(model.predict(probe), reference.predict(probe))
    assert model.get_depth() == reference.get_depth()
    assert model.get_n_leaves() == reference.get_n_leaves()


@pytest.mark.parametrize(
    "params",
    [
        {"max_depth": 3},
        {"max_depth": 8, "min_samples_leaf": 5},
        {"max_depth": None, "min_samples_split": 20, "min_samples_leaf": 10},
    ],
)
def test_regressor_tree_matches_sklearn(params):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5)).astype(np.float32).astype(np.float64)
    y = np.sin(2 * X[:, 0]) + X[:, 1] ** 2 + 0.1 * rng.normal(size=400)
    reference = _tree_without_ties(SkTreeRegressor, X, y, **params)
    model = DecisionTreeRegressor(**params).fit(X, y)
    _assert_same_tree(model, reference)
    probe = rng.normal(size=(200, 5))
    np.testing.assert_allclose(model.predict(probe), reference.predict(probe), rtol=0, atol=1e-12)


def test_limits_are_respected(multiclass_data):
    X, y = multiclass_data
    model = DecisionTreeClassifier(max_depth=3, min_samples_leaf=7).fit(X, y)
    assert model.get_depth() <= 3
    leaves = model.tree_.children_left == -1
    assert model.tree_.n_node_samples[leaves].min() >= 7


def test_full_tree_fits_training_data_exactly(multiclass_data):
    X, y = multiclass_data
    model = DecisionTreeClassifier().fit(X, y)
    assert (model.predict(X) == y).all()

"""Parity (identical folds) and properties of the scratch cross-validation splitters."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import model_selection as skms

from reelrank.scratch.model_selection import KFold, StratifiedKFold

HYPOTHESIS = settings(max_examples=60, deadline=None)


def _assert_same_folds(ours, theirs):
    ours, theirs = list(ours), list(theirs)
    assert len(ours) == len(theirs)
    for (train, test), (ref_train, ref_test) in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(train, ref_train)
        np.testing.assert_array_equal(test, ref_test)


@HYPOTHESIS
@given(st.integers(2, 60), st.integers(2, 7), st.booleans(), st.integers(0, 1000))
def test_kfold_matches_sklearn(n, k, shuffle, seed):
    if k > n:
        return
    X = np.zeros((n, 1))
    state = seed if shuffle else None
    _assert_same_folds(
        KFold(k, shuffle=shuffle, random_state=state).split(X),
        skms.KFold(k, shuffle=shuffle, random_state=state).split(X),
    )


@HYPOTHESIS
@given(
    st.lists(st.sampled_from(["a", "b", "c"]), min_size=6, max_size=60),
    st.integers(2, 5),
    st.booleans(),
    st.integers(0, 1000),
)
def test_stratified_kfold_matches_sklearn(labels, k, shuffle, seed):
    y = np.array(labels)
    counts = np.unique(y, return_counts=True)[1]
    if k > len(y) or np.all(k > counts) or k > counts.min():
        return  # sklearn refuses or warns; covered separately
    X = np.zeros((len(y), 1))
    state = seed if shuffle else None
    _assert_same_folds(
        StratifiedKFold(k, shuffle=shuffle, random_state=state).split(X, y),
        skms.StratifiedKFold(k, shuffle=shuffle, random_state=state).split(X, y),
    )


def test_fixed_stratified_folds_are_identical_to_sklearn():
    y = np.array([1, 0, 0, 2, 1, 1, 0, 0, 0, 2, 2, 1, 0, 0, 1, 2, 0, 0, 1, 0])
    X = np.zeros((20, 2))
    _assert_same_folds(StratifiedKFold(3).split(X, y), skms.StratifiedKFold(3).split(X, y))


@HYPOTHESIS
@given(st.integers(2, 80), st.integers(2, 9))
def test_kfold_test_sets_partition_the_data(n, k):
    if k > n:
        return
    tests = [test for _, test in KFold(k).split(np.zeros((n, 1)))]
    np.testing.assert_array_equal(np.sort(np.concatenate(tests)), np.arange(n))
    sizes = [len(t) for t in tests]
    assert max(sizes) - min(sizes) <= 1


@HYPOTHESIS
@given(st.lists(st.integers(0, 2), min_size=30, max_size=90), st.integers(2, 5))
def test_stratified_folds_keep_class_counts_balanced(labels, k):
    y = np.array(labels)
    classes, counts = np.unique(y, return_counts=True)
    if k > counts.min():
        return
    for train, test in StratifiedKFold(k).split(np.zeros((len(y), 1)), y):
        assert len(np.intersect1d(train, test)) == 0
        for label, total in zip(classes, counts, strict=True):
            in_test = (y[test] == label).sum()
            assert total // k <= in_test <= -(-total // k)


def test_invalid_configurations_are_rejected():
    with pytest.raises(ValueError, match="n_splits"):
        KFold(1)
    with pytest.raises(ValueError, match="shuffle"):
        KFold(3, random_state=0)
    with pytest.raises(ValueError, match="n_splits"):
        list(KFold(5).split(np.zeros((3, 1))))
    with pytest.raises(ValueError, match="needs y"):
        list(StratifiedKFold(2).split(np.zeros((4, 1))))

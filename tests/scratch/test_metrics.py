"""Parity (exact) and properties of the scratch metrics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from reelrank.scratch import metrics

HYPOTHESIS = settings(max_examples=80, deadline=None)


@st.composite
def labels_and_scores(draw, max_size=40):
    """Binary labels with both classes present and integer-valued scores (ties likely)."""
    n = draw(st.integers(2, max_size))
    y = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    assume(0 < y.sum() < n)
    scores = np.array(draw(st.lists(st.integers(-20, 20), min_size=n, max_size=n)), float)
    return y, scores


def _fixed_scores():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=500)
    scores = np.round(y * 0.8 + rng.normal(size=500), 2)  # rounded: many ties
    return y, scores


@pytest.mark.parametrize("drop_intermediate", [True, False])
def test_roc_curve_is_identical_to_sklearn(drop_intermediate):
    y, scores = _fixed_scores()
    ours = metrics.roc_curve(y, scores, drop_intermediate=drop_intermediate)
    theirs = skm.roc_curve(y, scores, drop_intermediate=drop_intermediate)
    for mine, reference in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(mine, reference)


def test_auc_is_identical_to_sklearn():
    y, scores = _fixed_scores()
    assert metrics.roc_auc_score(y, scores) == skm.roc_auc_score(y, scores)
    labels = np.where(y == 1, "click", "skip")
    assert metrics.roc_auc_score(labels, scores, pos_label="click") == skm.roc_auc_score(y, scores)


def test_confusion_and_prf_are_identical_to_sklearn():
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 4, size=300)
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.integers(0, 4, size=300))
    np.testing.assert_array_equal(
        metrics.confusion_matrix(y_true, y_pred), skm.confusion_matrix(y_true, y_pred)
    )
    np.testing.assert_array_equal(
        metrics.confusion_matrix(y_true, y_pred, labels=[3, 1]),
        skm.confusion_matrix(y_true, y_pred, labels=[3, 1]),
    )
    for average in (None, "micro", "macro", "weighted"):
        ours = metrics.precision_recall_fscore_support(y_true, y_pred, average=average)
        theirs = skm.precision_recall_fscore_support(y_true, y_pred, average=average)
        for mine, reference in zip(ours, theirs, strict=True):
            if reference is None:
                assert mine is None
            else:
                np.testing.assert_array_equal(mine, reference)
    binary_true, binary_pred = y_true % 2, y_pred % 2
    for name in ("precision_score", "recall_score", "f1_score"):
        assert getattr(metrics, name)(binary_true, binary_pred) == getattr(skm, name)(
            binary_true, binary_pred
        )


def test_f_beta_and_zero_division_follow_sklearn():
    y_true = np.array([0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 0, 0, 0])  # classes 1 and 2 never predicted
    for zero_division in (0.0, 1.0):
        ours = metrics.precision_recall_fscore_support(
            y_true, y_pred, beta=2.0, zero_division=zero_division
        )
        theirs = skm.precision_recall_fscore_support(
            y_true, y_pred, beta=2.0, zero_division=zero_division
        )
        for mine, reference in zip(ours, theirs, strict=True):
            np.testing.assert_array_equal(mine, reference)


@HYPOTHESIS
@given(labels_and_scores())
def test_auc_matches_sklearn_on_random_ties(data):
    y, scores = data
    assert metrics.roc_auc_score(y, scores) == pytest.approx(
        skm.roc_auc_score(y, scores), abs=1e-12
    )


@HYPOTHESIS
@given(labels_and_scores())
def test_auc_is_the_probability_a_positive_outranks_a_negative(data):
    y, scores = data
    diff = scores[y == 1][:, None] - scores[y == 0][None, :]
    mann_whitney = ((diff > 0) + 0.5 * (diff == 0)).mean()
    assert metrics.roc_auc_score(y, scores) == pytest.approx(mann_whitney, abs=1e-12)


@HYPOTHESIS
@given(labels_and_scores(), st.sampled_from(["affine", "cube", "exp"]))
def test_auc_is_invariant_to_strictly_increasing_transforms(data, transform):
    y, scores = data
    transformed = {"affine": 3 * scores + 7, "cube": scores**3 + scores, "exp": np.exp(scores / 5)}
    assert metrics.roc_auc_score(y, transformed[transform]) == pytest.approx(
        metrics.roc_auc_score(y, scores), abs=1e-12
    )


@HYPOTHESIS
@given(labels_and_scores())
def test_reversing_scores_gives_one_minus_auc(data):
    y, scores = data
    assert metrics.roc_auc_score(y, 1 - scores) == pytest.approx(
        1 - metrics.roc_auc_score(y, scores), abs=1e-12
    )


@HYPOTHESIS
@given(labels_and_scores())
def test_roc_curve_is_monotone_from_origin_to_corner(data):
    y, scores = data
    fpr, tpr, thresholds = metrics.roc_curve(y, scores)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0)
    assert np.all(np.diff(tpr) >= 0)
    assert np.all(np.diff(thresholds) < 0)


@pytest.mark.filterwarnings("ignore:A single label:UserWarning")
@HYPOTHESIS
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=60))
def test_confusion_matrix_counts(pairs):
    y_true = np.array([t for t, _ in pairs])
    y_pred = np.array([p for _, p in pairs])
    cm = metrics.confusion_matrix(y_true, y_pred)
    labels = np.unique(np.r_[y_true, y_pred])
    assert cm.sum() == len(pairs)
    assert np.trace(cm) == (y_true == y_pred).sum()
    np.testing.assert_array_equal(cm.sum(axis=1), [(y_true == k).sum() for k in labels])
    np.testing.assert_array_equal(cm, skm.confusion_matrix(y_true, y_pred))


@HYPOTHESIS
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1)), min_size=1, max_size=60))
def test_f1_is_the_harmonic_mean_and_scores_are_bounded(pairs):
    y_true = np.array([t for t, _ in pairs])
    y_pred = np.array([p for _, p in pairs])
    precision, recall, f1, _ = metrics.precision_recall_fscore_support(
        y_true, y_pred, average="binary"
    )
    assert 0.0 <= precision <= 1.0
    assert 0.0 <= recall <= 1.0
    if precision + recall > 0:
        assert f1 == pytest.approx(2 * precision * recall / (precision + recall))
    assert f1 == pytest.approx(skm.f1_score(y_true, y_pred, zero_division=0.0))


def test_auc_with_one_class_warns_and_returns_nan():
    with pytest.warns(UserWarning, match="one class"):
        assert np.isnan(metrics.roc_auc_score([1, 1, 1], [0.1, 0.2, 0.3]))


def test_non_binary_labels_need_pos_label():
    with pytest.raises(ValueError, match="pos_label"):
        metrics.roc_curve(["a", "b"], [0.1, 0.9])

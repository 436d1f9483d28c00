"""The scratch kit agrees with the evaluation module the system uses.

* the scratch ROC AUC equals ``reelrank.evaluation.metrics.auc`` (and sklearn's);
* the scratch confusion matrix agrees with ``confusion_matrix_at``;
* rolling-origin folds by time are K-fold on the time-sorted events after the first
  cutoff: their test windows are exactly the scratch ``KFold(shuffle=False)`` test folds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reelrank.evaluation.metrics import auc, confusion_matrix_at
from reelrank.evaluation.splits import rolling_origin_folds
from reelrank.scratch import KFold, confusion_matrix, roc_auc_score


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.floats(-5, 5)), min_size=2, max_size=200).filter(
        lambda rows: 0 < sum(label for label, _ in rows) < len(rows)
    )
)
def test_scratch_auc_equals_evaluation_auc(rows: list[tuple[bool, float]]) -> None:
    y = np.array([int(label) for label, _ in rows])
    scores = np.array([score for _, score in rows])
    assert roc_auc_score(y, scores) == pytest.approx(auc(y, scores), abs=1e-12)


def test_scratch_confusion_matrix_equals_evaluation() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    scores = rng.random(500)
    ours = confusion_matrix_at(y, scores, threshold=0.5)
    matrix = confusion_matrix(y, (scores >= 0.5).astype(int))
    assert (matrix[0, 0], matrix[0, 1], matrix[1, 0], matrix[1, 1]) == (
        ours.tn,
        ours.fp,
        ours.fn,
        ours.tp,
    )


@pytest.mark.parametrize("n_folds", [2, 3, 5])
def test_rolling_origin_windows_are_kfold_on_sorted_time(n_folds: int) -> None:
    n = 1_000
    rng = np.random.default_rng(n_folds)
    seconds = rng.choice(10_000_000, size=n, replace=False)  # distinct instants: no ties
    events = pd.DataFrame(
        {
            "user_id": rng.integers(1, 50, n),
            "item_id": rng.integers(1, 80, n),
            "rating": 4.0,
            "timestamp": pd.to_datetime(seconds, unit="s", utc=True),
        }
    )
    folds = rolling_origin_folds(events, n_folds=n_folds, min_train_fraction=0.5)
    order = np.argsort(events["timestamp"].to_numpy(), kind="stable")
    sorted_ns = pd.DatetimeIndex(events["timestamp"]).asi8[order]
    first_test = int(np.searchsorted(sorted_ns, folds[0].cutoff.value))
    tail = order[first_test:]  # the events the test windows partition, in time order
    kfold = list(KFold(n_splits=n_folds, shuffle=False).split(tail))
    for fold, (_, test_positions) in zip(folds, kfold, strict=True):
        expected = np.sort(tail[test_positions])
        assert np.array_equal(np.sort(fold.test_index), expected), fold.fold
        # and every training event precedes the window (expanding origin)
        assert (events["timestamp"].iloc[fold.train_index] < fold.cutoff).all()

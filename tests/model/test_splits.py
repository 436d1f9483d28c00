"""Time-aware splits: no leakage across the cutoff, ordered disjoint windows, determinism."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from reelrank.evaluation.errors import EvaluationError
from reelrank.evaluation.splits import (
    TimeFold,
    build_relevant,
    rolling_origin_folds,
    temporal_holdout,
)
from reelrank.schema import ITEM_ID, RATING, TIMESTAMP, USER_ID

START = pd.Timestamp("1997-09-20", tz="UTC")


@pytest.fixture
def events() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 2000
    seconds = np.sort(rng.integers(0, 120 * 86400, n))
    seconds[100:110] = seconds[100]  # some identical timestamps
    return pd.DataFrame(
        {
            USER_ID: rng.integers(0, 80, n),
            ITEM_ID: rng.integers(0, 150, n),
            RATING: rng.integers(1, 6, n).astype(float),
            TIMESTAMP: START + pd.to_timedelta(seconds, unit="s"),
        }
    ).sample(frac=1.0, random_state=1)  # unsorted on purpose


def assert_no_leakage(fold: TimeFold) -> None:
    assert (fold.train[TIMESTAMP] < fold.cutoff).all()
    assert (fold.test[TIMESTAMP] >= fold.cutoff).all()
    assert (fold.test[TIMESTAMP] < fold.test_end).all()


@pytest.mark.parametrize("test_days", [None, 10.0])
def test_rolling_origin_folds_are_leak_free_ordered_and_disjoint(
    events: pd.DataFrame, test_days: float | None
) -> None:
    folds = rolling_origin_folds(events, n_folds=3, test_days=test_days)
    assert [f.fold for f in folds] == [0, 1, 2]
    for fold in folds:
        assert_no_leakage(fold)
        assert len(fold.test) > 0
        assert fold.train_end == fold.cutoff
        # Expanding window: train = every event before the cutoff.
        assert len(fold.train) == int((events[TIMESTAMP] < fold.cutoff).sum())
        pd.testing.assert_frame_equal(fold.train, events.iloc[fold.train_index])
        pd.testing.assert_frame_equal(fold.test, events.iloc[fold.test_index])
    for earlier, later in itertools.pairwise(folds):
        assert earlier.cutoff < later.cutoff
        assert earlier.test_end == later.cutoff  # adjacent, non-overlapping windows
        assert not set(earlier.test_index) & set(later.test_index)
        assert set(earlier.test_index) <= set(later.train_index)
    # The test windows cover everything from the first cutoff to the last event.
    covered = np.concatenate([f.test_index for f in folds])
    assert len(covered) == int((events[TIMESTAMP] >= folds[0].cutoff).sum())
    assert folds[-1].test_end > events[TIMESTAMP].max()


def test_default_folds_split_the_later_half_into_equal_event_counts(events: pd.DataFrame) -> None:
    folds = rolling_origin_folds(events, n_folds=3)
    assert len(folds[0].train) / len(events) == pytest.approx(0.5, abs=0.01)
    sizes = [len(f.test) for f in folds]
    assert max(sizes) - min(sizes) <= 0.02 * len(events)


def test_test_days_gives_windows_of_that_length(events: pd.DataFrame) -> None:
    folds = rolling_origin_folds(events, n_folds=4, test_days=7.5)
    for fold in folds:
        assert fold.test_end - fold.cutoff == pd.Timedelta(days=7.5)
    assert folds[-1].test_end == events[TIMESTAMP].max() + pd.Timedelta(1, unit="ns")


def test_folds_are_deterministic_and_independent_of_row_order(events: pd.DataFrame) -> None:
    first = rolling_origin_folds(events, n_folds=3)
    second = rolling_origin_folds(events, n_folds=3)
    reordered = rolling_origin_folds(events.sort_values(TIMESTAMP), n_folds=3)
    for a, b, c in zip(first, second, reordered, strict=True):
        assert (a.cutoff, a.test_end) == (b.cutoff, b.test_end) == (c.cutoff, c.test_end)
        np.testing.assert_array_equal(a.train_index, b.train_index)
        np.testing.assert_array_equal(a.test_index, b.test_index)
        assert set(a.test.index) == set(c.test.index)
        assert set(a.train.index) == set(c.train.index)


def test_fold_describe(events: pd.DataFrame) -> None:
    info = rolling_origin_folds(events, n_folds=3)[1].describe()
    assert info["fold"] == 1
    assert info["n_train"] > 0
    assert info["n_test"] > 0
    assert info["n_test_users"] <= 80


def test_bad_fold_requests_raise(events: pd.DataFrame) -> None:
    with pytest.raises(EvaluationError, match="n_folds"):
        rolling_origin_folds(events, n_folds=0)
    with pytest.raises(EvaluationError, match="min_train_fraction"):
        rolling_origin_folds(events, min_train_fraction=1.0)
    with pytest.raises(EvaluationError, match="min_train_fraction"):
        rolling_origin_folds(events, n_folds=3, test_days=30.0)  # 90 of 120 days as test
    with pytest.raises(EvaluationError, match="datetime"):
        rolling_origin_folds(events.assign(**{TIMESTAMP: 5}))
    with pytest.raises(EvaluationError, match="timestamp"):
        rolling_origin_folds(events.drop(columns=TIMESTAMP))
    few_times = events.assign(**{TIMESTAMP: START})
    with pytest.raises(EvaluationError, match="distinct timestamps"):
        rolling_origin_folds(few_times)


def test_temporal_holdout(events: pd.DataFrame) -> None:
    fold = temporal_holdout(events, test_fraction=0.2)
    assert_no_leakage(fold)
    assert len(fold.test) / len(events) == pytest.approx(0.2, abs=0.01)
    assert len(fold.train) + len(fold.test) == len(events)
    with pytest.raises(EvaluationError, match="test_fraction"):
        temporal_holdout(events, test_fraction=0.0)


TRAIN = pd.DataFrame({USER_ID: [1, 1, 2], ITEM_ID: [10, 20, 10], RATING: [5.0, 3.0, 4.0]})
TEST = pd.DataFrame(
    {
        USER_ID: [1, 1, 1, 2, 2, 3],
        ITEM_ID: [10, 30, 30, 40, 20, 50],
        RATING: [5.0, 3.0, 5.0, 2.0, 4.0, 5.0],
    }
)


def test_build_relevant_golden() -> None:
    # (1, 10) was seen in train; (1, 30) appears twice (max rating kept); user 3 is cold.
    relevant = build_relevant(TRAIN, TEST)
    assert relevant.values.tolist() == [[1, 30, 5.0], [2, 20, 4.0], [2, 40, 2.0]]
    assert list(relevant.columns) == [USER_ID, ITEM_ID, RATING]


def test_build_relevant_options() -> None:
    with_cold = build_relevant(TRAIN, TEST, include_cold_users=True)
    assert (3, 50) in set(zip(with_cold[USER_ID], with_cold[ITEM_ID], strict=True))
    positives = build_relevant(TRAIN, TEST, positive_threshold=4.0)
    assert positives[[USER_ID, ITEM_ID]].values.tolist() == [[1, 30], [2, 20]]
    warm_items = build_relevant(TRAIN, TEST, include_cold_items=False)
    assert warm_items[[USER_ID, ITEM_ID]].values.tolist() == [[2, 20]]
    no_rating = build_relevant(TRAIN.drop(columns=RATING), TEST.drop(columns=RATING))
    assert list(no_rating.columns) == [USER_ID, ITEM_ID]
    assert len(no_rating) == 3
    with pytest.raises(EvaluationError, match="positive_threshold"):
        build_relevant(TRAIN, TEST.drop(columns=RATING), positive_threshold=4.0)


def test_build_relevant_from_a_fold_never_contains_training_pairs(events: pd.DataFrame) -> None:
    fold = rolling_origin_folds(events, n_folds=3)[0]
    relevant = build_relevant(fold.train, fold.test)
    seen = set(zip(fold.train[USER_ID], fold.train[ITEM_ID], strict=True))
    assert len(relevant) > 0
    assert not seen & set(zip(relevant[USER_ID], relevant[ITEM_ID], strict=True))
    assert relevant[USER_ID].isin(fold.train[USER_ID]).all()

"""Bootstrap intervals, paired differences, fold summaries and slices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reelrank.evaluation.errors import EvaluationError
from reelrank.evaluation.metrics import NDCG, RANK, RECALL, per_user_metrics
from reelrank.evaluation.slices import (
    ALL_USERS,
    HEAVY_USERS,
    LIGHT_USERS,
    LONG_TAIL_ITEMS,
    N_USERS,
    evaluate_slices,
    heavy_users,
    light_users,
    long_tail_items,
    slice_per_user_metrics,
    user_slice_metrics,
)
from reelrank.evaluation.stats import (
    bootstrap_ci,
    paired_bootstrap_diff,
    summarise_folds,
)
from reelrank.schema import ITEM_ID, USER_ID

# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_covers_the_true_mean_at_roughly_the_nominal_rate() -> None:
    rng = np.random.default_rng(123)
    true_mean, n_experiments = 0.3, 300
    covered = 0
    for seed in range(n_experiments):
        sample = rng.normal(true_mean, 1.0, size=60)
        ci = bootstrap_ci(sample, n_resamples=400, confidence=0.9, seed=seed)
        covered += ci.low <= true_mean <= ci.high
    # Nominal 0.90; binomial sd ~0.017, percentile bootstrap slightly under-covers at n=60.
    assert 0.83 <= covered / n_experiments <= 0.96


def test_bootstrap_ci_shape_and_width() -> None:
    rng = np.random.default_rng(0)
    small = bootstrap_ci(rng.random(50))
    large = bootstrap_ci(rng.random(5000))
    for ci in (small, large):
        assert ci.low <= ci.mean <= ci.high
        assert ci.confidence == 0.95
    assert (large.high - large.low) < (small.high - small.low) / 5
    assert bootstrap_ci([0.4]).low == bootstrap_ci([0.4]).high == 0.4


def test_bootstrap_is_deterministic_given_a_seed() -> None:
    values = np.random.default_rng(5).random(200)
    assert bootstrap_ci(values, seed=1) == bootstrap_ci(values, seed=1)
    assert bootstrap_ci(values, seed=1) != bootstrap_ci(values, seed=2)
    a, b = values, values[::-1] * 0.9
    assert paired_bootstrap_diff(a, b, seed=3) == paired_bootstrap_diff(a, b, seed=3)


def test_bootstrap_rejects_bad_input() -> None:
    with pytest.raises(EvaluationError, match="empty"):
        bootstrap_ci([])
    with pytest.raises(EvaluationError, match="NaN"):
        bootstrap_ci([0.1, np.nan])
    with pytest.raises(EvaluationError, match="confidence"):
        bootstrap_ci([0.1, 0.2], confidence=1.5)


def test_paired_diff_of_identical_models_is_exactly_zero() -> None:
    values = pd.Series(np.random.default_rng(2).random(300), index=range(300))
    result = paired_bootstrap_diff(values, values.copy())
    assert (result.mean_diff, result.low, result.high) == (0.0, 0.0, 0.0)
    assert result.p_value == 1.0
    assert not result.significant
    assert not result.a_better


def test_paired_diff_sees_a_small_consistent_gain_that_unpaired_noise_would_hide() -> None:
    rng = np.random.default_rng(4)
    baseline = rng.random(400)  # large spread between users
    model = baseline + 0.02 + rng.normal(0, 0.005, 400)
    result = paired_bootstrap_diff(model, baseline)
    assert result.mean_diff == pytest.approx(0.02, abs=0.002)
    assert result.low > 0
    assert result.a_better
    assert result.significant
    assert result.p_value < 0.01
    # Each model's own interval is far wider than the difference: pairing is what matters.
    own = bootstrap_ci(model)
    assert own.high - own.low > 5 * (result.high - result.low)
    reverse = paired_bootstrap_diff(baseline, model)
    assert reverse.high < 0
    assert not reverse.a_better


def test_paired_diff_aligns_series_on_index_and_refuses_mismatches() -> None:
    rng = np.random.default_rng(6)
    index = pd.MultiIndex.from_product([[0, 1], range(50)], names=["fold", USER_ID])
    a = pd.Series(rng.random(100), index=index)
    b = pd.Series(rng.random(100), index=index)
    shuffled = b.sample(frac=1.0, random_state=0)
    assert paired_bootstrap_diff(a, shuffled) == paired_bootstrap_diff(a, b)
    with pytest.raises(EvaluationError, match="same users"):
        paired_bootstrap_diff(a, b.iloc[:-1])
    with pytest.raises(EvaluationError, match="length"):
        paired_bootstrap_diff(a.to_numpy(), b.to_numpy()[:-1])


def test_summarise_folds_golden() -> None:
    per_fold = pd.DataFrame(
        {
            "model": ["ranker"] * 3 + ["popularity"] * 3,
            "fold": [0, 1, 2] * 2,
            "ndcg_at_10": [0.1, 0.2, 0.3, 0.1, 0.1, 0.1],
            "recall_at_10": [0.2, 0.2, 0.2, 0.05, 0.1, 0.15],
        }
    )
    summary = summarise_folds(per_fold)
    assert list(summary.columns) == ["mean", "std", "min", "max", "n_folds"]
    row = summary.loc[("ranker", "ndcg_at_10")]
    assert (row["mean"], row["std"], row["min"], row["max"]) == pytest.approx((0.2, 0.1, 0.1, 0.3))
    assert row["n_folds"] == 3
    assert summary.loc[("popularity", "recall_at_10"), "mean"] == pytest.approx(0.1)
    assert summary.loc[("popularity", "ndcg_at_10"), "std"] == pytest.approx(0.0)
    ungrouped = summarise_folds(per_fold[per_fold["model"] == "ranker"].drop(columns="model"))
    assert list(ungrouped.index) == ["ndcg_at_10", "recall_at_10"]
    with pytest.raises(EvaluationError, match="numeric"):
        summarise_folds(per_fold[["model", "fold"]])


# --------------------------------------------------------------------------- slices

# Training activity: user u has u events (users 1..20); item popularity is skewed.
TRAIN = pd.DataFrame(
    {
        USER_ID: np.repeat(np.arange(1, 21), np.arange(1, 21)),
        ITEM_ID: np.resize(np.array([1] * 5 + [2] * 3 + [3, 4]), 210),
    }
)


def test_light_and_heavy_users_golden() -> None:
    assert list(light_users(TRAIN, max_events=3)) == [1, 2, 3]
    assert list(light_users(TRAIN, 3, users=[2, 99])) == [1, 2, 3, 99]  # 99: no events
    assert list(heavy_users(TRAIN, top_fraction=0.1)) == [19, 20]
    assert list(heavy_users(TRAIN, top_fraction=0.12)) == [18, 19, 20]  # ceil(2.4) = 3


def test_long_tail_items_golden() -> None:
    train = pd.DataFrame({ITEM_ID: [1] * 50 + [2] * 30 + [3] * 10 + [4] * 5 + [5] * 5})
    train[USER_ID] = 0
    # Items 1 and 2 hold 80 % of interactions: the head. Item 6 was never interacted with.
    assert list(long_tail_items(train, head_share=0.8)) == [3, 4, 5]
    assert list(long_tail_items(train, 0.8, catalogue=[1, 2, 3, 4, 5, 6])) == [3, 4, 5, 6]
    assert list(long_tail_items(train, head_share=0.5)) == [2, 3, 4, 5]
    assert list(long_tail_items(train, head_share=1.0)) == []


def _slice_world() -> tuple[pd.DataFrame, pd.DataFrame]:
    # Users 1, 2, 19, 20 recommended items [1, 3]; each has one relevant item.
    recs = pd.DataFrame(
        {USER_ID: np.repeat([1, 2, 19, 20], 2), ITEM_ID: [1, 3] * 4, RANK: [1, 2] * 4}
    )
    relevant = pd.DataFrame({USER_ID: [1, 2, 19, 20], ITEM_ID: [1, 4, 3, 4]})
    return recs, relevant


def test_evaluate_slices_golden() -> None:
    recs, relevant = _slice_world()
    table = evaluate_slices(recs, relevant, TRAIN, k=2, light_max_events=2, heavy_fraction=0.1)
    assert list(table.index) == [ALL_USERS, LIGHT_USERS, HEAVY_USERS, LONG_TAIL_ITEMS]
    assert table[N_USERS].tolist() == [4, 2, 2, 3]
    # all: hits for users 1 (item 1) and 19 (item 3) -> recall 2/4.
    assert table.loc[ALL_USERS, RECALL] == pytest.approx(0.5)
    assert table.loc[LIGHT_USERS, RECALL] == pytest.approx(0.5)  # users 1, 2
    assert table.loc[HEAVY_USERS, RECALL] == pytest.approx(0.5)  # users 19, 20
    # Tail = items 3, 4 (item 1: 105/210 events, item 2: 63 -> head). Users 2, 19, 20 judged.
    assert table.loc[LONG_TAIL_ITEMS, RECALL] == pytest.approx(1 / 3)
    frames = slice_per_user_metrics(recs, relevant, TRAIN, k=2, light_max_events=2)
    assert list(frames[LIGHT_USERS].index) == [1, 2]


def test_user_slice_metrics_handles_empty_slices() -> None:
    recs, relevant = _slice_world()
    per_user = per_user_metrics(recs, relevant, 2)
    table = user_slice_metrics(per_user, {"nobody": [], "first": [1]})
    assert table.loc["nobody", N_USERS] == 0
    assert np.isnan(table.loc["nobody", NDCG])
    assert table.loc["first", NDCG] == 1.0
    assert table.loc[ALL_USERS, NDCG] == pytest.approx(per_user[NDCG].mean())

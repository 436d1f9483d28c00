"""Ranking and classification metrics: golden values, edge cases, scikit-learn cross-checks."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    confusion_matrix,
    ndcg_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

from reelrank.evaluation.errors import EvaluationError
from reelrank.evaluation.metrics import (
    HIT_RATE,
    MAP,
    MRR,
    NDCG,
    POSITION,
    PRECISION,
    RANK,
    RANKING_METRICS,
    RECALL,
    SCORE,
    auc,
    catalogue_coverage,
    confusion_matrix_at,
    evaluate_ranking,
    hit_rate_at_k,
    item_popularity_probability,
    map_at_k,
    metric_key,
    mrr,
    ndcg_at_k,
    novelty,
    per_user_metrics,
    precision_at_k,
    recall_at_k,
    top_k_items,
)
from reelrank.schema import ITEM_ID, RATING, USER_ID

SCALAR_METRICS = {
    PRECISION: precision_at_k,
    RECALL: recall_at_k,
    MAP: map_at_k,
    NDCG: ndcg_at_k,
    HIT_RATE: hit_rate_at_k,
    MRR: mrr,
}


def recs_frame(lists: dict[int, list[int]]) -> pd.DataFrame:
    rows = [
        (user, item, rank)
        for user, items in lists.items()
        for rank, item in enumerate(items, start=1)
    ]
    return pd.DataFrame(rows, columns=[USER_ID, ITEM_ID, RANK])


def relevant_frame(sets: dict[int, list[int]]) -> pd.DataFrame:
    rows = [(user, item) for user, items in sets.items() for item in items]
    return pd.DataFrame(rows, columns=[USER_ID, ITEM_ID])


# User 1: hits at positions 2 and 5 of 5, 3 relevant. User 2: 3 recs, hit at 1, 1 relevant.
# User 3: relevant but never recommended (scores 0). User 4: recommended but not judged.
RECS = recs_frame({1: [10, 20, 30, 40, 50], 2: [10, 20, 30], 4: [10, 20]})
RELEVANT = relevant_frame({1: [20, 50, 60], 2: [10], 3: [70]})
USER1_NDCG = (1 / math.log2(3) + 1 / math.log2(6)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
GOLDEN_PER_USER = {
    PRECISION: [2 / 5, 1 / 5, 0.0],
    RECALL: [2 / 3, 1.0, 0.0],
    MAP: [(1 / 2 + 2 / 5) / 3, 1.0, 0.0],
    NDCG: [USER1_NDCG, 1.0, 0.0],
    HIT_RATE: [1.0, 1.0, 0.0],
    MRR: [1 / 2, 1.0, 0.0],
}


def test_per_user_golden_values() -> None:
    per_user = per_user_metrics(RECS, RELEVANT, k=5)
    assert list(per_user.index) == [1, 2, 3]
    assert per_user.index.name == USER_ID
    assert list(per_user.columns) == list(RANKING_METRICS)
    for name, expected in GOLDEN_PER_USER.items():
        assert per_user[name].tolist() == pytest.approx(expected), name


@pytest.mark.parametrize("name", list(SCALAR_METRICS))
def test_scalar_metric_is_mean_over_judged_users(name: str) -> None:
    value = SCALAR_METRICS[name](RECS, RELEVANT, 5)
    assert value == pytest.approx(np.mean(GOLDEN_PER_USER[name]))


def test_k_truncates_the_lists() -> None:
    per_user = per_user_metrics(RECS, RELEVANT, k=1)
    assert per_user[PRECISION].tolist() == pytest.approx([0.0, 1.0, 0.0])
    assert per_user[MAP].tolist() == pytest.approx([0.0, 1.0, 0.0])
    assert per_user[NDCG].tolist() == pytest.approx([0.0, 1.0, 0.0])
    k2 = per_user_metrics(RECS, RELEVANT, k=2)
    # User 1: hit at 2; ideal DCG@2 has two relevant items.
    assert k2.loc[1, NDCG] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert k2.loc[1, MAP] == pytest.approx((1 / 2) / 2)


def test_graded_ndcg_golden_value() -> None:
    relevant = pd.DataFrame({USER_ID: [1, 1, 1], ITEM_ID: [20, 50, 60], RATING: [3.0, 1.0, 2.0]})
    value = ndcg_at_k(RECS, relevant, 5, relevance_col=RATING)
    expected = (3 / math.log2(3) + 1 / math.log2(6)) / (3 + 2 / math.log2(3) + 1 / math.log2(4))
    assert value == pytest.approx(expected)
    # Binary metrics ignore the grade but treat relevance <= 0 as not relevant.
    relevant.loc[relevant[ITEM_ID] == 50, RATING] = 0.0
    assert recall_at_k(RECS, relevant, 5, relevance_col=RATING) == pytest.approx(1 / 2)


def test_score_column_nondense_ranks_and_row_order_do_not_matter() -> None:
    by_score = RECS.assign(**{SCORE: -RECS[RANK].astype(float)}).drop(columns=RANK)
    gapped = RECS.assign(**{RANK: RECS[RANK] * 10 + 3})
    shuffled = RECS.sample(frac=1.0, random_state=3)
    expected = per_user_metrics(RECS, RELEVANT, 5)
    for variant in (by_score, gapped, shuffled):
        pd.testing.assert_frame_equal(per_user_metrics(variant, RELEVANT, 5), expected)


def test_duplicates_keep_the_best_position_and_ties_break_by_item() -> None:
    recs = pd.DataFrame({USER_ID: [1, 1, 1, 1], ITEM_ID: [30, 20, 20, 10], RANK: [1, 1, 5, 2]})
    top = top_k_items(recs, 10)
    assert top[ITEM_ID].tolist() == [20, 30, 10]
    assert top[POSITION].tolist() == [1, 2, 3]


def test_custom_column_names() -> None:
    recs = RECS.rename(columns={USER_ID: "u", ITEM_ID: "i", RANK: "r"})
    relevant = RELEVANT.rename(columns={USER_ID: "u", ITEM_ID: "i"})
    value = ndcg_at_k(recs, relevant, 5, user_col="u", item_col="i", rank_col="r")
    assert value == pytest.approx(ndcg_at_k(RECS, RELEVANT, 5))


def test_bad_inputs_raise_project_errors() -> None:
    with pytest.raises(EvaluationError, match="k must be"):
        precision_at_k(RECS, RELEVANT, 0)
    with pytest.raises(EvaluationError, match="rank"):
        precision_at_k(RECS.drop(columns=RANK), RELEVANT, 5)
    with pytest.raises(EvaluationError, match="missing column"):
        precision_at_k(RECS, RELEVANT.rename(columns={ITEM_ID: "movie"}), 5)
    with pytest.raises(EvaluationError, match="no user with a relevant item"):
        ndcg_at_k(RECS, RELEVANT.iloc[0:0], 5)
    with pytest.raises(EvaluationError, match="Unknown ranking metric"):
        per_user_metrics(RECS, RELEVANT, 5, metrics=["ndcg", "auc_typo"])
    assert per_user_metrics(RECS, RELEVANT.iloc[0:0], 5).empty


def _naive_per_user(recs: pd.DataFrame, relevant: pd.DataFrame, k: int) -> pd.DataFrame:
    """A slow, obviously-correct reference implementation of the binary metrics."""
    rows = {}
    for user, group in relevant.groupby(USER_ID):
        rel = set(group[ITEM_ID])
        ranked = recs[recs[USER_ID] == user].sort_values(RANK)[ITEM_ID].tolist()[:k]
        hits = [item in rel for item in ranked]
        precisions = [sum(hits[: i + 1]) / (i + 1) for i, hit in enumerate(hits) if hit]
        dcg = sum(1 / math.log2(i + 2) for i, hit in enumerate(hits) if hit)
        idcg = sum(1 / math.log2(i + 2) for i in range(min(len(rel), k)))
        first = next((i + 1 for i, hit in enumerate(hits) if hit), None)
        rows[user] = {
            PRECISION: sum(hits) / k,
            RECALL: sum(hits) / len(rel),
            MAP: sum(precisions) / min(len(rel), k),
            NDCG: dcg / idcg,
            HIT_RATE: float(any(hits)),
            MRR: 1 / first if first else 0.0,
        }
    return pd.DataFrame.from_dict(rows, orient="index")


@pytest.mark.parametrize("k", [1, 3, 10])
def test_matches_naive_reference_on_random_data(k: int) -> None:
    rng = np.random.default_rng(k)
    lists = {u: list(rng.choice(40, size=rng.integers(0, 15), replace=False)) for u in range(30)}
    sets = {u: list(rng.choice(40, size=rng.integers(1, 8), replace=False)) for u in range(25)}
    recs, relevant = recs_frame(lists), relevant_frame(sets)
    expected = _naive_per_user(recs, relevant, k)
    actual = per_user_metrics(recs, relevant, k)
    np.testing.assert_allclose(actual[expected.columns].to_numpy(), expected.to_numpy())


def _dense_problem(graded: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_users, n_items = 40, 25
    scores = rng.random((n_users, n_items))
    truth = (rng.random((n_users, n_items)) < 0.2).astype(float)
    truth[np.arange(n_users), rng.integers(0, n_items, n_users)] = 1.0  # >= 1 relevant each
    if graded:
        truth *= rng.integers(1, 6, size=truth.shape)
    return truth, scores


def _to_frames(truth: np.ndarray, scores: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    users, items = np.indices(scores.shape)
    recs = pd.DataFrame({USER_ID: users.ravel(), ITEM_ID: items.ravel(), SCORE: scores.ravel()})
    mask = truth.ravel() > 0
    relevant = pd.DataFrame(
        {USER_ID: users.ravel()[mask], ITEM_ID: items.ravel()[mask], RATING: truth.ravel()[mask]}
    )
    return recs, relevant


@pytest.mark.parametrize("graded", [False, True])
@pytest.mark.parametrize("k", [1, 5, 10, 25])
def test_ndcg_matches_sklearn(graded: bool, k: int) -> None:
    truth, scores = _dense_problem(graded, seed=k)
    recs, relevant = _to_frames(truth, scores)
    ours = ndcg_at_k(recs, relevant, k, relevance_col=RATING if graded else None)
    assert ours == pytest.approx(ndcg_score(truth, scores, k=k), abs=1e-12)


def test_auc_matches_sklearn_including_ties() -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        y_true = rng.integers(0, 2, 500)
        y_score = np.round(rng.random(500) + 0.3 * y_true, 1)  # many ties
        assert auc(y_true, y_score) == pytest.approx(roc_auc_score(y_true, y_score), abs=1e-12)
    assert auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert auc([0, 1], [0.5, 0.5]) == 0.5


def test_auc_needs_both_classes() -> None:
    with pytest.raises(EvaluationError, match="both classes"):
        auc([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(EvaluationError, match="binary"):
        auc([0, 2], [0.1, 0.2])


def test_confusion_matrix_golden_and_matches_sklearn() -> None:
    cm = confusion_matrix_at([1, 1, 0, 0, 1], [0.9, 0.4, 0.6, 0.1, 0.5], threshold=0.5)
    assert (cm.tp, cm.fp, cm.tn, cm.fn) == (2, 1, 1, 1)
    assert cm.precision == pytest.approx(2 / 3)
    assert cm.recall == pytest.approx(2 / 3)
    assert cm.f1 == pytest.approx(2 / 3)
    assert cm.accuracy == pytest.approx(3 / 5)
    assert cm.as_dict()["f1"] == pytest.approx(2 / 3)

    rng = np.random.default_rng(1)
    y_true, y_score = rng.integers(0, 2, 300), rng.random(300)
    cm = confusion_matrix_at(y_true, y_score, 0.7)
    predicted = (y_score >= 0.7).astype(int)
    tn, fp, fn, tp = confusion_matrix(y_true, predicted).ravel()
    assert (cm.tp, cm.fp, cm.tn, cm.fn) == (tp, fp, tn, fn)
    precision, recall, f1, _ = precision_recall_fscore_support(y_true, predicted, average="binary")
    assert (cm.precision, cm.recall, cm.f1) == pytest.approx((precision, recall, f1))


def test_confusion_matrix_with_no_predicted_positive_has_zero_precision() -> None:
    cm = confusion_matrix_at([0, 1], [0.1, 0.2], threshold=0.9)
    assert (cm.precision, cm.recall, cm.f1) == (0.0, 0.0, 0.0)


def test_catalogue_coverage_golden() -> None:
    # Top-2 items: user 1 -> 10, 20; user 2 -> 10, 20; user 4 -> 10, 20.
    assert catalogue_coverage(RECS, 10, k=2) == pytest.approx(2 / 10)
    # Top-5: 10, 20, 30, 40, 50 -> 5 distinct; only 10, 30, 99 are in this catalogue.
    assert catalogue_coverage(RECS, [10, 30, 99, 98], k=5) == pytest.approx(2 / 4)
    assert catalogue_coverage(RECS, pd.Index([10, 20]), k=5) == 1.0
    with pytest.raises(EvaluationError, match="catalogue"):
        catalogue_coverage(RECS, 0)


def test_item_popularity_and_novelty_golden() -> None:
    events = pd.DataFrame({USER_ID: [1, 1, 2, 2, 3, 4, 4], ITEM_ID: [10, 20, 10, 10, 10, 10, 30]})
    p = item_popularity_probability(events)
    assert p.to_dict() == pytest.approx({10: 1.0, 20: 0.25, 30: 0.25})
    recs = recs_frame({1: [20, 10], 2: [30, 40]})  # 40 is unknown: treated as rarest (p=0.25)
    assert novelty(recs, p, k=2) == pytest.approx((2 + 0 + 2 + 2) / 4)
    assert novelty(recs, p, k=1) == pytest.approx(2.0)
    with pytest.raises(EvaluationError, match="probabilities"):
        novelty(recs, p * 4, k=2)


def test_evaluate_ranking_returns_every_metric_keyed_with_k() -> None:
    p = pd.Series({10: 0.5, 20: 0.5, 30: 0.25, 40: 0.25, 50: 0.125})
    result = evaluate_ranking(RECS, RELEVANT, 5, catalogue=10, item_popularity=p)
    assert set(result) == {metric_key(m, 5) for m in (*RANKING_METRICS, "coverage", "novelty")}
    assert result["ndcg_at_5"] == pytest.approx(ndcg_at_k(RECS, RELEVANT, 5))
    assert result["coverage_at_5"] == pytest.approx(0.5)
    assert all(isinstance(v, float) for v in result.values())
    assert set(evaluate_ranking(RECS, RELEVANT, 5)) == {metric_key(m, 5) for m in RANKING_METRICS}


def test_fast_on_6000_users_with_200_recommendations() -> None:
    n_users, n_recs, n_items = 6000, 200, 4000
    users = np.repeat(np.arange(n_users), n_recs)
    items = (users * 7 + np.tile(np.arange(n_recs), n_users) * 13) % n_items
    recs = pd.DataFrame({USER_ID: users, ITEM_ID: items, RANK: np.tile(np.arange(1, 201), n_users)})
    rng = np.random.default_rng(0)
    relevant = pd.DataFrame(
        {USER_ID: rng.integers(0, n_users, 60_000), ITEM_ID: rng.integers(0, n_items, 60_000)}
    )
    start = time.perf_counter()
    per_user = per_user_metrics(recs, relevant, k=100)
    elapsed = time.perf_counter() - start
    assert len(per_user) == relevant[USER_ID].nunique()
    assert elapsed < 10.0, f"per_user_metrics took {elapsed:.1f} s"
    assert ((per_user >= 0) & (per_user <= 1)).all().all()

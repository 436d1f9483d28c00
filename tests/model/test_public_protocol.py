"""The public protocol's split and metrics, on cases small enough to work out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from reelrank.evaluation.public_protocol import metrics, per_user_ndcg, stratified_split


def test_the_split_is_per_item_and_keeps_every_rating() -> None:
    rng = np.random.default_rng(0)
    events = pd.DataFrame(
        {"user_id": rng.integers(0, 50, 2000), "item_id": rng.integers(0, 40, 2000)}
    )
    train, test = stratified_split(events)
    assert len(train) + len(test) == len(events)
    share = train.groupby("item_id").size() / events.groupby("item_id").size()
    assert (share.between(0.5, 0.8)).all()  # 75 % of each item's ratings, rounded per item
    again_train, _ = stratified_split(events)
    pd.testing.assert_frame_equal(train, again_train)  # seeded: the same split every time


def test_metrics_match_the_definitions_worked_by_hand() -> None:
    test = pd.DataFrame({"user_id": [1, 1, 1, 2, 3], "item_id": [10, 11, 12, 20, 30]})
    recs = pd.DataFrame(
        {"user_id": [1, 1, 2, 2], "item_id": [11, 99, 98, 20], "rank": [1, 2, 1, 2]}
    )  # user 3 gets nothing: counts in nDCG, not in precision/recall/MAP
    got = metrics(test, recs, k=2)
    assert got["precision@2"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert got["recall@2"] == pytest.approx((1 / 3 + 1 / 1) / 2)
    assert got["map"] == pytest.approx((1 / 3 + (1 / 2) / 1) / 2)
    assert got["map@2"] == pytest.approx((1 / 2 + (1 / 2) / 1) / 2)
    idcg_1 = 1 + 1 / math.log2(3)
    ndcg_1, ndcg_2 = 1 / idcg_1, (1 / math.log2(3)) / 1
    assert got["ndcg@2"] == pytest.approx((ndcg_1 + ndcg_2 + 0.0) / 3)


def test_per_user_ndcg_is_each_users_share_and_averages_to_the_metric() -> None:
    test = pd.DataFrame({"user_id": [1, 1, 1, 2, 3], "item_id": [10, 11, 12, 20, 30]})
    recs = pd.DataFrame(
        {"user_id": [1, 1, 2, 2, 4], "item_id": [11, 99, 98, 20, 10], "rank": [1, 2, 1, 2, 1]}
    )  # user 4 is not a test user: not scored; user 3 has no row: scores 0
    got = per_user_ndcg(test, recs, k=2)
    assert list(got.index) == [1, 2, 3]
    assert got.tolist() == pytest.approx([1 / (1 + 1 / math.log2(3)), 1 / math.log2(3), 0.0])
    assert got.mean() == pytest.approx(metrics(test, recs, k=2)["ndcg@2"])

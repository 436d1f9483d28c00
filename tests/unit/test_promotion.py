from __future__ import annotations

from reelrank.registry.gate import Difference, decide_promotion


def diff(mean: float, low: float, high: float, reference: str = "ref") -> Difference:
    return Difference(reference=reference, mean=mean, low=low, high=high)


def test_first_model_beating_baselines_becomes_champion() -> None:
    decision = decide_promotion("ndcg@10", diff(0.05, 0.02, 0.08, "item_knn"), None)
    assert decision.promote
    assert "first model" in decision.reason
    assert "item_knn" in decision.reason


def test_interval_touching_zero_is_not_enough() -> None:
    decision = decide_promotion("ndcg@10", diff(0.01, 0.0, 0.02), None)
    assert not decision.promote
    assert "does not beat the best baseline" in decision.reason


def test_must_beat_champion_too() -> None:
    decision = decide_promotion("ndcg@10", diff(0.05, 0.02, 0.08), diff(0.0, -0.01, 0.01, "v3"))
    assert not decision.promote
    assert "champion (v3)" in decision.reason


def test_beating_both_promotes() -> None:
    decision = decide_promotion("ndcg@10", diff(0.05, 0.02, 0.08), diff(0.02, 0.005, 0.03))
    assert decision.promote
    assert "beats the champion" in decision.reason


def test_worse_than_baseline_says_why() -> None:
    decision = decide_promotion("ndcg@10", diff(-0.03, -0.05, -0.01, "popularity"), None)
    assert not decision.promote
    assert "-0.0300" in decision.reason

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


def test_the_offpolicy_gate_can_only_hold_a_promotion_back() -> None:
    from reelrank.registry.gate import PromotionDecision, decide_offpolicy

    promoted = PromotionDecision(True, "promoted: beats the best baseline.")
    refused = PromotionDecision(False, "not promoted: ties the baseline.")
    assert decide_offpolicy(refused, (0.9, 100), (0.1, 100)) == refused
    no_logs = decide_offpolicy(promoted, None, (0.5, 100))
    assert not no_logs.promote
    assert "no exploring slates" in no_logs.reason
    assert decide_offpolicy(promoted, (0.4, 100), None).promote  # no champion yet
    worse = decide_offpolicy(promoted, (0.40, 120), (0.45, 120))
    assert not worse.promote
    assert "0.4000 below the champion's 0.4500" in worse.reason
    better = decide_offpolicy(promoted, (0.50, 120), (0.45, 120))
    assert better.promote
    assert better.reason.startswith("promoted: beats the best baseline. Off-policy gate")


def test_a_refresh_identical_on_the_folds_is_promoted_if_it_beats_the_baseline() -> None:
    """The folds refit the champion's configuration: a retrain of the same configuration
    ties exactly on every user, and newer data decides; on the same data it is equal."""
    same = diff(0.0, 0.0, 0.0, "v3")
    refresh = decide_promotion("ndcg@10", diff(0.05, 0.02, 0.08), same, newer_data=True)
    assert refresh.promote
    assert refresh.reason.startswith("promoted: a refresh, identical to the champion (v3)")
    equal = decide_promotion("ndcg@10", diff(0.05, 0.02, 0.08), same)  # the champion's data
    assert not equal.promote
    assert "does not beat the current champion (v3)" in equal.reason
    weak = decide_promotion("ndcg@10", diff(0.01, -0.01, 0.03), same, newer_data=True)
    assert not weak.promote  # still has to beat the best baseline
    assert "does not beat the best baseline" in weak.reason
    near = decide_promotion(
        "ndcg@10", diff(0.05, 0.02, 0.08), diff(0.0, -0.001, 0.001), newer_data=True
    )
    assert not near.promote  # a different model that merely ties is no refresh

"""The promotion gate: when a newly trained model may replace the champion.

A new version always gets the alias ``challenger``. It becomes ``champion`` only if its
cross-validated nDCG@10 beats both the best baseline and the current champion on the
same folds, with the bootstrap confidence interval of the paired per-user difference
entirely above zero. The first model that beats the baselines becomes champion.

A **refresh** (the champion's own configuration retrained on newer data: the scheduled
retrain, or one a drift trigger starts) cannot beat the champion on the folds: the folds
refit the champion's configuration, so the two score identically on every user, by
construction. When the paired difference is exactly zero for every user
(:attr:`Difference.identical`) and the candidate was trained on a lake the champion was not
(another data version), the folds cannot tell the two apart and the newer data decides: the
refresh is promoted if it beats the best baseline. On the champion's own data version an
identical model is an equal one and is not promoted. (Before this rule no
drift-triggered retrain was ever promoted: on the 300-user world three retrains in a row
tied at +0.0000, CI [+0.0000, +0.0000], while the served play rate fell.)
The decision is a pure function so it can be tested without MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Difference:
    """Paired difference of a metric (candidate minus reference) with its confidence interval."""

    reference: str
    mean: float
    low: float
    high: float

    @property
    def significant(self) -> bool:
        return self.low > 0.0

    @property
    def identical(self) -> bool:
        """Zero for every user: the two models are the same on these folds."""
        return self.mean == self.low == self.high == 0.0


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str


def decide_promotion(
    metric: str,
    vs_best_baseline: Difference,
    vs_champion: Difference | None,
    newer_data: bool = False,
) -> PromotionDecision:
    """Decide whether a challenger becomes champion.

    Args:
        metric: the gate metric's name, for the message (e.g. ``ndcg@10``).
        vs_best_baseline: candidate minus the best baseline, on identical folds.
        vs_champion: candidate minus the current champion (the incumbent) on identical
            folds, or ``None`` when there is no champion yet.
        newer_data: the candidate's data version differs from the champion's (a refresh
            identical on the folds is then promoted, see the module docstring).
    """
    if not vs_best_baseline.significant:
        return PromotionDecision(
            False,
            f"not promoted: {metric} does not beat the best baseline "
            f"({vs_best_baseline.reference}): difference {vs_best_baseline.mean:+.4f}, "
            f"95% CI [{vs_best_baseline.low:+.4f}, {vs_best_baseline.high:+.4f}] includes 0 "
            "or lies below it.",
        )
    if vs_champion is None:
        return PromotionDecision(
            True,
            f"promoted: first model to beat the best baseline ({vs_best_baseline.reference}) "
            f"on {metric}: {vs_best_baseline.mean:+.4f}, 95% CI "
            f"[{vs_best_baseline.low:+.4f}, {vs_best_baseline.high:+.4f}].",
        )
    if vs_champion.identical and newer_data:
        return PromotionDecision(
            True,
            f"promoted: a refresh, identical to the champion ({vs_champion.reference}) on every "
            f"user of every fold (its configuration, refitted), so the newer data decides; "
            f"beats the best baseline ({vs_best_baseline.reference}) on {metric} by "
            f"{vs_best_baseline.mean:+.4f} (95% CI [{vs_best_baseline.low:+.4f}, "
            f"{vs_best_baseline.high:+.4f}]).",
        )
    if not vs_champion.significant:
        return PromotionDecision(
            False,
            f"not promoted: {metric} does not beat the current champion "
            f"({vs_champion.reference}): difference {vs_champion.mean:+.4f}, 95% CI "
            f"[{vs_champion.low:+.4f}, {vs_champion.high:+.4f}] is not above 0.",
        )
    return PromotionDecision(
        True,
        f"promoted: beats the champion ({vs_champion.reference}) on {metric} by "
        f"{vs_champion.mean:+.4f} (95% CI [{vs_champion.low:+.4f}, {vs_champion.high:+.4f}]) "
        f"and the best baseline ({vs_best_baseline.reference}) by {vs_best_baseline.mean:+.4f}.",
    )


def decide_offpolicy(
    decision: PromotionDecision,
    candidate: tuple[float, int] | None,
    champion: tuple[float, int] | None,
) -> PromotionDecision:
    """The optional off-policy gate after the offline one: a candidate the offline gate
    promotes must also reach the champion's self-normalised IPS value on the exploring
    logs (``(value, slates)`` each; ``candidate`` None: there are no exploring logs)."""
    if not decision.promote:
        return decision
    if candidate is None:
        return PromotionDecision(
            False,
            "not promoted: the off-policy gate is on but the lake holds no exploring slates "
            "(serve with an epsilon or plackett-luce policy, then `reelrank ingest-feedback`).",
        )
    if champion is None:
        return PromotionDecision(
            True, f"{decision.reason} Off-policy value {candidate[0]:.4f} (no champion yet)."
        )
    if candidate[0] < champion[0]:
        return PromotionDecision(
            False,
            f"not promoted by the off-policy gate: plays per slate {candidate[0]:.4f} below "
            f"the champion's {champion[0]:.4f} (SNIPS on {candidate[1]:,} exploring slates).",
        )
    return PromotionDecision(
        True,
        f"{decision.reason} Off-policy gate: {candidate[0]:.4f} >= champion {champion[0]:.4f} "
        f"plays per slate (SNIPS on {candidate[1]:,} exploring slates).",
    )

"""The experiment estimators against cases whose answer is known exactly."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from reelrank.experiments import abtest, interleaving, ope, power


def test_sample_size_is_the_design_docs_formula_and_statsmodels() -> None:
    from statsmodels.stats.power import NormalIndPower

    plan = power.sample_size(baseline=0.10, mde=0.02)
    formula = (1.959963985 + 0.841621234) ** 2 * 2 * 0.10 * 0.90 / 0.002**2
    assert plan.per_arm == math.ceil(formula)
    effect = 0.002 / math.sqrt(0.10 * 0.90)
    statsmodels_n = NormalIndPower().solve_power(
        effect_size=effect, alpha=0.05, power=0.8, ratio=1.0
    )
    assert plan.per_arm == pytest.approx(statsmodels_n, rel=1e-5)
    assert power.detectable_effect(plan.per_arm, 0.10) == pytest.approx(0.02, rel=1e-4)
    assert power.sample_size(0.10, 0.02, design_effect=2.0).per_arm_with_design_effect == math.ceil(
        2 * formula
    )


def _world(n: int, rate_c: float, rate_t: float, seed: int, skew: float = 0.5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    arm = np.where(rng.random(n) < skew, "control", "treatment")
    slates = rng.integers(1, 8, n)
    activity = rng.gamma(2.0, 1.0, n)  # each user's taste for playing, before and during
    rate = np.where(arm == "control", rate_c, rate_t) * activity / 2.0
    plays = rng.binomial(slates, np.clip(rate, 0, 1))
    pre = rng.poisson(activity * 3)
    return pd.DataFrame(
        {
            "user_id": np.arange(n),
            "arm": arm,
            "slates": slates,
            "plays": plays,
            "clicks": plays,
            "pre_activity": pre,
        }
    )


def test_the_delta_method_interval_covers_the_true_difference_about_95_percent() -> None:
    covered = sum(
        abtest.analyse(_world(2000, 0.10, 0.12, seed), "control", "treatment").difference.covers(
            0.02
        )
        for seed in range(200)
    )
    assert 0.90 <= covered / 200 <= 0.99


def test_cuped_keeps_the_estimate_unbiased_and_saves_variance() -> None:
    results = [
        abtest.analyse(_world(3000, 0.10, 0.12, seed), "control", "treatment") for seed in range(40)
    ]
    assert all(r.variance_saved is not None and r.variance_saved > 0.05 for r in results)
    assert np.mean([r.cuped.estimate for r in results]) == pytest.approx(0.02, abs=0.003)
    assert all(r.cuped.se < r.difference.se for r in results)


def test_sample_ratio_mismatch_fires_on_a_skewed_split_only() -> None:
    assert not abtest.analyse(_world(20000, 0.1, 0.1, 1), "control", "treatment").srm.mismatch
    skewed = abtest.analyse(_world(20000, 0.1, 0.1, 1, skew=0.53), "control", "treatment")
    assert skewed.srm.mismatch


def _exact_logs(mu: np.ndarray, pi: np.ndarray, reward: np.ndarray) -> ope.LoggedRows:
    """One position, items logged in proportion to mu, rewards at their expectation: the
    estimators' expectation computed exactly on a tiny world."""
    scale = 1000
    counts = np.rint(mu * scale).astype(int)
    items = np.repeat(np.arange(len(mu)), counts)
    return ope.LoggedRows(
        slate=np.arange(len(items)),
        position=np.ones(len(items), dtype=int),
        reward=reward[items],
        logging_propensity=mu[items],
        target_propensity=pi[items],
    )


def test_off_policy_estimators_recover_the_targets_value_exactly() -> None:
    mu = np.array([0.5, 0.3, 0.2])  # the logging policy
    pi = np.array([0.0, 0.0, 1.0])  # the target always shows item 2
    reward = np.array([0.3, 0.1, 0.6])  # P(play) of each item
    rows = _exact_logs(mu, pi, reward)
    assert ope.ips(rows) == pytest.approx(0.6)
    assert ope.snips(rows) == pytest.approx(0.6)
    wrong_model = np.full(len(rows.reward), 0.2)  # a bad reward model: DR stays unbiased
    target_sum = np.full(rows.n_slates, 0.2)
    assert ope.doubly_robust(rows, wrong_model, target_sum) == pytest.approx(0.6)
    perfect = reward[np.repeat(np.arange(3), np.rint(mu * 1000).astype(int))]
    assert ope.doubly_robust(rows, perfect, np.full(rows.n_slates, 0.6)) == pytest.approx(0.6)


def test_a_zero_logging_propensity_is_refused() -> None:
    with pytest.raises(Exception, match="exploring logging policy"):
        ope.LoggedRows(np.arange(2), np.ones(2), np.zeros(2), np.array([0.5, 0.0]), np.ones(2))


def test_team_draft_is_balanced_and_keeps_each_rankers_order() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        a = list(rng.permutation(30)[:15])
        b = list(rng.permutation(30)[:15])
        items, teams = interleaving.team_draft(a, b, 10, rng)
        assert len(items) == len(set(items)) == 10
        assert abs(teams.count("a") - teams.count("b")) <= 1
        for team, ranking in (("a", a), ("b", b)):
            mine = [i for i, t in zip(items, teams, strict=True) if t == team]
            assert mine == [i for i in ranking if i in mine]  # in the ranker's own order


def test_preference_sign_and_significance() -> None:
    rng = np.random.default_rng(3)
    users = np.repeat(np.arange(500), 4)
    credit_a = rng.binomial(1, 0.30, len(users))
    credit_b = rng.binomial(1, 0.40, len(users))
    rows = pd.DataFrame({"user_id": users, "credit_a": credit_a, "credit_b": credit_b})
    result = interleaving.preference(rows)
    assert result.estimate > 0
    assert result.p_value < 0.01
    even = rows.assign(credit_b=rng.binomial(1, 0.30, len(users)))
    assert interleaving.preference(even).low < 0 < interleaving.preference(even).high

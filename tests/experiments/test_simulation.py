"""A simulated experiment against its true effect, on a world whose truth is known."""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import pytest

from reelrank.data.synthetic import SyntheticConfig, generate_world
from reelrank.exceptions import ValidationError
from reelrank.experiments.assignment import Assigner
from reelrank.experiments.interleaving import team_draft
from reelrank.experiments.simulation import (
    CONTROL,
    TREATMENT,
    experiment_config,
    per_user,
    simulate_experiment,
    true_rates,
)
from reelrank.loop.simulator import Row, Simulator, UserModel, expected_plays

K = 10


@pytest.fixture(scope="module")
def truth():
    return generate_world(SyntheticConfig(n_users=400, n_items=120, n_events=6000, seed=5)).truth


class TwoArms:
    """Control shows each user's K best items by the truth in order; treatment the same
    items reversed (the best at the bottom) under ``ab``, the same order under ``aa``."""

    def __init__(self, truth, design: str, seed: int) -> None:
        self.truth, self.design = truth, design
        self.assigner = Assigner(experiment_config(design, seed))  # type: ignore[arg-type]
        self._slates: dict[str, dict[str, tuple[int, ...]]] = {}
        self._teams: dict[str, tuple[str, ...]] = {}

    def _best(self, user: int, request_id: str) -> tuple[int, ...]:
        rng = np.random.default_rng(zlib.crc32(request_id.encode()))
        items = rng.choice(np.arange(1, self.truth.n_items + 1), size=3 * K, replace=False)
        relevance = self.truth.relevance(np.full(len(items), user), items)
        return tuple(int(i) for i in items[np.argsort(-relevance)][:K])

    def recommend(self, user_id: int, k: int, request_id: str) -> Row:
        best = self._best(user_id, request_id)
        other = best if self.design == "aa" else best[::-1]
        self._slates[request_id] = {CONTROL: best, TREATMENT: other}
        if self.design == "interleaving":
            rng = np.random.default_rng(zlib.crc32(request_id.encode()))
            # the reversed row drafts from the same items: give it other items to pick
            worse = tuple(i for i in range(1, self.truth.n_items + 1) if i not in best)[:k]
            self._slates[request_id][TREATMENT] = worse
            items, teams = team_draft(best, worse, k, rng)
            self._teams[request_id] = tuple(teams)
            return Row(request_id, user_id, tuple(items), "1", None)
        arm = self.assigner.arm(user_id).name
        return Row(request_id, user_id, self._slates[request_id][arm], "1", arm)

    def slates(self, request_id: str):
        return self._slates[request_id]

    def teams(self, request_id: str):
        return self._teams.get(request_id)

    def send(self, events) -> None:
        pass

    def end_day(self) -> None:
        pass


def _run(truth, design: str, seed: int, days: int = 4, users: int = 150):
    client = TwoArms(truth, design, seed)
    simulator = Simulator(truth, client, k=K, seed=seed)
    return simulate_experiment(simulator, client, design, days, users)  # type: ignore[arg-type]


def test_the_true_effect_of_an_aa_test_is_exactly_zero(truth):
    run = _run(truth, "aa", seed=1)
    assert run.true_effect == 0.0
    assert run.true_control > 0


def test_the_true_rate_is_the_expected_plays_of_each_arms_slates(truth):
    client = TwoArms(truth, "ab", 2)
    simulator = Simulator(truth, client, k=K, seed=2)
    visits = [v for day in simulator.run(1, 40) for v in day]
    rates = true_rates(simulator, visits, client)
    model, positions = UserModel(), np.arange(1, K + 1)
    for arm in (CONTROL, TREATMENT):
        total = 0.0
        for visit in visits:  # one day: no user visits twice, so every item is eligible
            items = np.asarray(client.slates(visit.request_id)[arm])
            preference = truth.relevance(np.full(K, visit.user_id), items)
            total += expected_plays(model, preference, positions, np.ones(K, bool)).sum()
        assert rates[arm] == pytest.approx(total / len(visits))
    # the best items at the bottom: fewer of them examined, a real loss
    assert rates[TREATMENT] < rates[CONTROL]


def test_intervals_cover_the_true_effect_and_aa_rarely_fires(truth):
    ab = [_run(truth, "ab", seed) for seed in range(12)]
    aa = [_run(truth, "aa", seed) for seed in range(12)]
    assert all(run.true_effect < 0 for run in ab)
    assert sum(run.covered for run in ab) >= 9  # 95 % intervals: 11.4 expected of 12
    assert sum(run.significant for run in aa) <= 3  # 5 %: 0.6 expected of 12
    assert sum(run.significant for run in ab) >= 6  # the loss is large enough to see
    record = ab[0].record()
    assert record["ci_low"] <= record["estimate"] <= record["ci_high"]
    assert set(record) >= {"true_effect", "covered", "p_value", "analysis"}


def test_a_user_served_by_two_arms_is_refused():
    from reelrank.loop.simulator import Visit

    def visit(arm: str) -> Visit:
        flags = np.zeros(2, bool)
        return Visit(
            "r", 7, pd.Timestamp(0), (1, 2), np.zeros(2), ~flags, flags, flags, flags, "1", arm
        )

    with pytest.raises(ValidationError, match="two arms"):
        per_user([visit(CONTROL), visit(TREATMENT)])
    with pytest.raises(ValidationError, match="no visit"):
        per_user([])


def test_interleaving_prefers_the_truly_better_arm(truth):
    runs = [_run(truth, "interleaving", seed, days=2, users=100) for seed in range(6)]
    for run in runs:
        assert run.true_effect < 0  # the treatment's items are not the user's best
        assert run.covered is None  # a preference is on another scale than the effect
        estimate, low, high, _ = run.estimate
        assert low <= estimate <= high
        assert run.sd_per_user > 0
    agree = [run.estimate[0] < 0 and run.significant for run in runs]
    assert sum(agree) >= 5
    assert runs[0].record()["covered"] is None

"""Off-policy estimates of a candidate from an exploring policy's logs, against the truth,
on a world whose truth is known (full support: IPS is unbiased there)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from reelrank.data.synthetic import SyntheticConfig, generate_world
from reelrank.experiments.offpolicy import LOGGING, TARGET, LoggedSlate, evaluate
from reelrank.loop.simulator import Row, Simulator

K, POOL = 5, 8


@pytest.fixture(scope="module")
def truth():
    return generate_world(SyntheticConfig(n_users=300, n_items=60, n_events=4000, seed=3)).truth


class UniformLogs:
    """Logging: a uniformly random order of each user's 8 pool items (P(item at a
    position) = 1/8 exactly); the candidate: the pool's best 5 by the truth, in order."""

    def __init__(self, truth) -> None:
        self.truth = truth
        self._logged: dict[str, LoggedSlate] = {}

    def recommend(self, user_id: int, k: int, request_id: str) -> Row:
        pool = np.arange(1 + user_id % 7, 1 + user_id % 7 + POOL)
        rng = np.random.default_rng(zlib.crc32(request_id.encode()))
        shown = tuple(int(i) for i in rng.permutation(pool)[:K])
        relevance = self.truth.relevance(np.full(POOL, user_id), pool)
        target = tuple(int(i) for i in pool[np.argsort(-relevance)][:K])
        scores = {int(i): float(r) for i, r in zip(pool, relevance, strict=True)}
        self._logged[request_id] = LoggedSlate(
            shown, np.full(K, 1.0 / POOL), scores, frozenset(int(i) for i in pool), target
        )
        return Row(request_id, user_id, shown, "1", LOGGING)

    def logged(self, request_id):
        return self._logged[request_id]

    def slates(self, request_id):
        logged = self._logged[request_id]
        return {LOGGING: logged.shown, TARGET: logged.target}

    def teams(self, request_id):
        return None

    def send(self, events):
        pass

    def end_day(self):
        pass


def test_the_estimators_find_the_candidates_true_value_under_full_support(truth):
    results = []
    for seed in range(6):
        client = UniformLogs(truth)
        results.append(evaluate(Simulator(truth, client, k=K, seed=seed), client, 3, 150))
    for result in results:
        assert result.support == 1.0
        assert 0 < result.matches < 1
        assert result.true_target > result.true_logging  # the truth's best beat a shuffle
    for name in ("ips", "snips", "doubly_robust"):
        errors = np.array([getattr(r, name) - r.true_target for r in results])
        se = errors.std(ddof=1) / np.sqrt(len(errors))
        assert abs(errors.mean()) < 3 * se + 0.02, (name, errors)
    record = results[0].record()
    assert record["ips_error"] == pytest.approx(results[0].ips - results[0].true_target)

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


def test_a_models_value_on_the_lakes_exploring_logs(lake_settings):
    import pandas as pd

    from reelrank.experiments.offpolicy import exploring_rows, lake_value
    from reelrank.loop.feedback import ingest_feedback, read_feedback_table, read_impressions
    from tests.loop.conftest import NOW, event, slate, write_events, write_slates

    def exploring(request_id, user, items, marginals):
        record = slate(request_id, user, items, policy="epsilon(epsilon=0.5,pool=4)")
        for item, marginal in zip(record["items"], marginals, strict=True):
            item["marginal_propensity"] = marginal
        return record

    write_slates(
        lake_settings,
        exploring("e1", 1, [1, 2], [0.75, 0.5]),  # explored
        exploring("e2", 2, [3, 4], [0.75, 0.25]),
        slate("g1", 3, [5, 6]),  # greedy (every marginal 1): not usable
    )
    write_events(
        lake_settings,
        event("click", "e1", 2, 1, 2), event("play", "e1", 2, 1, 2),
        event("click", "e2", 1, 2, 3), event("play", "e2", 1, 2, 3),
        event("click", "g1", 1, 3, 5), event("play", "g1", 1, 3, 5),
    )  # fmt: skip
    ingest_feedback(lake_settings, now=NOW)
    rows = exploring_rows(
        read_impressions(lake_settings.lake_path), read_feedback_table(lake_settings.lake_path)
    )
    assert sorted(rows["request_id"].unique()) == ["e1", "e2"]

    class Fixed:
        """Ranks user 1: [9, 2] and user 2: [3, 8]: it agrees with e1 at 2 and e2 at 1."""

        def recommend(self, users, k):
            rows = {1: [9, 2], 2: [3, 8]}
            return pd.DataFrame(
                [(u, item) for u in users for item in rows[u][:k]], columns=["user_id", "item_id"]
            )

    value = lake_value(rows, Fixed())
    assert value is not None
    assert value.slates == 2
    assert value.matches == 0.5
    # SNIPS per position: position 1 only e2 matches (reward 1, weight 1/0.75), position 2
    # only e1 (reward 1, weight 1/0.5): each position's weighted mean is 1, total 2 plays.
    assert value.value == pytest.approx(2.0)
    assert lake_value(rows.iloc[:0], Fixed()) is None

"""Simulated users: they arrive by the world's activity, examine by the position-based
model and click and play by their true preference, at the rates the model states."""

from __future__ import annotations

import zlib
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import pytest

from reelrank.data.synthetic import SyntheticConfig, generate_world
from reelrank.loop.metrics import gini, round_metrics
from reelrank.loop.simulator import Row, Simulator, UserModel, expected_plays, visits_frame

K = 10


@pytest.fixture(scope="module")
def truth():
    return generate_world(SyntheticConfig(n_users=400, n_items=120, n_events=6000, seed=5)).truth


class FixedRows:
    """A client that shows each visit K random items (seeded by the request id)."""

    def __init__(self, n_items: int) -> None:
        self.n_items = n_items
        self.sent: list[dict[str, Any]] = []
        self.days = 0

    def recommend(self, user_id: int, k: int, request_id: str) -> Row:
        rng = np.random.default_rng(zlib.crc32(request_id.encode()))
        items = rng.choice(np.arange(1, self.n_items + 1), size=k, replace=False)
        return Row(request_id, user_id, tuple(int(i) for i in items), model_version="1")

    def send(self, events) -> None:
        self.sent.extend(events)

    def end_day(self) -> None:
        self.days += 1


def _run(truth, model: UserModel, days: int = 30, users: int = 300, seed: int = 0):
    client = FixedRows(truth.n_items)
    simulator = Simulator(truth, client, model=model, k=K, seed=seed)
    visits = [v for day in simulator.run(days, users) for v in day]
    return visits_frame(visits, model), client, simulator


def test_clicks_follow_the_position_based_model(truth):
    """With a preference-free click model (P(click | examined) = 1/2), the click rate at
    position p is 1/2 * p ** -1: the examination curve itself."""
    model = UserModel(click_intercept=0.0, click_slope=0.0)
    shown, _, _ = _run(truth, model)
    eligible = shown[shown["eligible"]]
    rates = eligible.groupby("position")["clicked"].mean()
    counts = eligible.groupby("position").size()
    expected = 0.5 / rates.index.to_numpy(dtype=float)
    tolerance = 4 * np.sqrt(expected * (1 - expected) / counts.to_numpy())
    assert np.all(np.abs(rates.to_numpy() - expected) < tolerance), (rates, expected)
    examined = eligible.groupby("position")["examined"].mean().to_numpy()
    np.testing.assert_allclose(examined, 1.0 / rates.index.to_numpy(), atol=0.02)


def test_clicks_and_plays_follow_the_true_preference(truth):
    """With the default model, per position the clicks and plays add up to what the truth
    says they should (examination x sigmoid of the true preference), within sampling
    error; and better-liked items are clicked more."""
    model = UserModel()
    shown, _, _ = _run(truth, model)
    examination = model.examination(shown["position"].to_numpy())
    click = model.click_probability(shown["preference"].to_numpy()) * shown["eligible"]
    shown = shown.assign(expected_click=examination * click)
    by_position = shown.groupby("position")[
        ["clicked", "expected_click", "played", "expected_plays"]
    ].sum()
    for observed, expected in (("clicked", "expected_click"), ("played", "expected_plays")):
        gap = (by_position[observed] - by_position[expected]).abs()
        assert (gap < 4 * np.sqrt(by_position[expected]) + 3).all(), by_position
    examined = shown[shown["examined"] & shown["eligible"]]
    liked = examined["preference"] > examined["preference"].median()
    assert examined[liked]["clicked"].mean() > 1.5 * examined[~liked]["clicked"].mean()
    assert not (shown["played"] & ~shown["clicked"]).any()  # a play is a click first


def test_users_arrive_by_the_worlds_activity(truth):
    simulator = Simulator(truth, FixedRows(truth.n_items), seed=3)
    users, rate = simulator.active_users()
    assert np.all(truth.user_end_day[users - 1] >= truth.span_days)  # the churned stay away
    seen: Counter[int] = Counter()
    for day in range(200):
        arrived, seconds = simulator.arrivals(day, 20)
        assert len(set(arrived.tolist())) == len(arrived) == 20
        assert np.all(np.diff(seconds) >= 0)
        seen.update(arrived.tolist())
    frequent = users[np.argsort(-rate)[:20]]
    rare = users[np.argsort(rate)[:20]]
    assert sum(seen[u] for u in frequent) > 3 * sum(seen[u] for u in rare)
    again = Simulator(truth, FixedRows(truth.n_items), seed=3).arrivals(5, 20)
    assert again[0].tolist() == simulator.arrivals(5, 20)[0].tolist()  # seeded


def test_the_events_a_visit_posts(truth):
    shown, client, simulator = _run(truth, UserModel(), days=2, users=50)
    events = pd.DataFrame(client.sent)
    assert client.days == 2
    impressions = events[events["event"] == "impression"]
    assert len(impressions) == len(shown)
    assert set(impressions["position"]) == set(range(1, K + 1))
    assert (events["event"] == "click").sum() == shown["clicked"].sum()
    assert (events["event"] == "play").sum() == shown["played"].sum()
    stamps = pd.to_datetime(events["timestamp"], utc=True)
    assert stamps.min() >= simulator.day_start(0)
    assert stamps.max() < simulator.day_start(2) + pd.Timedelta(minutes=5)
    assert simulator.day_start(0) == truth.start + pd.Timedelta(days=truth.span_days)
    assert events["request_id"].str.startswith("sim-0-d").all()


def test_a_played_item_is_not_played_again(truth):
    shown, _, simulator = _run(truth, UserModel(click_intercept=5.0, play_intercept=5.0), days=3)
    plays = shown[shown["played"]]
    assert not plays.duplicated(["user_id", "item_id"]).any()
    assert sum(len(items) for items in simulator.played.values()) == len(plays)


def test_requests_are_bounded_in_count_and_rate(truth):
    clock = {"now": 0.0}
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock["now"] += seconds

    client = FixedRows(truth.n_items)
    simulator = Simulator(
        truth, client, seed=1, max_requests=25, max_rate=10.0, sleep=sleep,
        monotonic=lambda: clock["now"],
    )  # fmt: skip
    visits = simulator.run(days=3, n_users=20)
    assert [len(day) for day in visits] == [20, 5, 0]
    assert simulator.requests == 25
    assert clock["now"] == pytest.approx(2.4)  # 25 requests at 10 per second


def test_the_loop_metrics():
    assert gini(np.array([5, 5, 5, 5])) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 8])) == pytest.approx(0.75)  # (n - 1) / n for one item
    assert gini(np.zeros(3)) == 0.0
    shown = pd.DataFrame(
        {
            "request_id": ["a", "a", "b", "b"],
            "item_id": [1, 2, 1, 3],
            "expected_plays": [0.5, 0.1, 0.4, 0.0],
            "played": [True, False, False, False],
            "clicked": [True, True, False, False],
        }
    )
    metrics = round_metrics(shown, np.array([0.5, 0.2, 0.2, 0.1]))
    assert metrics["visits"] == 2
    assert metrics["true_play_rate"] == pytest.approx(0.25)
    assert metrics["observed_play_rate"] == pytest.approx(0.25)
    assert metrics["coverage"] == pytest.approx(0.75)
    assert metrics["top_decile_share"] == pytest.approx(0.5)  # item 1 is the most popular
    model = UserModel()
    value = expected_plays(model, np.array([0.0]), np.array([2]), np.array([True]))[0]
    assert value == pytest.approx(0.5 * (1 / (1 + np.exp(1.5))) * (1 / (1 + np.exp(-0.5))))


class BestRows(FixedRows):
    """A client that shows each visit the user's truly best unplayed items (an oracle)."""

    def __init__(self, simulator_truth, played: dict[int, set[int]]) -> None:
        super().__init__(simulator_truth.n_items)
        self.truth, self.played = simulator_truth, played

    def recommend(self, user_id: int, k: int, request_id: str) -> Row:
        items = np.arange(1, self.n_items + 1)
        items = items[~np.isin(items, list(self.played.get(user_id, ())))]
        preference = self.truth.relevance(np.full(len(items), user_id), items)
        best = items[np.argsort(-preference, kind="stable")[:k]]
        return Row(request_id, user_id, tuple(int(i) for i in best), model_version="1")


def test_the_ideal_row_bounds_every_row_and_an_oracle_reaches_it(truth):
    """A random row takes a small share of what the ideal rows offer; the oracle's rows
    (the best unplayed items, best first) are the ideal rows themselves; the items the user
    had before the simulation are left out of the ideal, as the service never shows them."""
    from reelrank.loop.simulator import user_histories

    model = UserModel()
    random_rows = Simulator(truth, FixedRows(truth.n_items), model=model, k=K, ideal=True)
    shown = visits_frame([v for d in random_rows.run(3, 100) for v in d], model)
    assert (shown["ideal_expected_plays"] + 1e-12 >= 0).all()
    per_visit = shown.groupby("request_id")[["expected_plays", "ideal_expected_plays"]].sum()
    assert (per_visit["expected_plays"] <= per_visit["ideal_expected_plays"] + 1e-12).all()
    metrics = round_metrics(shown, truth.item_popularity)
    assert 0 < metrics["share_of_ideal"] < 0.8
    assert metrics["ideal_play_rate"] == pytest.approx(shown["ideal_expected_plays"].mean())

    played: dict[int, set[int]] = {}
    oracle = Simulator(truth, BestRows(truth, played), model=model, k=K, ideal=True)
    oracle.played = played  # the client sees what the users played, as the service's logs do
    shown = visits_frame([v for d in oracle.run(3, 100) for v in d], model)
    np.testing.assert_allclose(shown["expected_plays"], shown["ideal_expected_plays"])
    assert round_metrics(shown, truth.item_popularity)["share_of_ideal"] == pytest.approx(1.0)

    user = int(shown["user_id"].iloc[0])
    favourite = int(BestRows(truth, {}).recommend(user, 1, "x").item_ids[0])
    fresh = Simulator(truth, FixedRows(truth.n_items), model=model, k=K)
    with_history = Simulator(
        truth, FixedRows(truth.n_items), model=model, k=K,
        history=user_histories(pd.DataFrame({"user_id": [user], "item_id": [favourite]})),
    )  # fmt: skip
    assert with_history.ideal_row(user, K, 0)[0] < fresh.ideal_row(user, K, 0)[0]
    pairs = pd.DataFrame({"user_id": [3, 1, 3, 3], "item_id": [5, 6, 5, 7]})
    assert user_histories(pairs) == {1: frozenset({6}), 3: frozenset({5, 7})}
    assert user_histories(pairs.iloc[:0]) == {}
    no_ideal = visits_frame([v for d in fresh.run(1, 10) for v in d], model)
    assert no_ideal["ideal_expected_plays"].isna().all()
    assert "share_of_ideal" not in round_metrics(no_ideal, truth.item_popularity)

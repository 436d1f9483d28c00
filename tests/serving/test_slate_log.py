"""Every served slate is logged (request id, items with positions, scores and propensities,
model version, experiment and arm), off the request path and never blocking it; policies
and experiments as configured; the in-process client feeds the feedback source."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from reelrank.config import Settings
from reelrank.experiments.assignment import assign
from reelrank.experiments.config import Experiment, PlackettLucePolicy
from reelrank.loop.logs import IMPRESSIONS_PREFIX, log_files
from reelrank.loop.records import parse_slate
from serving.app import create_app
from tests.serving.conftest import FakeUserReader, make_state

API_KEY = "a-long-enough-test-key"
EXPERIMENT = Experiment.model_validate(
    {
        "name": "ranker-v2",
        "arms": [
            {"name": "control", "alias": "champion"},
            {"name": "treatment", "version": "2", "policy": {"kind": "plackett-luce", "pool": 12}},
        ],
    }
)


def _slates(settings: Settings) -> list:
    lines = []
    for path in log_files(settings.impressions_path, IMPRESSIONS_PREFIX):
        lines += [parse_slate(line) for line in path.read_bytes().splitlines()]
    return lines


def _app(fitted_model, settings: Settings):
    reader = FakeUserReader(fitted_model.feature_provider_.user_frame)
    versions = iter(str(v) for v in range(1, 50))

    def load(s: Settings):
        return make_state(fitted_model, s, version=next(versions), reader=reader)

    def load_arm(s: Settings, ref: str):
        version = ref.split(":")[1] if ref.startswith("version:") else f"champion-{next(versions)}"
        return make_state(fitted_model, s, version=version, reader=reader)

    return create_app(settings, loader=load, model_loader=load_arm)


def _flush(client: TestClient) -> None:
    assert client.app.state.impressions.flush(timeout=10)


@pytest.fixture
def users(fitted_model) -> list[int]:
    return [int(u) for u in fitted_model.interactions_.user_ids[:8]]


def test_every_served_slate_is_logged_under_the_request_id(fitted_model, tmp_path, users):
    settings = Settings(data_dir=tmp_path / "data")
    with TestClient(_app(fitted_model, settings)) as client:
        one = client.get(f"/recommendations/{users[0]}", headers={"X-Request-ID": "abc-1"})
        batch = client.post("/recommendations", json={"user_ids": users[1:3], "k": 4})
        _flush(client)
    assert one.json()["request_id"] == one.headers["x-request-id"] == "abc-1"
    batch_id = batch.headers["x-request-id"]
    assert [r["request_id"] for r in batch.json()["results"]] == [f"{batch_id}:0", f"{batch_id}:1"]
    slates = {s.request_id: s for s in _slates(settings)}
    assert set(slates) == {"abc-1", f"{batch_id}:0", f"{batch_id}:1"}
    logged = slates["abc-1"]
    body = one.json()
    assert logged.user_id == users[0]
    assert [i.item_id for i in logged.items] == [i["item_id"] for i in body["items"]]
    assert [i.position for i in logged.items] == list(range(1, 11))
    assert [i.score for i in logged.items] == [i["score"] for i in body["items"]]
    assert {i.propensity for i in logged.items} == {1.0}
    assert (logged.model_version, logged.policy, logged.slate_propensity) == ("1", "greedy", 1.0)
    assert (logged.experiment, logged.arm, logged.pool) == (None, None, None)
    assert slates[f"{batch_id}:1"].k == 4


def test_a_full_queue_or_disk_drops_and_counts_but_never_blocks(fitted_model, tmp_path, users):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the log directory should be")
    settings = Settings(
        data_dir=tmp_path / "data", impressions_dir=blocked, impression_queue_size=1
    )
    with TestClient(_app(fitted_model, settings)) as client:
        statuses = [client.get(f"/recommendations/{u}").status_code for u in users * 5]
        _flush(client)
        metrics = client.get("/metrics").text
    assert set(statuses) == {200}
    dropped = {
        reason: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("reelrank_impressions_dropped_total{")
        for reason in [line.split('reason="')[1].split('"')[0]]
    }
    assert dropped.get("write_error", 0) >= 1
    assert sum(dropped.values()) == len(statuses)  # every slate written or counted as dropped
    assert "reelrank_impressions_written_total 0.0" in metrics


def test_a_stochastic_policy_is_reproducible_and_logs_exact_propensities(
    fitted_model, tmp_path, users
):
    policy = PlackettLucePolicy(temperature=0.3, pool=12)
    settings = Settings(data_dir=tmp_path / "data", policy=policy)
    with TestClient(_app(fitted_model, settings)) as client:
        first = client.get(f"/recommendations/{users[0]}", headers={"X-Request-ID": "seed-a"})
        again = client.get(f"/recommendations/{users[0]}", headers={"X-Request-ID": "seed-a"})
        orders = {
            tuple(i["item_id"] for i in client.get(f"/recommendations/{users[0]}").json()["items"])
            for _ in range(10)
        }
        _flush(client)
    assert first.json()["items"] == again.json()["items"]  # the seed is the request id
    assert len(orders) > 1
    logged = next(s for s in _slates(settings) if s.request_id == "seed-a")
    assert logged.policy == policy.label
    assert logged.pool is not None
    assert len(logged.pool) == 12
    propensities = np.array([i.propensity for i in logged.items])
    assert np.prod(propensities) == pytest.approx(logged.slate_propensity)
    assert all(0 < i.marginal_propensity <= 1 for i in logged.items)
    assert [i["rank"] for i in first.json()["items"]] == list(range(1, 11))


def test_an_experiment_serves_each_user_their_arm_stably(fitted_model, tmp_path, users):
    settings = Settings(data_dir=tmp_path / "data", experiment=EXPERIMENT, api_key=API_KEY)
    cold = 987_654_321
    with TestClient(_app(fitted_model, settings)) as client:
        before = {u: client.get(f"/recommendations/{u}").json() for u in [*users, cold]}
        model = client.get("/model").json()
        assert client.post("/admin/reload", headers={"X-API-Key": API_KEY}).status_code == 200
        after = {u: client.get(f"/recommendations/{u}").json()["arm"] for u in [*users, cold]}
        _flush(client)
    for user, body in before.items():
        assert body["experiment"] == "ranker-v2"
        assert body["arm"] == assign(EXPERIMENT, user) == after[user]
        assert body["model_version"] == ("2" if body["arm"] == "treatment" else "champion-1")
    assert {body["arm"] for body in before.values()} == {"control", "treatment"}
    assert model["experiment"]["name"] == "ranker-v2"
    assert [
        (a["name"], a["model"], a["version"], a["share"]) for a in model["experiment"]["arms"]
    ] == [
        ("control", "alias:champion", "champion-1", 0.5),
        ("treatment", "version:2", "2", 0.5),
    ]
    assert model["experiment"]["arms"][1]["policy"].startswith("plackett-luce")
    slates = _slates(settings)
    assert {(s.experiment, s.design) for s in slates} == {("ranker-v2", "ab")}
    treated = [s for s in slates if s.arm == "treatment"]
    assert treated
    assert all(s.policy.startswith("plackett-luce") for s in treated)
    assert all(s.items[0].team is None for s in slates)


def test_feedback_events_name_the_slate_and_position(fitted_model, tmp_path, users):
    settings = Settings(data_dir=tmp_path / "data")
    with TestClient(_app(fitted_model, settings)) as client:
        body = client.get(f"/recommendations/{users[0]}").json()
        item = body["items"][2]
        play = {"event": "play", "user_id": users[0], "item_id": item["item_id"]}
        play |= {"request_id": body["request_id"], "position": 3}
        assert client.post("/feedback", json={"events": [play]}).status_code == 201
        bad = {**play, "request_id": "has spaces"}
        assert client.post("/feedback", json={"events": [bad]}).status_code == 422
    (path,) = settings.feedback_path.glob("feedback-*.jsonl")
    logged = json.loads(path.read_text().splitlines()[0])
    assert (logged["event"], logged["request_id"], logged["position"]) == (
        "play", body["request_id"], 3,
    )  # fmt: skip


def test_the_in_process_simulator_feeds_the_feedback_source(fitted_model, tmp_path: Path):
    """In process: the service answers, both logs are written, and ingestion accepts every
    line (the world of the fitted model, its lake built from the same config)."""
    from reelrank.data.ingest import run_ingest
    from reelrank.data.synthetic import SyntheticConfig, generate_world
    from reelrank.loop.feedback import ingest_feedback, read_negatives
    from reelrank.loop.simulator import Simulator
    from serving.feedback import FeedbackLog
    from serving.impressions import ImpressionLog
    from serving.inprocess import InProcessRowClient
    from serving.service import RecommendationService

    config = SyntheticConfig(n_users=150, n_items=100, n_events=5000, seed=3)  # the fitted world
    settings = Settings(data_dir=tmp_path / "data")
    run_ingest("synthetic", settings, synthetic=config)
    reader = FakeUserReader(fitted_model.feature_provider_.user_frame)
    service = RecommendationService(
        settings, loader=lambda s: make_state(fitted_model, s, reader=reader)
    )
    service.load()
    impressions = ImpressionLog(settings.impressions_path)
    client = InProcessRowClient(service, impressions, FeedbackLog(settings.feedback_path))
    simulator = Simulator(generate_world(config).truth, client, seed=4)
    visits = simulator.run(days=2, n_users=40)
    impressions.close()
    summary = ingest_feedback(settings, grace_seconds=0.0)
    assert summary.impressions.accepted == sum(len(day) for day in visits) == 80
    assert summary.impressions.quarantined == summary.feedback.quarantined == 0
    assert summary.feedback.accepted > 800  # ten impressions per visit, then clicks and plays
    plays = sum(int(v.played.sum()) for day in visits for v in day)
    assert summary.totals["play"] == plays
    negatives = read_negatives(settings.lake_path)
    assert len(negatives) == 800 - summary.totals["click"]  # a play is a click first
    day_zero = simulator.day_start(0)
    assert negatives["timestamp"].min() >= day_zero  # the world's clock, not the server's
    assert summary.added["events_from_feedback"] == summary.totals["click"]


def test_the_fast_record_of_a_greedy_slate_is_the_records_json(fitted_model, tmp_path, users):
    from serving.impressions import served_slate, slate_json
    from serving.service import RecommendationService

    settings = Settings(data_dir=tmp_path / "data")
    reader = FakeUserReader(fitted_model.feature_provider_.user_frame)
    service = RecommendationService(
        settings, loader=lambda s: make_state(fitted_model, s, reader=reader)
    )
    service.load()
    for index, user in enumerate([*users, 987654321]):
        result = service.recommend(user, 10, genre="Drama" if index == 1 else None,
                                   request_id=f"q{index}")  # fmt: skip
        assert slate_json(result, 1.7e9 + index) == served_slate(result, 1.7e9 + index).to_json()
        assert parse_slate(slate_json(result, 1.7e9)).request_id == f"q{index}"


INTERLEAVED = Experiment.model_validate(
    {
        "name": "tail-vs-champion",
        "design": "interleaving",
        "arms": [
            {"name": "control", "alias": "champion"},
            {"name": "tail", "alias": "champion", "rerank": {"long_tail": 0.9}},
        ],
    }
)


def test_interleaving_team_drafts_both_arms_and_logs_each_items_team(fitted_model, tmp_path, users):
    settings = Settings(data_dir=tmp_path / "data", experiment=INTERLEAVED)
    with TestClient(_app(fitted_model, settings)) as client:
        bodies = {u: client.get(f"/recommendations/{u}", params={"k": 6}).json() for u in users}
        service = client.app.state.service
        deployment = service.current_deployment()
        rows = {
            arm.name: {u: [i.item_id for i in service.recommend_as(u, arm, 6).items] for u in users}
            for arm in deployment.arms
        }
        again = service.recommend(users[0], 6, request_id=bodies[users[0]]["request_id"])
        _flush(client)
    slates = {s.request_id: s for s in _slates(settings)}
    mixed = 0
    for user, body in bodies.items():
        assert body["experiment"] == "tail-vs-champion"
        assert body["arm"] is None
        logged = slates[body["request_id"]]
        assert logged.design == "interleaving"
        teams = [item.team for item in logged.items]
        assert abs(teams.count("a") - teams.count("b")) <= 1  # the draft alternates
        ids = [item["item_id"] for item in body["items"]]
        assert len(set(ids)) == len(ids) == 6
        for item, team in zip(ids, teams, strict=True):
            assert item in rows["control" if team == "a" else "tail"][user]
        mixed += rows["control"][user] != rows["tail"][user]
    assert mixed, "the long-tail arm ranked like the champion for every user"
    # the draft is seeded from the request id: the same request, the same row and teams
    assert [i.item_id for i in again.items] == [i["item_id"] for i in bodies[users[0]]["items"]]
    assert list(again.teams or ()) == [i.team for i in slates[again.request_id].items]


@pytest.mark.parametrize(
    "arms",
    [
        [{"name": "a", "alias": "champion"}],
        [
            {"name": "a", "alias": "champion"},
            {"name": "b", "version": "2", "policy": {"kind": "epsilon"}},
        ],
    ],
)
def test_an_interleaving_experiment_needs_two_greedy_arms(arms):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="interleav"):
        Experiment.model_validate({"name": "x", "design": "interleaving", "arms": arms})

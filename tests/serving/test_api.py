"""API behaviour with TestClient: a small fitted model, no MLflow, no Feast."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from reelrank.config import Settings
from reelrank.exceptions import ModelNotFoundError
from reelrank.models.reranking import DEFAULT_RERANK
from reelrank.schema import GENRES, ITEM_ID, TITLE
from serving.api.deps import Serving, get_serving
from serving.app import create_app
from serving.deployment import Deployment
from serving.feedback import read_feedback
from serving.service import RecommendationService, ServiceUnavailableError
from tests.serving.conftest import FakeUserReader, make_state, served_row

API_KEY = "a-long-enough-test-key"


@pytest.fixture
def serving_settings(tmp_path: Path) -> Settings:
    # No lake: the service takes titles and genres from the model's catalogue.
    return Settings(data_dir=tmp_path / "data", api_key=API_KEY, max_batch_users=5)


@pytest.fixture
def reader(fitted_model) -> FakeUserReader:
    return FakeUserReader(fitted_model.feature_provider_.user_frame)


@pytest.fixture
def versions(fitted_model, serving_settings, reader) -> list[str]:
    """Versions handed out by the loader, in order (a reload takes the next one)."""
    return ["1", "2", "3", "4", "5", "6", "7", "8"]


@pytest.fixture
def client(fitted_model, serving_settings, reader, versions):
    def loader(settings: Settings):
        return make_state(fitted_model, settings, version=versions.pop(0), reader=reader)

    app = create_app(serving_settings, loader=loader)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def known_users(model, n: int = 5) -> list[int]:
    return [int(u) for u in model.interactions_.user_ids[:n]]


def test_recommendations_match_the_model(client, fitted_model):
    for user in known_users(fitted_model):
        response = client.get(f"/recommendations/{user}", params={"k": 7})
        assert response.status_code == 200
        body = response.json()
        expected = served_row(fitted_model, user, k=7)
        assert [i["item_id"] for i in body["items"]] == expected["item_id"].tolist()
        np.testing.assert_allclose([i["score"] for i in body["items"]], expected["score"])
        assert [i["rank"] for i in body["items"]] == list(range(1, 8))
        assert body["fallback"] is None
        assert body["model_version"] == "1"
        assert all(i["title"] for i in body["items"])


def test_seen_items_are_excluded_unless_asked(client, fitted_model):
    user = known_users(fitted_model)[0]
    seen = set(fitted_model.seen_items(user).tolist())
    unseen = client.get(f"/recommendations/{user}", params={"k": 50}).json()["items"]
    assert not seen & {i["item_id"] for i in unseen}
    everything = client.get(
        f"/recommendations/{user}", params={"k": 100, "exclude_seen": "false"}
    ).json()["items"]
    assert seen & {i["item_id"] for i in everything}


def test_genre_filter_keeps_only_that_genre(client, fitted_model, small_world):
    items = small_world[2].set_index(ITEM_ID)[GENRES]
    genre = str(items.explode().value_counts().index[0])
    user = known_users(fitted_model)[1]
    body = client.get(f"/recommendations/{user}", params={"k": 5, "genre": genre}).json()
    assert 0 < len(body["items"]) <= 5
    assert all(genre in items[i["item_id"]] for i in body["items"])
    nothing = client.get(f"/recommendations/{user}", params={"genre": "no-such-genre"})
    assert nothing.status_code == 200
    assert nothing.json()["items"] == []


def test_unknown_user_gets_cold_start(client, fitted_model):
    body = client.get("/recommendations/987654321", params={"k": 5}).json()
    assert body["fallback"] == "cold_start"
    expected = served_row(fitted_model, 987654321, k=5)
    assert [i["item_id"] for i in body["items"]] == expected["item_id"].tolist()


def test_online_store_failure_degrades_with_200(client, fitted_model, reader):
    user = known_users(fitted_model)[2]
    reader.fail = "online store unreachable"
    response = client.get(f"/recommendations/{user}")
    assert response.status_code == 200
    assert response.json()["fallback"] == "degraded"
    # Degraded answers use the model's snapshot: here the same features, so same items.
    expected = served_row(fitted_model, user)
    assert [i["item_id"] for i in response.json()["items"]] == expected["item_id"].tolist()
    metrics = client.get("/metrics").text
    assert 'reelrank_fallbacks_total{kind="degraded"} 1.0' in metrics


def test_server_timing_and_metrics(client, fitted_model):
    user = known_users(fitted_model)[0]
    response = client.get(f"/recommendations/{user}")
    stages = [part.split(";")[0] for part in response.headers["server-timing"].split(", ")]
    assert stages == ["retrieval", "features", "ranking", "reranking", "serialisation"]
    client.get("/recommendations/not-a-number")
    text = client.get("/metrics").text
    assert (
        'reelrank_http_requests_total{method="GET",route="/recommendations/{user_id}",'
        'status="200"} 1.0' in text
    )
    assert 'route="/recommendations/{user_id}",status="422"' in text
    assert 'reelrank_stage_duration_seconds_count{stage="ranking"} ' in text
    assert 'reelrank_model_info{name="reelrank",run_id="run-1",version="1"} 1.0' in text


def test_metrics_ignore_the_multiprocess_directory_feast_sets(client, fitted_model, tmp_path):
    """Importing Feast sets PROMETHEUS_MULTIPROC_DIR to a directory of its own; a single
    worker must still render its own registry (it used to render that empty directory)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # empty, like Feast's
        client.get(f"/recommendations/{known_users(fitted_model)[0]}")
        text = client.get("/metrics").text
    assert 'reelrank_http_requests_total{method="GET",route="/recommendations/{user_id}"' in text


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("get", "/recommendations/abc", {}),
        ("get", "/recommendations/1.5", {}),
        ("get", "/recommendations/-3", {}),
        ("get", f"/recommendations/{2**70}", {}),
        ("get", "/recommendations/1?k=0", {}),
        ("get", "/recommendations/1?k=101", {}),
        ("get", "/recommendations/1?k=ten", {}),
        ("get", "/recommendations/1?exclude_seen=maybe", {}),
        (
            "post",
            "/recommendations",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
        ),
        ("post", "/recommendations", {"json": {"user_ids": []}}),
        ("post", "/recommendations", {"json": {"user_ids": ["1"]}}),
        ("post", "/recommendations", {"json": {"user_ids": [1, 2, 3, 4, 5, 6]}}),
        ("post", "/recommendations", {"json": {"user_ids": [1], "k": 1000}}),
        ("post", "/recommendations", {"json": [1, 2]}),
        ("get", "/recommendations/1", {"params": {"diversity": 1.5}}),
        ("get", "/recommendations/1", {"params": {"long_tail": "nan"}}),
        ("get", "/recommendations/1", {"params": {"freshness": "-0.1"}}),
        ("get", "/recommendations/1", {"params": {"exclude": ["x"]}}),
        ("get", "/recommendations/1", {"params": {"exclude": list(range(101))}}),
        ("post", "/recommendations", {"json": {"user_ids": [1], "diversity": "0.5"}}),
        ("post", "/recommendations", {"json": {"user_ids": [1], "exclude": [-1]}}),
        ("post", "/feedback", {"json": {"events": []}}),
        (
            "post",
            "/feedback",
            {"json": {"events": [{"user_id": 1, "item_id": 2, "event": "rating"}]}},
        ),
        ("post", "/feedback", {"json": {"events": [{"user_id": 1, "item_id": 2, "event": "buy"}]}}),
        (
            "post",
            "/feedback",
            {"json": {"events": [{"user_id": 1, "item_id": 2, "event": "click"}] * 1001}},
        ),
        (
            "post",
            "/feedback",
            {"content": b"\xff\xfe", "headers": {"content-type": "application/json"}},
        ),
    ],
)
def test_invalid_input_gets_4xx_with_a_message(client, method, path, kwargs):
    response = getattr(client, method)(path, **kwargs)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["detail"]


def _ids(response) -> list[int]:
    assert response.status_code == 200, response.text
    return [item["item_id"] for item in response.json()["items"]]


def test_the_row_is_reranked_by_default_and_each_strength_overridable(client, fitted_model):
    off = {"diversity": 0, "freshness": 0, "long_tail": 0}
    moved = 0
    for user in known_users(fitted_model):
        plain = fitted_model.recommend([user], k=10)["item_id"].tolist()  # the ranker's order
        assert _ids(client.get(f"/recommendations/{user}", params=off)) == plain
        default = _ids(client.get(f"/recommendations/{user}"))
        expected = served_row(fitted_model, user)
        assert default == expected["item_id"].tolist()
        diverse = _ids(client.get(f"/recommendations/{user}", params={"diversity": 0.9}))
        # the strengths not given stay the default's
        strong = DEFAULT_RERANK.with_strengths(diversity=0.9)
        assert diverse == served_row(fitted_model, user, config=strong)["item_id"].tolist()
        moved += diverse != plain
    assert moved, "a strong diversity setting changed no user's row"


def test_excluded_items_are_never_shown(client, fitted_model):
    user = known_users(fitted_model, 1)[0]
    first = _ids(client.get(f"/recommendations/{user}", params={"k": 5}))
    without = _ids(client.get(f"/recommendations/{user}", params={"k": 5, "exclude": first[:3]}))
    assert len(without) == 5
    assert not set(without) & set(first[:3])
    off = {"diversity": 0, "freshness": 0, "long_tail": 0, "k": 5}
    ranked = _ids(client.get(f"/recommendations/{user}", params=off | {"k": 8}))
    filtered = _ids(client.get(f"/recommendations/{user}", params=off | {"exclude": ranked[:3]}))
    assert filtered == ranked[3:8]  # the ranker's order, the excluded left out
    body = client.post(
        "/recommendations", json={"user_ids": [user], "k": 5, "exclude": first[:3]}
    ).json()
    assert [i["item_id"] for i in body["results"][0]["items"]] == without


def test_a_stochastic_policy_keeps_the_filters(fitted_model, serving_settings, reader):
    from reelrank.experiments.config import EpsilonPolicy
    from reelrank.models.reranking import NO_RERANKING

    settings = serving_settings.model_copy(update={"policy": EpsilonPolicy(epsilon=1.0, pool=30)})
    service = RecommendationService(
        settings, loader=lambda s: make_state(fitted_model, s, reader=reader)
    )
    service.load()
    user = known_users(fitted_model, 1)[0]
    shown = [i.item_id for i in service.recommend(user, 10, request_id="r1").items]
    banned = NO_RERANKING.with_exclusions(shown)
    again = service.recommend(user, 10, request_id="r1", rerank=banned)
    assert again.items
    assert not {i.item_id for i in again.items} & set(shown)
    assert again.drawn is not None
    assert "reranking" in again.stages


def test_oversized_batch_message_names_the_limit(client):
    response = client.post("/recommendations", json={"user_ids": list(range(6))})
    assert response.status_code == 422
    assert "REELRANK_MAX_BATCH_USERS" in response.json()["detail"]


def test_batch_matches_single_requests(client, fitted_model):
    users = [*known_users(fitted_model, 3), 987654321]
    body = client.post("/recommendations", json={"user_ids": users, "k": 4}).json()
    assert [r["user_id"] for r in body["results"]] == users
    request_id = client.post("/recommendations", json={"user_ids": users}).headers["x-request-id"]
    assert request_id
    for index, result in enumerate(body["results"]):
        single = client.get(f"/recommendations/{result['user_id']}", params={"k": 4}).json()
        assert result.pop("request_id").endswith(f":{index}")
        assert single.pop("request_id")
        assert result == single


def test_feedback_is_appended_durably(client, serving_settings):
    events = [
        {"user_id": 1, "item_id": 2, "event": "impression", "position": 1},
        {"user_id": 1, "item_id": 2, "event": "click"},
        {"user_id": 1, "item_id": 2, "event": "rating", "rating": 4.5},
    ]
    response = client.post("/feedback", json={"events": events})
    assert response.status_code == 201
    assert response.json()["accepted"] == 3
    records = read_feedback(serving_settings.feedback_path)
    assert [r["event"] for r in records] == ["impression", "click", "rating"]
    assert all("received_at" in r for r in records)


def test_concurrent_feedback_writers_lose_no_line(client, serving_settings):
    def post(n: int) -> None:
        for _ in range(5):
            batch = [{"user_id": n, "item_id": i, "event": "click"} for i in range(20)]
            assert client.post("/feedback", json={"events": batch}).status_code == 201

    threads = [threading.Thread(target=post, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (path,) = serving_settings.feedback_path.glob("feedback-*.jsonl")
    lines = path.read_text().splitlines()
    assert len(lines) == 6 * 5 * 20
    assert all(json.loads(line)["event"] == "click" for line in lines)


def test_health_ready_and_model(client):
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True
    model = client.get("/model").json()
    assert model["version"] == "1"
    assert model["alias"] == "champion"
    assert model["metrics"] == {"cv_ndcg_at_10": 0.5}
    assert client.get("/docs").status_code == 200


def test_admin_reload_needs_the_key(client):
    assert client.post("/admin/reload").status_code == 401
    assert client.post("/admin/reload", headers={"X-API-Key": "wrong"}).status_code == 401
    response = client.post("/admin/reload", headers={"X-API-Key": API_KEY})
    assert response.status_code == 200
    assert response.json() == {"previous_version": "1", "model_version": "2"}
    assert client.get("/model").json()["version"] == "2"


def test_admin_is_refused_without_a_configured_key(fitted_model, tmp_path, reader):
    settings = Settings(data_dir=tmp_path / "data")
    app = create_app(settings, loader=lambda s: make_state(fitted_model, s, reader=reader))
    with TestClient(app) as test_client:
        response = test_client.post("/admin/reload", headers={"X-API-Key": "anything"})
    assert response.status_code == 403
    assert "REELRANK_API_KEY" in response.json()["detail"]


def test_no_champion_gives_503_with_the_reason(tmp_path):
    def loader(settings: Settings):
        raise ModelNotFoundError("No 'champion' version of model 'reelrank'; run `reelrank run`.")

    app = create_app(Settings(data_dir=tmp_path / "data", api_key=API_KEY), loader=loader)
    with TestClient(app) as test_client:
        assert test_client.get("/health").status_code == 200
        ready = test_client.get("/ready")
        assert ready.status_code == 503
        assert "No 'champion'" in ready.json()["reason"]
        for path in ("/recommendations/1", "/model"):
            response = test_client.get(path)
            assert response.status_code == 503
            assert "No 'champion'" in response.json()["detail"]
        batch = test_client.post("/recommendations", json={"user_ids": [1]})
        assert batch.status_code == 503
        reload = test_client.post("/admin/reload", headers={"X-API-Key": API_KEY})
        assert reload.status_code == 503


def test_state_dependency_can_be_overridden(client, fitted_model, serving_settings, reader):
    """A route serves whatever state the dependency gives it (unit seam for tests)."""
    other = make_state(fitted_model, serving_settings, version="42", reader=reader)
    app_state = client.app.state
    client.app.dependency_overrides[get_serving] = lambda: Serving(
        app_state.service, other, app_state.metrics, app_state.settings
    )
    try:
        user = known_users(fitted_model)[0]
        assert client.get(f"/recommendations/{user}").json()["model_version"] == "42"
    finally:
        client.app.dependency_overrides.clear()


def test_reload_under_concurrent_requests_loses_none(client, fitted_model):
    users = known_users(fitted_model, 5)
    expected = {u: served_row(fitted_model, u)["item_id"].tolist() for u in users}
    failures: list[str] = []
    seen_versions: set[str] = set()
    stop = threading.Event()

    def hammer() -> None:
        i = 0
        while not stop.is_set():
            user = users[i % len(users)]
            i += 1
            response = client.get(f"/recommendations/{user}")
            if response.status_code != 200:
                failures.append(f"{response.status_code}: {response.text}")
                continue
            body = response.json()
            seen_versions.add(body["model_version"])
            if [item["item_id"] for item in body["items"]] != expected[user]:
                failures.append(f"user {user}: wrong items")

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(4):
            assert client.post("/admin/reload", headers={"X-API-Key": API_KEY}).status_code == 200
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not failures, failures[:3]
    assert client.get("/model").json()["version"] == "5"
    assert seen_versions <= {"1", "2", "3", "4", "5"}


def test_current_without_state_raises(serving_settings):
    from serving.service import RecommendationService

    service = RecommendationService(serving_settings, loader=lambda s: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(ServiceUnavailableError, match="not been loaded"):
        service.current()


def test_item_titles_come_from_the_lake(client, fitted_model, small_world):
    titles = small_world[2].set_index(ITEM_ID)[TITLE]
    user = known_users(fitted_model)[0]
    for item in client.get(f"/recommendations/{user}").json()["items"]:
        assert item["title"] == titles[item["item_id"]]


def test_frame_types_are_plain_json(client, fitted_model):
    body = client.get(f"/recommendations/{known_users(fitted_model)[0]}").json()
    assert isinstance(body["items"][0]["item_id"], int)
    assert isinstance(body["items"][0]["score"], float)
    assert pd.notna(body["items"][0]["score"])


def test_ranking_uses_the_partial_tree_scorer(client, fitted_model):
    """The hot path scores with static masks prepared at load (and they agree with the
    full matrix, checked at load and in tests/serving/test_parts.py)."""
    from serving.scoring import CompiledScorer

    state = client.app.state.service.state
    assert isinstance(state.scorer, CompiledScorer)
    user = known_users(fitted_model)[0]
    key = (user, fitted_model.n_candidates, True)
    candidates = state.candidates.get(key)
    assert candidates is not None
    assert candidates.static is not None
    assert candidates.static.shape == (
        state.scorer.partial.static.slot.shape[0],
        len(candidates.block.rows),
    )


def test_a_scorer_that_disagrees_with_the_ranker_is_not_used(
    fitted_model, serving_settings, reader
):
    """The compiled path proves itself at load: if its scores differ from the ranker's by
    one bit, the service scores with the ranker's own predict."""
    from serving.scoring import CompiledScorer, PredictScorer

    original = CompiledScorer.score

    def off_by_a_bit(self, candidates, features):
        return np.nextafter(original(self, candidates, features), np.inf)

    CompiledScorer.score = off_by_a_bit
    try:
        state = make_state(fitted_model, serving_settings, reader=reader)
    finally:
        CompiledScorer.score = original
    assert isinstance(state.scorer, PredictScorer)


def test_users_beyond_the_precomputed_ones_are_prepared_on_first_request(
    fitted_model, serving_settings, reader
):
    """REELRANK_PRECOMPUTED_USERS bounds the memory of the load: the most active users are
    prepared then, the others on their first request, with the same answer."""
    full = make_state(fitted_model, serving_settings, reader=reader)
    capped_settings = serving_settings.model_copy(update={"precomputed_users": 3})
    capped = make_state(fitted_model, capped_settings, reader=reader)
    n = fitted_model.n_candidates
    pinned = {key[0] for key in capped.candidates._pinned}
    history = np.diff(fitted_model.interactions_.seen.indptr)
    most_active = fitted_model.interactions_.user_ids[np.argsort(-history, kind="stable")[:3]]
    assert pinned == {*most_active.tolist(), -1}  # and the unknown users' block
    assert len(full.candidates._pinned) == len(fitted_model.interactions_.user_ids) + 1

    service = RecommendationService(capped_settings, loader=lambda _: capped)
    full_service = RecommendationService(serving_settings, loader=lambda _: full)
    service.load()
    full_service.load()
    users = known_users(fitted_model, 12)
    assert set(users) - pinned
    for user in users:
        got = service.recommend(user, 10)
        expected = full_service.recommend(user, 10)
        assert [(i.item_id, i.score) for i in got.items] == [
            (i.item_id, i.score) for i in expected.items
        ]
        assert capped.candidates.get((user, n, True)) is not None  # kept after
    # Unknown users get the non-personal block whatever the cap (no capped-out user's).
    for cap in (0, 3):
        state = make_state(
            fitted_model,
            serving_settings.model_copy(update={"precomputed_users": cap}),
            reader=reader,
        )
        cold, expected_cold = (s.candidates.get((-1, n, True)) for s in (state, full))
        assert cold is not None
        assert expected_cold is not None
        np.testing.assert_array_equal(cold.block.item_columns, expected_cold.block.item_columns)
        np.testing.assert_array_equal(cold.block.features, expected_cold.block.features)


def test_an_unexpected_error_is_a_logged_500_with_the_request_id(client, caplog):
    """A bug in a handler never drops the connection: JSON 500, the id in body, header and log."""
    state = client.app.state.service.state

    class Broken:
        def prepare(self, block, row):
            raise RuntimeError("scorer bug")

    import dataclasses

    broken = dataclasses.replace(state, scorer=Broken(), candidates=type(state.candidates)())
    service = client.app.state.service
    deployment = service.deployment
    service._deployment = Deployment.single(broken, service.settings.policy)
    with caplog.at_level("ERROR"):
        response = client.get("/recommendations/1", headers={"X-Request-ID": "trace-me-42"})
    assert response.status_code == 500
    assert response.json() == {
        "detail": "internal server error; quote the request_id when reporting it.",
        "request_id": "trace-me-42",
    }
    assert response.headers["x-request-id"] == "trace-me-42"
    assert any("trace-me-42" in r.getMessage() for r in caplog.records)
    service._deployment = deployment
    assert client.get("/recommendations/1").status_code == 200


def test_the_openapi_document_is_exact(client):
    schema = client.get("/openapi.json").json()
    batch = schema["components"]["schemas"]["BatchRecommendationRequest"]
    assert batch["properties"]["user_ids"]["maxItems"] == 5  # REELRANK_MAX_BATCH_USERS
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert "500" in codes, (method, path)
            if "requestBody" in operation:
                assert {"400", "413", "422"} <= codes, (method, path)
            for status, response in operation["responses"].items():
                assert "X-Request-ID" in response["headers"], (method, path, status)
    events = schema["components"]["schemas"]["FeedbackBatch"]["properties"]["events"]["items"]
    assert set(events["discriminator"]["mapping"]) == {"impression", "click", "play", "rating"}
    assert "rating" not in schema["components"]["schemas"]["ClickEvent"]["properties"]

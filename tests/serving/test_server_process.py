"""The real server as a process against a store built by the pipeline (slow)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reelrank.config import Settings
from tests.serving.conftest import ROOT, free_port

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.xdist_group("serving")]

API_KEY = "integration-test-key-0123"


@pytest.fixture(scope="module")
def server(pipeline_store: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "REELRANK_DATA_DIR": str(pipeline_store),
        "REELRANK_API_KEY": API_KEY,
        "REELRANK_ONLINE_TIMEOUT_MS": "200",
    }
    for name in ("MLFLOW_TRACKING_URI", "REELRANK_MLFLOW_TRACKING_URI", "REELRANK_ONLINE_STORE"):
        env.pop(name, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "reelrank.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"`reelrank serve` exited with {process.returncode}:\n{output[-4000:]}")
            try:
                if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the server did not become ready within 180 s")
            time.sleep(0.5)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def champion(pipeline_store: Path):
    from reelrank import tracking

    recommender, _ = tracking.load_recommender(Settings(data_dir=pipeline_store))
    return recommender


def test_every_route_and_parity_with_the_recommender(server, champion, pipeline_store):
    with httpx.Client(base_url=server, timeout=30) as client:
        assert client.get("/health").json() == {"status": "ok"}
        assert client.get("/ready").json()["ready"] is True
        model = client.get("/model").json()
        assert model["alias"] == "champion"
        assert model["item_features"] == "online"
        assert model["user_features"] == "online"
        users = [int(u) for u in champion.interactions_.user_ids[:25]]
        for user in users:
            body = client.get(f"/recommendations/{user}", params={"k": 10}).json()
            expected = champion.recommend([user], k=10)
            assert body["fallback"] is None
            assert [i["item_id"] for i in body["items"]] == expected["item_id"].tolist()
            assert len(body["items"]) == 10
            assert not set(champion.seen_items(user).tolist()) & {
                i["item_id"] for i in body["items"]
            }
        cold = client.get("/recommendations/99999999").json()
        assert cold["fallback"] == "cold_start"
        assert [i["item_id"] for i in cold["items"]] == (
            champion.recommend([99999999], k=10)["item_id"].tolist()
        )
        batch = client.post("/recommendations", json={"user_ids": users[:3], "k": 5}).json()
        assert [r["user_id"] for r in batch["results"]] == users[:3]
        feedback = client.post(
            "/feedback", json={"events": [{"user_id": users[0], "item_id": 1, "event": "click"}]}
        )
        assert feedback.status_code == 201
        assert list((pipeline_store / "feedback").glob("feedback-*.jsonl"))
        assert client.post("/admin/reload").status_code == 401
        metrics = client.get("/metrics").text
        assert "reelrank_stage_duration_seconds_bucket" in metrics
        assert "reelrank_model_info" in metrics
        assert client.get("/docs").status_code == 200


def test_reload_under_concurrent_requests_loses_none(server, champion):
    users = [int(u) for u in champion.interactions_.user_ids[:10]]
    statuses: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=server, timeout=30) as client:
            i = 0
            while not stop.is_set():
                statuses.append(client.get(f"/recommendations/{users[i % len(users)]}").status_code)
                i += 1

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        with httpx.Client(base_url=server, timeout=120) as admin:
            for _ in range(2):
                reload = admin.post("/admin/reload", headers={"X-API-Key": API_KEY})
                assert reload.status_code == 200, reload.text
    finally:
        time.sleep(0.3)
        stop.set()
        for thread in threads:
            thread.join()
    assert statuses
    assert set(statuses) == {200}


def test_unreachable_online_store_degrades_without_5xx(server, champion, pipeline_store):
    store = pipeline_store / "feast" / "online_store.db"
    moved = store.with_name("online_store.db.unreachable")
    users = [int(u) for u in champion.interactions_.user_ids[:10]]
    with httpx.Client(base_url=server, timeout=30) as client:
        assert client.get(f"/recommendations/{users[0]}").json()["fallback"] is None
        store.rename(moved)
        try:
            for user in users:
                response = client.get(f"/recommendations/{user}")
                assert response.status_code == 200
                body = response.json()
                assert body["fallback"] == "degraded"
                assert len(body["items"]) == 10
            metrics = client.get("/metrics").text
            assert 'reelrank_fallbacks_total{kind="degraded"}' in metrics
        finally:
            moved.rename(store)
        assert client.get(f"/recommendations/{users[0]}").json()["fallback"] is None

"""The real server as a process against a store built by the pipeline (slow)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reelrank.config import Settings
from tests.serving.conftest import ROOT, free_port, served_row

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.xdist_group("serving")]

API_KEY = "integration-test-key-0123"
SERVED = re.compile(  # the count of answered recommendation requests on /metrics
    r'reelrank_http_requests_total\{method="GET",'
    r'route="/recommendations/\{user_id\}",status="200"\} (\S+)'
)
ENV_OF_THIS_PROCESS = (
    "MLFLOW_TRACKING_URI",
    "REELRANK_MLFLOW_TRACKING_URI",
    "REELRANK_ONLINE_STORE",
    "REELRANK_METRICS_DIR",
    # Importing Feast (this test process did) sets these; a server started from a shell
    # does not inherit them.
    "PROMETHEUS_MULTIPROC_DIR",
    "PROMETHEUS_MULTIPROCESS_DIR",
    "REELRANK_METRICS_MULTIPROC_DIR",
)


@pytest.fixture(scope="module")
def server(pipeline_store: Path) -> Iterator[str]:
    process, base = start_server(
        {
            "REELRANK_DATA_DIR": str(pipeline_store),
            "REELRANK_API_KEY": API_KEY,
            "REELRANK_ONLINE_TIMEOUT_MS": "200",
        }
    )
    try:
        yield base
    finally:
        stop_server(process)


def start_server(
    settings: dict[str, str], ready_within_s: float = 180
) -> tuple[subprocess.Popen, str]:
    """``reelrank serve`` on a free port, waited for until ``/ready``; (process, base URL)."""
    port = free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the server; not a pipe, which would block it when full)
    process = _serve(port, settings, output=log.fileno())
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_within_s
    while True:
        if process.poll() is not None:
            log.seek(0)
            output = log.read().decode(errors="replace")
            pytest.fail(f"`reelrank serve` exited with {process.returncode}:\n{output[-4000:]}")
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            stop_server(process)
            pytest.fail(f"the server did not become ready within {ready_within_s:.0f} s")
        time.sleep(0.5)


def _serve(port: int, settings: dict[str, str], *args: str, output: int) -> subprocess.Popen:
    """``reelrank serve`` as a process, with a shell's environment plus ``settings``."""
    inherited = {k: v for k, v in os.environ.items() if k not in ENV_OF_THIS_PROCESS}
    env = {**inherited, **settings}
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--port", str(port), *args],
        cwd=ROOT,
        env=env,
        stdout=output,
        stderr=subprocess.DEVNULL if output == subprocess.DEVNULL else subprocess.STDOUT,
    )


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def champion(pipeline_store: Path):
    from reelrank.registry.models import load_recommender

    recommender, _ = load_recommender(Settings(data_dir=pipeline_store))
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
            expected = served_row(champion, user)
            assert body["fallback"] is None
            assert [i["item_id"] for i in body["items"]] == expected["item_id"].tolist()
            assert len(body["items"]) == 10
            assert not set(champion.seen_items(user).tolist()) & {
                i["item_id"] for i in body["items"]
            }
        cold = client.get("/recommendations/99999999").json()
        assert cold["fallback"] == "cold_start"
        assert [i["item_id"] for i in cold["items"]] == (
            served_row(champion, 99999999)["item_id"].tolist()
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
        served = SERVED.search(metrics)
        assert served is not None, "a single worker's /metrics lacks its own requests"
        assert float(served.group(1)) >= len(users) + 1
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


def test_metrics_add_up_over_workers(pipeline_store: Path, tmp_path: Path):
    """With --workers 2, /metrics counts every worker's requests, whichever one answers."""
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"stale")  # wiped at start
    port = free_port()
    process = _serve(
        port,
        {"REELRANK_DATA_DIR": str(pipeline_store), "REELRANK_METRICS_DIR": str(metrics_dir)},
        "--workers",
        "2",
        output=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        ready_pids: set[str] = set()
        while len(ready_pids) < 2:  # both workers have loaded the model
            assert process.poll() is None, "`reelrank serve --workers 2` exited"
            assert time.monotonic() < deadline, "the workers did not load within 180 s"
            ready_pids = {
                p.stem.rsplit("_", 1)[1]
                for p in metrics_dir.glob("gauge_max_*.db")
                if p.stem != "counter_999999"
            }
            time.sleep(0.5)
        assert not (metrics_dir / "counter_999999.db").exists()
        n = 0
        while len(_served_per_worker(metrics_dir)) < 2:  # until both workers answered some
            assert n < 2000, "every request went to one worker"
            # a new connection each: the kernel spreads them over the workers
            assert httpx.get(f"{base}/recommendations/{n + 1}?k=3", timeout=30).status_code == 200
            n += 1
        # the middleware counts a request once its response is sent, so the client can
        # see the last answer a moment before its worker's file does
        settle = time.monotonic() + 5
        while sum(_served_per_worker(metrics_dir).values()) < n:
            assert time.monotonic() < settle, _served_per_worker(metrics_dir)
            time.sleep(0.05)
        assert sum(_served_per_worker(metrics_dir).values()) == n
        for _ in range(6):  # whichever worker answers the scrape
            text = httpx.get(f"{base}/metrics", timeout=30).text
            assert [float(v) for v in SERVED.findall(text)] == [n]
            assert 'reelrank_model_info{name="reelrank"' in text
    finally:
        stop_server(process)


def _served_per_worker(metrics_dir: Path) -> dict[str, float]:
    """Recommendation requests counted in each worker's file (pid -> count, non-zero only)."""
    from prometheus_client.mmap_dict import MmapedDict

    served: dict[str, float] = {}
    for path in metrics_dir.glob("counter_*.db"):
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
            if value and "reelrank_http_requests" in key and "/recommendations/{user_id}" in key:
                pid = path.stem.rsplit("_", 1)[1]
                served[pid] = served.get(pid, 0.0) + value
    return served

"""The docker-compose topology for real, as local processes (scripts/local_stack.py).

Postgres (127.0.0.1:5432, trust auth) and Redis (127.0.0.1:6379) must be running; the
test starts everything else with the environment docker-compose.yml sets: ``mlflow
server`` and ``prefect server start`` on their own Postgres databases, ``reelrank run``
once on a small synthetic world, and ``reelrank serve``. It then checks what the
compose stack promises: the flow run is recorded by the Prefect server, the champion
is registered in the MLflow server, features are in Redis and the API answers from
them, also after the API process restarts.

Isolation: unique Postgres databases per run (created, then dropped), a dedicated
Redis database (``REELRANK_TEST_REDIS_DB``, default 5; flushed before and after; two
runs of this test at once on one Redis must use different numbers), the
data dir, PREFECT_HOME and MLflow artifacts under ``tmp_path``, free ports. Every
process is stopped in the fixture's finalizer, which then asserts that none of the
recorded pids is alive, that the databases are gone and the Redis database is empty.
With ``CI=true`` a missing Postgres or Redis fails the test instead of skipping it.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import socket
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import require_service

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.xdist_group("stack")]

ROOT = Path(__file__).resolve().parents[2]
LOCAL_STACK_FILE = ROOT / "scripts" / "local_stack.py"
# The services CI provides (overridable for machines that run them elsewhere).
PG_HOST = os.environ.get("REELRANK_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("REELRANK_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("REELRANK_TEST_PG_USER", "postgres")
REDIS_PORT = int(os.environ.get("REELRANK_TEST_REDIS_PORT", "6379"))
REDIS_DB = int(os.environ.get("REELRANK_TEST_REDIS_DB", "5"))
REDIS_URL = f"redis://127.0.0.1:{REDIS_PORT}/{REDIS_DB}"
FEAST_PROJECT = "reelrank"  # reelrank.features.feast_config.PROJECT: suffix of Feast's Redis keys
FLOW_NAME = "reelrank-pipeline"
MODEL_NAME = "reelrank"
# A small synthetic world so the whole test stays within a few minutes on 2 cores.
RUN_ARGS = (
    "--users", "300", "--items", "200", "--events", "20000", "--seed", "7",
    "--folds", "2", "--no-diagnostics",
)  # fmt: skip
USER_ID = 1
K = 10

log = logging.getLogger(__name__)


def _local_stack() -> ModuleType:
    module = sys.modules.get("local_stack")
    if module is not None and getattr(module, "__file__", None) == str(LOCAL_STACK_FILE):
        return module
    spec = importlib.util.spec_from_file_location("local_stack", LOCAL_STACK_FILE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["local_stack"] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


def _postgres_up() -> bool:
    try:
        import psycopg2

        psycopg2.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", connect_timeout=3
        ).close()
        return True
    except Exception:
        return False


def _redis() -> Any:
    import redis

    return redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)


def _redis_up() -> bool:
    try:
        return bool(_redis().ping())
    except Exception:
        return False


def _free_ports(n: int) -> list[int]:
    """``n`` distinct ports free right now (sockets held open together, then released)."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _databases(names: tuple[str, ...]) -> set[str]:
    import psycopg2

    conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)", (list(names),))
            return {row[0] for row in cur.fetchall()}
    finally:
        conn.close()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) is not running.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"
    except OSError:
        return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return any(
        _pid_alive(int(p.name))
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and _pgid_of(int(p.name)) == pgid
    )


def _pgid_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _get(url: str, timeout: float = 30.0) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, _decode(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, _decode(exc.read())


def _decode(body: bytes) -> Any:
    """JSON when it is JSON (MLflow's /health answers plain ``OK``)."""
    try:
        return json.loads(body)
    except ValueError:
        return body.decode(errors="replace")


def _post(url: str, payload: dict[str, Any], timeout: float = 30.0) -> tuple[int, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        return resp.status, json.loads(resp.read())


@dataclass
class Running:
    """The started stack plus what the tests learn along the way."""

    stack: Any  # local_stack.Stack
    timings: dict[str, float] = field(default_factory=dict)
    seen_pids: set[int] = field(default_factory=set)
    champion_version: str | None = None
    first_answer: dict[str, Any] | None = None

    def __getattr__(self, name: str) -> Any:  # pids, env, api_url, ... of the Stack
        if name == "stack":
            raise AttributeError(name)
        return getattr(self.stack, name)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The whole stack, started once for this module and torn down (checked) after it."""
    require_service(_postgres_up(), f"Postgres at {PG_HOST}:{PG_PORT} (user {PG_USER})")
    require_service(_redis_up(), f"Redis at {REDIS_URL}")
    ls = _local_stack()
    suffix = f"{os.getpid()}_{uuid.uuid4().hex[:8]}"
    mlflow_port, prefect_port, api_port, worker_port = _free_ports(4)
    config = ls.StackConfig(
        state_dir=tmp_path_factory.mktemp("local-stack"),
        pg_host=PG_HOST,
        pg_port=PG_PORT,
        pg_user=PG_USER,
        mlflow_db=f"rr_test_mlflow_{suffix}",
        prefect_db=f"rr_test_prefect_{suffix}",
        redis_url=REDIS_URL,
        mlflow_port=mlflow_port,
        prefect_port=prefect_port,
        api_port=api_port,
        worker_port=worker_port,
        dataset="synthetic",
        run_args=RUN_ARGS,
        model_name=MODEL_NAME,
        # Generous: the Prefect server's first start (migrations on Postgres) can take
        # a minute on a loaded 2-core machine.
        startup_timeout_s=240.0,
        pipeline_timeout_s=600.0,
    )
    # Features must come from this run, not from an earlier one left in the database.
    _redis().flushdb()
    timings: dict[str, float] = {}
    seen: set[int] = set()
    started = time.perf_counter()
    try:
        running = Running(ls.start_stack(config), timings, seen)
        timings["start_stack"] = time.perf_counter() - started
        seen.update(running.pids.values())
        yield running
    finally:
        # start_stack stops what it started when it fails; the pid files still name
        # whatever a failed stop might have left.
        for pid_file in config.pids_dir.glob("*.pid"):
            seen.add(int(pid_file.read_text().strip()))
        stop_started = time.perf_counter()
        ls.stop_stack(config.state_dir, drop_databases=True, flush_redis=True)
        timings["stop"] = time.perf_counter() - stop_started
        log.warning("local stack timings (s): %s", {k: round(v, 1) for k, v in timings.items()})
        # Nothing left running, nothing left behind.
        still = {pid for pid in seen if _group_alive(pid)}
        assert not still, f"processes of the stack still running after stop: {sorted(still)}"
        assert not list(config.pids_dir.glob("*.pid")), "pid files left after stop"
        left = _databases((config.mlflow_db, config.prefect_db))
        assert not left, f"databases not dropped: {left}"
        assert _redis().dbsize() == 0, f"Redis db {REDIS_DB} not flushed"


def test_services_run_as_processes(stack: Running) -> None:
    for name in ("mlflow", "prefect-server", "api"):
        assert name in stack.pids, f"{name} was not started"
        assert _pid_alive(stack.pids[name]), f"{name} is not running"
    # The pipeline ran to completion (it is not long-running): no pid is left for it.
    assert "pipeline" not in stack.pids
    assert stack.env["REELRANK_ONLINE_STORE"] == "redis"
    assert stack.env["REELRANK_REDIS_URL"] == REDIS_URL
    assert stack.env["REELRANK_MLFLOW_TRACKING_URI"] == stack.mlflow_url
    assert stack.env["PREFECT_API_URL"] == stack.prefect_api_url
    status, body = _get(f"{stack.mlflow_url}/health")
    assert status == 200, body
    status, body = _get(f"{stack.prefect_api_url}/health")
    assert status == 200, body


def test_pipeline_flow_run_is_recorded_by_the_prefect_server(stack: Running) -> None:
    status, runs = _post(
        f"{stack.prefect_api_url}/flow_runs/filter",
        {"flows": {"name": {"any_": [FLOW_NAME]}}, "sort": "START_TIME_DESC", "limit": 10},
    )
    assert status == 200
    assert runs, f"the Prefect server has no flow run of {FLOW_NAME!r}"
    states = [run["state"]["type"] for run in runs]
    assert states == ["COMPLETED"], f"expected one completed run, got {states}"
    # Its tasks reported to the same server (data -> features -> train).
    status, tasks = _post(
        f"{stack.prefect_api_url}/task_runs/filter",
        {"flow_runs": {"id": {"any_": [runs[0]["id"]]}}, "limit": 200},
    )
    assert status == 200
    assert tasks, "the flow run recorded no task runs"
    assert {t["state"]["type"] for t in tasks} == {"COMPLETED"}


def test_champion_is_registered_in_the_mlflow_server(stack: Running) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=stack.mlflow_url, registry_uri=stack.mlflow_url)
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert champion.status == "READY"
    assert champion.run_id, "the champion has no training run"
    run = client.get_run(champion.run_id)
    assert run.info.status == "FINISHED"
    # Artifacts are served by the MLflow server from its own store (under tmp), not
    # written by the pipeline to a local path.
    assert run.info.artifact_uri.startswith("mlflow-artifacts:"), run.info.artifact_uri
    assert any(stack.config.artifacts_dir.rglob("MLmodel")), "no model in the artifact store"
    stack.champion_version = str(champion.version)


def test_features_are_in_redis(stack: Running) -> None:
    r = _redis()
    keys = list(r.scan_iter(count=1000))
    assert keys, f"no keys in Redis database {REDIS_DB}"
    feast_keys = [k for k in keys if k.endswith(FEAST_PROJECT.encode())]
    # At least one row per user and per item of the synthetic world (300 + 200).
    assert len(feast_keys) >= 300, f"{len(feast_keys)} Feast keys in Redis db {REDIS_DB}"
    # Every key is a hash of feature-view fields plus their event timestamps.
    assert r.type(feast_keys[0]) == b"hash"
    assert any(field.startswith(b"_ts:") for field in r.hkeys(feast_keys[0]))


def _recommend(stack: Running, user_id: int = USER_ID) -> dict[str, Any]:
    status, body = _get(f"{stack.api_url}/recommendations/{user_id}?k={K}")
    assert status == 200, body
    return body


def test_api_answers_from_the_champion_and_redis_features(stack: Running) -> None:
    status, ready = _get(f"{stack.api_url}/ready")
    assert status == 200, ready
    assert ready["ready"] is True
    champion = stack.champion_version
    if champion is None:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=stack.mlflow_url, registry_uri=stack.mlflow_url)
        champion = str(client.get_model_version_by_alias(MODEL_NAME, "champion").version)
        stack.champion_version = champion
    assert ready["model_version"] == champion
    body = _recommend(stack)
    assert body["fallback"] is None, body
    assert body["model_version"] == champion
    assert body["user_id"] == USER_ID
    items = [item["item_id"] for item in body["items"]]
    assert len(items) == K
    assert len(set(items)) == K
    assert [item["rank"] for item in body["items"]] == list(range(1, K + 1))
    stack.first_answer = body


def test_restarting_the_api_keeps_serving_the_same_champion(stack: Running) -> None:
    before = stack.first_answer or _recommend(stack)
    old_pid = stack.pids["api"]
    started = time.perf_counter()
    new_pid = stack.restart_api()
    stack.timings["restart_api"] = time.perf_counter() - started
    stack.seen_pids.add(new_pid)
    assert new_pid != old_pid
    assert not _group_alive(old_pid), "the old API process is still running"
    after = _recommend(stack)
    assert after["model_version"] == before["model_version"]
    assert after["fallback"] is None
    assert [i["item_id"] for i in after["items"]] == [i["item_id"] for i in before["items"]]

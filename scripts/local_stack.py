"""Run the docker-compose topology as local processes, for machines without Docker.

The same services and the same environment variables as ``docker-compose.yml``, with
the Postgres and Redis already running on this machine:

* ``mlflow server`` on a Postgres database, artifacts served by the server;
* ``prefect server start`` on a second Postgres database;
* ``reelrank run`` once (the pipeline flow, reported to the Prefect server, the model
  registered in the MLflow server, features materialised into Redis);
* optionally the Prefect worker with the nightly deployment (``reelrank deploy``);
* ``reelrank serve`` (the API).

Command line (``make up-local`` / ``make down-local``)::

    python scripts/local_stack.py up [--dataset synthetic] [--state-dir .local-stack]
        [--run-args "--users 300 --items 200 --folds 2"] [--worker] [--*-port N]
    python scripts/local_stack.py status
    python scripts/local_stack.py env       # `eval "$(...)"` to point reelrank at the stack
    python scripts/local_stack.py down [--drop-databases] [--flush-redis]

From Python (the integration tests)::

    stack = start_stack(StackConfig(state_dir=tmp, mlflow_db="t_mlflow", run_args=(...), ...))
    ...
    stop_stack(stack.config.state_dir, drop_databases=True, flush_redis=True)

Processes run detached in their own sessions; their pids, logs and the stack
configuration live under the state directory, so ``down`` works from another shell.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger("reelrank.local_stack")

REPO_ROOT = Path(__file__).resolve().parents[1]
STATE_FILE = "stack.json"
SECRETS_FILE = "secrets.env"
_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

# Service names, as in docker-compose.yml.
MLFLOW = "mlflow"
PREFECT_SERVER = "prefect-server"
PIPELINE = "pipeline"
PREFECT_WORKER = "prefect-worker"
API = "api"
LONG_RUNNING = (MLFLOW, PREFECT_SERVER, PREFECT_WORKER, API)


class LocalStackError(RuntimeError):
    """A service of the local stack failed to start, or a precondition is missing."""


@dataclass(frozen=True)
class StackConfig:
    """Where and how to run the local stack. Defaults mirror docker-compose.yml.

    Attributes:
        state_dir: pids, logs, the data dir and MLflow artifacts go here.
        pg_host, pg_port, pg_user, pg_password: the running Postgres (trust auth
            needs no password).
        mlflow_db, prefect_db: databases created for the MLflow backend store and the
            Prefect server (give test-specific names for isolation).
        redis_url: Feast online store; pick a database number for isolation.
        dataset: dataset `reelrank run` trains on.
        run_args: extra arguments of `reelrank run` (e.g. a small synthetic world:
            ``("--users", "300", "--items", "200", "--folds", "2")``).
        model_name: registered model name in MLflow.
        api_key: admin key of the API; a random one is generated when None.
        run_pipeline / start_worker / serve_api: which app processes to start.
        work_pool, pipeline_cron: Prefect work pool and schedule of the deployment.
        startup_timeout_s: budget for each server to answer its health endpoint.
        pipeline_timeout_s: budget for `reelrank run`.
        bin_dir: where the mlflow, prefect and reelrank executables are (this venv).
        extra_env: added to every process's environment (after the defaults).
    """

    state_dir: Path = Path(".local-stack")
    pg_host: str = "127.0.0.1"
    pg_port: int = 5432
    pg_user: str = "postgres"
    pg_password: str | None = None
    mlflow_db: str = "reelrank_mlflow"
    prefect_db: str = "reelrank_prefect"
    redis_url: str = "redis://127.0.0.1:6379/0"
    host: str = "127.0.0.1"
    mlflow_port: int = 5000
    prefect_port: int = 4200
    api_port: int = 8000
    worker_port: int = 8080
    api_workers: int = 1
    dataset: str = "synthetic"
    run_args: tuple[str, ...] = ()
    model_name: str = "reelrank"
    api_key: str | None = None
    run_pipeline: bool = True
    start_worker: bool = False
    serve_api: bool = True
    work_pool: str = "reelrank-local"
    pipeline_cron: str = "0 3 * * *"
    startup_timeout_s: float = 240.0
    pipeline_timeout_s: float = 1800.0
    bin_dir: Path = field(default_factory=lambda: Path(sys.executable).parent)
    extra_env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in (self.mlflow_db, self.prefect_db):
            if not _DB_NAME.match(name):
                raise LocalStackError(
                    f"invalid database name {name!r}: use letters, digits and _ "
                    "(at most 63 characters, not starting with a digit)"
                )
        object.__setattr__(self, "state_dir", Path(self.state_dir).resolve())
        object.__setattr__(self, "run_args", tuple(str(a) for a in self.run_args))

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def artifacts_dir(self) -> Path:
        return self.state_dir / "mlartifacts"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def pids_dir(self) -> Path:
        return self.state_dir / "pids"

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.host}:{self.mlflow_port}"

    @property
    def prefect_api_url(self) -> str:
        return f"http://{self.host}:{self.prefect_port}/api"

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    def postgres_url(self, database: str, driver: str = "postgresql") -> str:
        """SQLAlchemy URL of ``database`` on the configured Postgres."""
        auth = self.pg_user if self.pg_password is None else f"{self.pg_user}:{self.pg_password}"
        return f"{driver}://{auth}@{self.pg_host}:{self.pg_port}/{database}"

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["state_dir"] = str(self.state_dir)
        data["bin_dir"] = str(self.bin_dir)
        data["extra_env"] = dict(self.extra_env)
        data["run_args"] = list(self.run_args)
        data["api_key"] = None  # kept in secrets.env (0600), never in stack.json
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StackConfig:
        values = dict(data)
        values["state_dir"] = Path(values["state_dir"])
        values["bin_dir"] = Path(values["bin_dir"])
        values["run_args"] = tuple(values.get("run_args", ()))
        return cls(**values)


@dataclass
class Stack:
    """A running local stack: its configuration, environment and process ids."""

    config: StackConfig
    env: dict[str, str]
    pids: dict[str, int]

    @property
    def api_url(self) -> str:
        return self.config.api_url

    @property
    def mlflow_url(self) -> str:
        return self.config.mlflow_url

    @property
    def prefect_api_url(self) -> str:
        return self.config.prefect_api_url

    def restart_api(self) -> int:
        """Stop the API process and start a fresh one; returns the new pid."""
        _terminate(self.config, API, self.pids.pop(API, None))
        self.pids[API] = _start_api(self.config, self.env)
        return self.pids[API]

    def stop(self, *, drop_databases: bool = False, flush_redis: bool = False) -> None:
        stop_stack(self.config.state_dir, drop_databases=drop_databases, flush_redis=flush_redis)


# ---------------------------------------------------------------------------
# environment: the variables docker-compose.yml sets, pointed at local services
# ---------------------------------------------------------------------------
def service_env(config: StackConfig, api_key: str) -> dict[str, str]:
    """Environment of every ReelRank process (pipeline, worker, API).

    The keys are those of ``x-reelrank-env`` plus the API's own in docker-compose.yml
    (tests/integration/test_compose_static.py checks they agree); hosts and paths
    point at this machine instead of compose service names.
    """
    return {
        "REELRANK_ENVIRONMENT": "production",
        "REELRANK_DATA_DIR": str(config.data_dir),
        "REELRANK_DATASET": config.dataset,
        "REELRANK_ONLINE_STORE": "redis",
        "REELRANK_REDIS_URL": config.redis_url,
        "REELRANK_MLFLOW_TRACKING_URI": config.mlflow_url,
        "REELRANK_MODEL_NAME": config.model_name,
        "PREFECT_API_URL": config.prefect_api_url,
        "REELRANK_API_HOST": config.host,
        "REELRANK_API_PORT": str(config.api_port),
        "REELRANK_API_WORKERS": str(config.api_workers),
        "REELRANK_API_KEY": api_key,
        "REELRANK_ONLINE_TIMEOUT_MS": "50",
    }


def _base_env(config: StackConfig) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REELRANK_", "PREFECT_", "MLFLOW_")) and k != "VIRTUAL_ENV"
    }
    env["PATH"] = f"{config.bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    # Isolated Prefect profile/home: no interference with ~/.prefect.
    env["PREFECT_HOME"] = str(config.state_dir / "prefect-home")
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return env


def _mlflow_env(config: StackConfig) -> dict[str, str]:
    env = _base_env(config)
    env["MLFLOW_BACKEND_STORE_URI"] = config.postgres_url(
        config.mlflow_db, driver="postgresql+psycopg2"
    )
    # MLflow's GenAI job runner (seven Huey consumer processes polling the database)
    # serves nothing ReelRank uses; on a small machine it competes with the pipeline.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    # As in docker-compose.yml: the Host headers MLflow's DNS-rebinding guard accepts.
    env["MLFLOW_SERVER_ALLOWED_HOSTS"] = ",".join(
        dict.fromkeys(
            [
                *(config.host, f"{config.host}:*"),
                *("localhost", "localhost:*", "127.0.0.1", "127.0.0.1:*"),
            ]
        )
    )
    return env


def _prefect_server_env(config: StackConfig) -> dict[str, str]:
    env = _base_env(config)
    env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = config.postgres_url(
        config.prefect_db, driver="postgresql+asyncpg"
    )
    env["PREFECT_API_URL"] = config.prefect_api_url
    env["PREFECT_UI_API_URL"] = config.prefect_api_url
    return env


def _app_env(config: StackConfig, api_key: str) -> dict[str, str]:
    env = _base_env(config)
    env.update(service_env(config, api_key))
    env["PREFECT_WORKER_WEBSERVER_PORT"] = str(config.worker_port)
    env.update(config.extra_env)
    return env


# ---------------------------------------------------------------------------
# commands: the same as docker-compose.yml, with local hosts, ports and paths
# ---------------------------------------------------------------------------
def _bin(config: StackConfig, name: str) -> str:
    path = config.bin_dir / name
    if not path.exists():
        raise LocalStackError(
            f"{path} not found: install the project into this venv (`make install`) "
            "or pass bin_dir / --bin-dir"
        )
    return str(path)


def mlflow_command(config: StackConfig) -> list[str]:
    return [
        _bin(config, "mlflow"), "server",
        "--serve-artifacts", "--artifacts-destination", str(config.artifacts_dir),
        "--host", config.host, "--port", str(config.mlflow_port),
        "--workers", "1",
    ]  # fmt: skip


def prefect_server_command(config: StackConfig) -> list[str]:
    return [
        _bin(config, "prefect"), "server", "start",
        "--host", config.host, "--port", str(config.prefect_port),
    ]  # fmt: skip


def pipeline_command(config: StackConfig) -> list[str]:
    return [_bin(config, "reelrank"), "run", "--dataset", config.dataset, *config.run_args]


def api_command(config: StackConfig) -> list[str]:
    return [
        _bin(config, "reelrank"), "serve",
        "--host", config.host, "--port", str(config.api_port),
        "--workers", str(config.api_workers),
    ]  # fmt: skip


def worker_commands(config: StackConfig) -> tuple[list[list[str]], list[str]]:
    """Set-up commands (work pool, deployment) and the long-running worker command."""
    prefect = _bin(config, "prefect")
    setup = [
        [prefect, "work-pool", "create", config.work_pool, "--type", "process", "--overwrite"],
        [
            _bin(config, "reelrank"), "deploy",
            "--work-pool", config.work_pool, "--cron", config.pipeline_cron,
        ],
    ]  # fmt: skip
    worker = [
        prefect, "worker", "start",
        "--pool", config.work_pool, "--type", "process", "--with-healthcheck",
    ]  # fmt: skip
    return setup, worker


# ---------------------------------------------------------------------------
# Postgres and Redis
# ---------------------------------------------------------------------------
def _pg_connect(config: StackConfig) -> Any:
    try:
        import psycopg2
    except ImportError as exc:  # pragma: no cover - psycopg2-binary is a dependency
        raise LocalStackError("psycopg2 is missing: `pip install psycopg2-binary`") from exc
    try:
        conn = psycopg2.connect(
            host=config.pg_host,
            port=config.pg_port,
            user=config.pg_user,
            password=config.pg_password,
            dbname="postgres",
            connect_timeout=5,
        )
    except psycopg2.OperationalError as exc:
        raise LocalStackError(
            f"cannot reach Postgres at {config.pg_host}:{config.pg_port} as {config.pg_user}: "
            f"{str(exc).strip()}. Start it (e.g. `pg_ctlcluster --skip-systemctl-redirect "
            "$(ls /etc/postgresql) main start`) or pass --pg-host/--pg-port."
        ) from exc
    conn.autocommit = True
    return conn


def ensure_databases(config: StackConfig) -> list[str]:
    """Create the MLflow and Prefect databases if missing; returns those created."""
    from psycopg2 import sql

    created = []
    conn = _pg_connect(config)
    try:
        with conn.cursor() as cur:
            for name in (config.mlflow_db, config.prefect_db):
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                    created.append(name)
    finally:
        conn.close()
    return created


def drop_stack_databases(config: StackConfig) -> None:
    """Drop the stack's databases (disconnecting any remaining sessions)."""
    from psycopg2 import sql

    conn = _pg_connect(config)
    try:
        with conn.cursor() as cur:
            for name in (config.mlflow_db, config.prefect_db):
                cur.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
    finally:
        conn.close()


def check_redis(config: StackConfig) -> None:
    import redis

    try:
        redis.Redis.from_url(config.redis_url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        raise LocalStackError(
            f"cannot reach Redis at {config.redis_url}: {exc}. Start it (e.g. `redis-server "
            '--daemonize yes --bind 127.0.0.1 --port 6379 --save ""`) or pass --redis-url.'
        ) from exc


def flush_redis_db(config: StackConfig) -> None:
    """Empty the Redis database of ``redis_url`` (only that database number)."""
    import redis

    redis.Redis.from_url(config.redis_url, socket_connect_timeout=3).flushdb()


# ---------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------
def _log_path(config: StackConfig, name: str) -> Path:
    return config.logs_dir / f"{name}.log"


def _pid_path(config: StackConfig, name: str) -> Path:
    return config.pids_dir / f"{name}.pid"


def log_tail(config: StackConfig, name: str, lines: int = 40) -> str:
    path = _log_path(config, name)
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _spawn(config: StackConfig, name: str, argv: Sequence[str], env: Mapping[str, str]) -> int:
    """Start ``argv`` detached in its own session, logging to logs/<name>.log."""
    config.logs_dir.mkdir(parents=True, exist_ok=True)
    config.pids_dir.mkdir(parents=True, exist_ok=True)
    log = _log_path(config, name).open("ab")
    log.write(f"\n=== {time.strftime('%F %T')} $ {shlex.join(argv)}\n".encode())
    log.flush()
    proc = subprocess.Popen(
        list(argv),
        cwd=REPO_ROOT,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    _pid_path(config, name).write_text(str(proc.pid))
    _CHILDREN[proc.pid] = proc
    logger.info("started %s (pid %d): %s", name, proc.pid, shlex.join(argv))
    return proc.pid


# Popen objects of the processes this interpreter started (to reap them).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _terminate(config: StackConfig, name: str, pid: int | None, timeout_s: float = 15.0) -> None:
    """SIGTERM the process group of ``pid``, SIGKILL it after ``timeout_s``."""
    pid_file = _pid_path(config, name)
    if pid is None and pid_file.exists():
        pid = int(pid_file.read_text().strip())
    if pid is not None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and _group_alive(pid):
                if pid in _CHILDREN:
                    _CHILDREN[pid].poll()
                time.sleep(0.2)
            if not _group_alive(pid):
                break
            logger.warning("%s (pid %d) ignored SIGTERM; killing it", name, pid)
        if pid in _CHILDREN:
            _CHILDREN.pop(pid).wait(timeout=5)
        logger.info("stopped %s (pid %d)", name, pid)
    pid_file.unlink(missing_ok=True)


def _group_alive(pgid: int) -> bool:
    if pgid in _CHILDREN:
        _CHILDREN[pgid].poll()
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Zombie group leader reaped above; other members may still be alive.
    return True


def wait_http(
    url: str,
    *,
    timeout_s: float,
    config: StackConfig,
    name: str,
    pid: int | None = None,
    expect_status: int = 200,
) -> None:
    """Poll ``url`` until it returns ``expect_status``; fail fast if ``pid`` exits."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if pid is not None and not _alive(pid):
            raise LocalStackError(
                f"{name} exited before {url} answered. Last log lines "
                f"({_log_path(config, name)}):\n{log_tail(config, name)}"
            )
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                if resp.status == expect_status:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}: {exc.read()[:300].decode(errors='replace')}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.5)
    raise LocalStackError(
        f"{name} did not answer {url} with {expect_status} within {timeout_s:.0f}s "
        f"(last: {last}). Log ({_log_path(config, name)}):\n{log_tail(config, name)}"
    )


def _run_to_completion(
    config: StackConfig, name: str, argv: Sequence[str], env: Mapping[str, str], timeout_s: float
) -> None:
    pid = _spawn(config, name, argv, env)
    proc = _CHILDREN[pid]
    try:
        code = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        _terminate(config, name, pid)
        raise LocalStackError(
            f"{name} did not finish within {timeout_s:.0f}s. Log:\n{log_tail(config, name)}"
        ) from exc
    _CHILDREN.pop(pid, None)
    _pid_path(config, name).unlink(missing_ok=True)
    if code != 0:
        raise LocalStackError(
            f"{name} failed with exit code {code}: {shlex.join(argv)}\n"
            f"Log ({_log_path(config, name)}):\n{log_tail(config, name)}"
        )


def _start_api(config: StackConfig, env: Mapping[str, str]) -> int:
    pid = _spawn(config, API, api_command(config), env)
    wait_http(
        f"{config.api_url}/health",
        timeout_s=config.startup_timeout_s,
        config=config,
        name=API,
        pid=pid,
    )
    wait_http(
        f"{config.api_url}/ready",
        timeout_s=config.startup_timeout_s,
        config=config,
        name=API,
        pid=pid,
    )
    return pid


def _load_or_create_api_key(config: StackConfig) -> str:
    path = config.state_dir / SECRETS_FILE
    if config.api_key:
        key = config.api_key
    elif path.exists():
        key = path.read_text().strip().removeprefix("REELRANK_API_KEY=")
    else:
        key = secrets.token_urlsafe(32)
    path.write_text(f"REELRANK_API_KEY={key}\n")
    path.chmod(0o600)
    return key


def start_stack(config: StackConfig) -> Stack:
    """Start the services in compose order and wait for each to be healthy.

    Raises:
        LocalStackError: a precondition is missing or a service failed; everything
            this call started has been stopped again.
    """
    state_path = config.state_dir / STATE_FILE
    if state_path.exists() and any(
        p.exists() and _alive(int(p.read_text().strip()))
        for p in config.pids_dir.glob("*.pid")
        if p.read_text().strip().isdigit()
    ):
        raise LocalStackError(
            f"a stack is already running from {config.state_dir}: run "
            f"`python scripts/local_stack.py down --state-dir {config.state_dir}` first"
        )
    for directory in (config.state_dir, config.data_dir, config.artifacts_dir):
        directory.mkdir(parents=True, exist_ok=True)
    check_redis(config)
    created = ensure_databases(config)
    logger.info("databases ready (created: %s)", ", ".join(created) or "none")
    state_path.write_text(json.dumps(config.to_json(), indent=2))
    api_key = _load_or_create_api_key(config)
    env = _app_env(config, api_key)
    stack = Stack(config=config, env=env, pids={})
    try:
        stack.pids[MLFLOW] = _spawn(config, MLFLOW, mlflow_command(config), _mlflow_env(config))
        stack.pids[PREFECT_SERVER] = _spawn(
            config, PREFECT_SERVER, prefect_server_command(config), _prefect_server_env(config)
        )
        wait_http(
            f"{config.mlflow_url}/health",
            timeout_s=config.startup_timeout_s,
            config=config,
            name=MLFLOW,
            pid=stack.pids[MLFLOW],
        )
        wait_http(
            f"{config.prefect_api_url}/health",
            timeout_s=config.startup_timeout_s,
            config=config,
            name=PREFECT_SERVER,
            pid=stack.pids[PREFECT_SERVER],
        )
        if config.run_pipeline:
            _run_to_completion(
                config, PIPELINE, pipeline_command(config), env, config.pipeline_timeout_s
            )
        if config.start_worker:
            setup, worker = worker_commands(config)
            for i, argv in enumerate(setup):
                _run_to_completion(
                    config, f"{PREFECT_WORKER}-setup-{i}", argv, env, config.startup_timeout_s
                )
            stack.pids[PREFECT_WORKER] = _spawn(config, PREFECT_WORKER, worker, env)
            wait_http(
                f"http://127.0.0.1:{config.worker_port}/health",
                timeout_s=config.startup_timeout_s,
                config=config,
                name=PREFECT_WORKER,
                pid=stack.pids[PREFECT_WORKER],
            )
        if config.serve_api:
            stack.pids[API] = _start_api(config, env)
    except BaseException:
        logger.error("start failed; stopping what was started")
        stop_stack(config.state_dir)
        raise
    return stack


def load_config(state_dir: Path) -> StackConfig:
    path = Path(state_dir).resolve() / STATE_FILE
    if not path.exists():
        raise LocalStackError(f"no local stack state at {path}: nothing was started there")
    return StackConfig.from_json(json.loads(path.read_text()))


def stop_stack(
    state_dir: Path | str, *, drop_databases: bool = False, flush_redis: bool = False
) -> None:
    """Stop every process of the stack at ``state_dir`` (API first, servers last).

    Args:
        state_dir: the stack's state directory.
        drop_databases: also drop its MLflow and Prefect databases.
        flush_redis: also empty its Redis database (the number in ``redis_url``).
    """
    config = load_config(Path(state_dir))
    known = [API, PREFECT_WORKER, PIPELINE, MLFLOW, PREFECT_SERVER]
    others = (
        sorted(p.stem for p in config.pids_dir.glob("*.pid") if p.stem not in known)
        if config.pids_dir.exists()
        else []
    )
    for name in [*known[:3], *others, *known[3:]]:
        _terminate(config, name, None)
    if drop_databases:
        drop_stack_databases(config)
        logger.info("dropped databases %s, %s", config.mlflow_db, config.prefect_db)
    if flush_redis:
        flush_redis_db(config)
        logger.info("flushed Redis %s", config.redis_url)


def stack_status(state_dir: Path | str) -> dict[str, str]:
    """Name -> 'running (pid N)' / 'stopped' for each long-running service."""
    config = load_config(Path(state_dir))
    status = {}
    for name in LONG_RUNNING:
        path = _pid_path(config, name)
        if path.exists() and _alive(int(path.read_text().strip())):
            status[name] = f"running (pid {path.read_text().strip()})"
        else:
            status[name] = "stopped"
    return status


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------
def _relative(path: Path) -> Path:
    """``path`` relative to the working directory when below it (shorter commands)."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def summary(stack: Stack) -> str:
    """What ``up`` prints: each service's URL and how to point ``reelrank`` at the stack."""
    config = stack.config
    command = f"{_relative(Path(sys.executable))} {_relative(Path(__file__).resolve())}"
    state = f" --state-dir {shlex.quote(str(_relative(config.state_dir)))}"
    pg = f"postgresql://{config.pg_user}@{config.pg_host}:{config.pg_port}"
    default_state = StackConfig().state_dir
    flags = "[--drop-databases] [--flush-redis]"
    stop = (
        f"make down-local  (or {command} down {flags})"
        if config.state_dir == default_state
        else f"{command} down{state} {flags}"
    )
    lines = [
        "ReelRank local stack is up:",
        f"  Postgres        {pg}/{{{config.mlflow_db},{config.prefect_db}}}",
        f"  Redis           {config.redis_url}  (Feast online store)",
        f"  MLflow          {stack.mlflow_url}  (tracking server + model registry)",
        f"  Prefect UI      {stack.prefect_api_url.removesuffix('/api')}"
        f"  (API {stack.prefect_api_url})",
    ]
    if PREFECT_WORKER in stack.pids:
        lines.append(
            f"  Prefect worker  pool {config.work_pool!r}, schedule {config.pipeline_cron!r}"
        )
    if API in stack.pids:
        lines += [
            f"  API             {stack.api_url}  (docs {stack.api_url}/docs, "
            f"metrics {stack.api_url}/metrics)",
            f"                  try: curl {stack.api_url}/recommendations/1",
        ]
    lines += [
        f"  logs            {config.logs_dir}",
        "",
        "Point reelrank at it (pipeline runs land in these servers, features in Redis):",
        f'  eval "$({command} env{state})"',
        f"  reelrank run --dataset {config.dataset}",
        "",
        "which sets:",
        *(
            f"  export {name}={shlex.quote(value)}"
            for name, value in service_env(config, f"<in {SECRETS_FILE}>").items()
        ),
        "",
        f"Status: {command} status{state}",
        f"Stop:   {stop}",
    ]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    defaults = StackConfig.__dataclass_fields__
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def state_dir_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--state-dir", type=Path, default=Path(".local-stack"))

    up = sub.add_parser("up", help="start the stack and wait until the API is ready")
    state_dir_arg(up)
    for name in (
        "pg_host", "pg_user", "pg_password", "mlflow_db", "prefect_db", "redis_url",
        "host", "dataset", "model_name", "work_pool", "pipeline_cron",
    ):  # fmt: skip
        up.add_argument("--" + name.replace("_", "-"), default=defaults[name].default)
    for name in ("pg_port", "mlflow_port", "prefect_port", "api_port", "worker_port"):
        up.add_argument("--" + name.replace("_", "-"), type=int, default=defaults[name].default)
    up.add_argument("--api-workers", type=int, default=1)
    up.add_argument(
        "--run-args",
        default="",
        help='extra `reelrank run` arguments, one string (e.g. "--users 300 --folds 2")',
    )
    up.add_argument(
        "--startup-timeout",
        type=float,
        default=defaults["startup_timeout_s"].default,
        help="seconds each server may take to answer (the Prefect server's first start "
        "migrates its database: a minute on a loaded 2-core machine)",
    )
    up.add_argument("--pipeline-timeout", type=float, default=1800.0)
    up.add_argument("--bin-dir", type=Path, default=Path(sys.executable).parent)
    up.add_argument("--no-pipeline", action="store_true", help="skip `reelrank run`")
    up.add_argument("--no-api", action="store_true", help="skip `reelrank serve`")
    up.add_argument("--worker", action="store_true", help="also deploy and start the worker")

    down = sub.add_parser("down", help="stop every process of the stack")
    state_dir_arg(down)
    down.add_argument("--drop-databases", action="store_true")
    down.add_argument("--flush-redis", action="store_true")

    status = sub.add_parser("status", help="show which services run")
    state_dir_arg(status)
    env = sub.add_parser("env", help="print `export` lines pointing reelrank at the stack")
    state_dir_arg(env)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = _parser().parse_args(argv)
    try:
        if args.command == "up":
            config = StackConfig(
                state_dir=args.state_dir,
                pg_host=args.pg_host,
                pg_port=args.pg_port,
                pg_user=args.pg_user,
                pg_password=args.pg_password,
                mlflow_db=args.mlflow_db,
                prefect_db=args.prefect_db,
                redis_url=args.redis_url,
                host=args.host,
                mlflow_port=args.mlflow_port,
                prefect_port=args.prefect_port,
                api_port=args.api_port,
                worker_port=args.worker_port,
                api_workers=args.api_workers,
                dataset=args.dataset,
                run_args=tuple(shlex.split(args.run_args)),
                model_name=args.model_name,
                work_pool=args.work_pool,
                pipeline_cron=args.pipeline_cron,
                startup_timeout_s=args.startup_timeout,
                pipeline_timeout_s=args.pipeline_timeout,
                bin_dir=args.bin_dir,
                run_pipeline=not args.no_pipeline,
                serve_api=not args.no_api,
                start_worker=args.worker,
            )
            stack = start_stack(config)
            print(summary(stack))
        elif args.command == "down":
            if not (Path(args.state_dir).resolve() / STATE_FILE).exists():
                print(f"nothing to stop: no local stack state in {Path(args.state_dir).resolve()}")
                return 0
            stop_stack(
                args.state_dir, drop_databases=args.drop_databases, flush_redis=args.flush_redis
            )
            print(f"stopped the local stack of {Path(args.state_dir).resolve()}")
        elif args.command == "status":
            for name, state in stack_status(args.state_dir).items():
                print(f"{name:15} {state}")
        elif args.command == "env":
            config = load_config(args.state_dir)
            key_file = config.state_dir / SECRETS_FILE
            key = key_file.read_text().strip().removeprefix("REELRANK_API_KEY=")
            for name, value in service_env(config, key).items():
                print(f"export {name}={shlex.quote(value)}")
    except LocalStackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

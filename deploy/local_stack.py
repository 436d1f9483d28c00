"""Run docker-compose.yml's services as local processes, for machines without Docker.

What runs comes from the compose file alone, translated by deploy/topology.py: the
ReelRank-image services (MLflow and Prefect servers, ``reelrank run`` once, optionally the
Prefect worker, ``reelrank serve``) with their compose commands and environment, pointed
at the Postgres and Redis already running here. This module prepares those two, starts
the services wave by wave (``depends_on``), waits for their healthchecks, and stops them.

Command line (``make up-local`` / ``make down-local``; scripts/local_stack.py)::

    python scripts/local_stack.py up [--dataset synthetic] [--state-dir .local-stack]
        [--run-args "--users 300 --items 200 --folds 2"] [--worker] [--*-port N]
    python scripts/local_stack.py status
    python scripts/local_stack.py env       # `eval "$(...)"` to point reelrank at the stack
    python scripts/local_stack.py down [--drop-databases] [--flush-redis]

From Python (the integration tests)::

    stack = start_stack(StackConfig(state_dir=tmp, mlflow_db="t_mlflow", run_args=(...), ...))
    stack.restart_api()
    stop_stack(stack.config.state_dir, drop_databases=True, flush_redis=True)

Processes run detached in their own sessions; their pids, logs and the stack's state
live under the state directory, so ``down`` works from another shell.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
import typing
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy.topology import (
    INFRASTRUCTURE,
    REPO_ROOT,
    SHELL_ENV_SERVICE,
    LocalService,
    LocalStackError,
    Plan,
    StackConfig,
    plan,
)

logger = logging.getLogger("reelrank.local_stack")

STATE_FILE = "stack.json"
SECRETS_FILE = "secrets.env"
ENTRY_POINT = REPO_ROOT / "scripts" / "local_stack.py"


@dataclass
class Stack:
    """A running local stack: its configuration, plan, environment and process ids."""

    config: StackConfig
    env: dict[str, str]  # the process environment of SHELL_ENV_SERVICE (the API)
    pids: dict[str, int]
    plan: Plan = field(repr=False)

    def _url(self, name: str, path: str = "") -> str:
        url = self.plan.services[name].url if name in self.plan.services else None
        if url is None:
            raise LocalStackError(f"{name} does not run in this stack")
        return url + path

    @property
    def api_url(self) -> str:
        return self._url("api")

    @property
    def mlflow_url(self) -> str:
        return self._url("mlflow")

    @property
    def prefect_api_url(self) -> str:
        return self._url("prefect-server", "/api")

    def restart(self, name: str) -> int:
        """Stop one long-running service and start it again; returns the new pid."""
        service = self.plan.services[name]
        _terminate(self.config, name, self.pids.pop(name, None))
        self.pids[name] = _spawn(self.config, service, self.env_of(service))
        _wait_ready(self.config, service, self.pids[name])
        return self.pids[name]

    def restart_api(self) -> int:
        """Stop the API process and start a fresh one; returns the new pid."""
        return self.restart("api")

    def env_of(self, service: LocalService) -> dict[str, str]:
        return process_env(self.config, service.env)

    def stop(self, *, drop_databases: bool = False, flush_redis: bool = False) -> None:
        stop_stack(self.config.state_dir, drop_databases=drop_databases, flush_redis=flush_redis)


def process_env(config: StackConfig, service_env: Mapping[str, str]) -> dict[str, str]:
    """The shell's environment without ReelRank/Prefect/MLflow settings, plus the service's."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REELRANK_", "PREFECT_", "MLFLOW_")) and k != "VIRTUAL_ENV"
    }
    env["PATH"] = f"{config.bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    # An isolated Prefect home: no interference with ~/.prefect; telemetry off.
    env["PREFECT_HOME"] = str(config.state_dir / "prefect-home")
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return env | dict(service_env) | dict(config.extra_env)


# ---------------------------------------------------------------------------
# Postgres and Redis (already running on this machine)
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


def ensure_databases(config: StackConfig, names: Sequence[str]) -> list[str]:
    """Create the databases that are missing; returns those created."""
    from psycopg2 import sql

    created = []
    conn = _pg_connect(config)
    try:
        with conn.cursor() as cur:
            for name in names:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                    created.append(name)
    finally:
        conn.close()
    return created


def drop_stack_databases(config: StackConfig, names: Sequence[str]) -> None:
    """Drop the databases (disconnecting any remaining sessions)."""
    from psycopg2 import sql

    conn = _pg_connect(config)
    try:
        with conn.cursor() as cur:
            for name in names:
                cur.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
    finally:
        conn.close()
    logger.info("dropped databases %s", ", ".join(names))


def _redis(config: StackConfig) -> Any:
    import redis

    return redis.Redis.from_url(config.redis_url, socket_connect_timeout=3)


def check_redis(config: StackConfig) -> None:
    import redis

    try:
        _redis(config).ping()
    except redis.RedisError as exc:
        raise LocalStackError(
            f"cannot reach Redis at {config.redis_url}: {exc}. Start it (e.g. `redis-server "
            '--daemonize yes --bind 127.0.0.1 --port 6379 --save ""`) or pass --redis-url.'
        ) from exc


# ---------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------
# Popen objects of the processes this interpreter started (to reap them).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _log_path(config: StackConfig, name: str) -> Path:
    return config.logs_dir / f"{name}.log"


def _pid_path(config: StackConfig, name: str) -> Path:
    return config.pids_dir / f"{name}.pid"


def _read_pid(path: Path) -> int | None:
    text = path.read_text().strip() if path.exists() else ""
    return int(text) if text.isdigit() else None


def log_tail(config: StackConfig, name: str, lines: int = 40) -> str:
    path = _log_path(config, name)
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _executable(config: StackConfig, argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """``argv`` with its program found in bin_dir, else on the process's PATH."""
    found = shutil.which(argv[0], path=env.get("PATH"))
    if found is None:
        raise LocalStackError(
            f"{argv[0]} not found in {config.bin_dir} nor on PATH: install the project into "
            "this venv (`make install`) or pass bin_dir / --bin-dir"
        )
    return [found, *argv[1:]]


def _spawn(config: StackConfig, service: LocalService, env: Mapping[str, str]) -> int:
    """Start a service detached in its own session, logging to logs/<name>.log."""
    argv = _executable(config, service.argv, env)
    config.logs_dir.mkdir(parents=True, exist_ok=True)
    config.pids_dir.mkdir(parents=True, exist_ok=True)
    with _log_path(config, service.name).open("ab") as log:
        log.write(f"\n=== {time.strftime('%F %T')} $ {shlex.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _pid_path(config, service.name).write_text(str(proc.pid))
    _CHILDREN[proc.pid] = proc
    logger.info("started %s (pid %d): %s", service.name, proc.pid, shlex.join(argv))
    return proc.pid


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


def _group_alive(pgid: int) -> bool:
    if pgid in _CHILDREN:
        _CHILDREN[pgid].poll()  # reap a zombie leader; other members may still be alive
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _terminate(config: StackConfig, name: str, pid: int | None, timeout_s: float = 15.0) -> None:
    """SIGTERM the process group of ``pid`` (default: its pid file), SIGKILL after ``timeout_s``."""
    pid_file = _pid_path(config, name)
    pid = _read_pid(pid_file) if pid is None else pid
    if pid is not None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and _group_alive(pid):
                time.sleep(0.2)
            if not _group_alive(pid):
                break
            logger.warning("%s (pid %d) ignored SIGTERM; killing it", name, pid)
        if pid in _CHILDREN:
            _CHILDREN.pop(pid).wait(timeout=5)
        logger.info("stopped %s (pid %d)", name, pid)
    pid_file.unlink(missing_ok=True)


def _probe(service: LocalService, env: Mapping[str, str]) -> str | None:
    """None when the service passes its healthcheck, else what failed."""
    if service.health_url is not None:
        try:
            with urllib.request.urlopen(service.health_url, timeout=3) as resp:
                return None if 200 <= resp.status < 300 else f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}: {exc.read()[:300].decode(errors='replace')}"
        except (urllib.error.URLError, OSError) as exc:
            return str(exc)
    if service.health_argv is not None:
        program = shutil.which(service.health_argv[0], path=env.get("PATH"))
        check = [program or service.health_argv[0], *service.health_argv[1:]]
        try:
            done = subprocess.run(
                check, cwd=REPO_ROOT, env=dict(env), capture_output=True, check=False, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return str(exc)
        return None if done.returncode == 0 else f"exit {done.returncode}"
    return None


def _wait_ready(config: StackConfig, service: LocalService, pid: int) -> None:
    """Until the service passes its healthcheck, or, run once, exits 0."""
    name, what = service.name, service.health_url or shlex.join(service.health_argv or ())
    timeout_s = config.pipeline_timeout_s if service.one_shot else config.startup_timeout_s
    env = process_env(config, service.env)
    deadline, last = time.monotonic() + timeout_s, "no answer"
    while time.monotonic() < deadline:
        if service.one_shot or not _alive(pid):
            try:
                code = _CHILDREN[pid].wait(timeout=1) if pid in _CHILDREN else None
            except subprocess.TimeoutExpired:
                continue
            _CHILDREN.pop(pid, None)
            _pid_path(config, name).unlink(missing_ok=True)
            if service.one_shot and code == 0:
                return
            raise LocalStackError(
                f"{name} exited with code {code}: {shlex.join(service.argv)}\n"
                f"Log ({_log_path(config, name)}):\n{log_tail(config, name)}"
            )
        last = _probe(service, env) or ""
        if not last:
            return
        time.sleep(0.5)
    if service.one_shot:
        _terminate(config, name, pid)
    raise LocalStackError(
        f"{name} was not {'done' if service.one_shot else 'healthy'} within {timeout_s:.0f}s "
        f"({what or 'exit'}; last: {last}). Log ({_log_path(config, name)}):\n"
        f"{log_tail(config, name)}"
    )


# ---------------------------------------------------------------------------
# the stack
# ---------------------------------------------------------------------------
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


def _read_api_key(config: StackConfig) -> str:
    path = config.state_dir / SECRETS_FILE
    return path.read_text().strip().removeprefix("REELRANK_API_KEY=") if path.exists() else ""


def _refuse_if_running(config: StackConfig) -> None:
    if not (config.state_dir / STATE_FILE).exists() or not config.pids_dir.exists():
        return
    if any((pid := _read_pid(p)) and _alive(pid) for p in config.pids_dir.glob("*.pid")):
        raise LocalStackError(
            f"a stack is already running from {config.state_dir}: run "
            f"`python scripts/local_stack.py down --state-dir {config.state_dir}` first"
        )


def start_stack(config: StackConfig) -> Stack:
    """Start the compose services wave by wave and wait for each to be ready.

    Raises:
        LocalStackError: a precondition is missing or a service failed; everything
            this call started has been stopped again.
    """
    _refuse_if_running(config)
    config.state_dir.mkdir(parents=True, exist_ok=True)
    stack_plan = plan(config, secrets={"REELRANK_API_KEY": _load_or_create_api_key(config)})
    for directory in stack_plan.directories:
        directory.mkdir(parents=True, exist_ok=True)
    check_redis(config)
    created = ensure_databases(config, stack_plan.databases)
    logger.info("databases ready (created: %s)", ", ".join(created) or "none")
    state = {
        "config": config.to_json(),
        "services": [name for wave in stack_plan.waves for name in wave],
        "one_shot": [n for n, s in stack_plan.services.items() if s.one_shot],
        "databases": list(stack_plan.databases),
    }
    (config.state_dir / STATE_FILE).write_text(json.dumps(state, indent=2))
    shell = stack_plan.services.get(SHELL_ENV_SERVICE)
    env = process_env(config, shell.env if shell else stack_plan.shell_env)
    stack = Stack(config=config, env=env, pids={}, plan=stack_plan)
    try:
        for wave in stack_plan.waves:
            for name in wave:
                service = stack_plan.services[name]
                stack.pids[name] = _spawn(config, service, stack.env_of(service))
            for name in wave:
                _wait_ready(config, stack_plan.services[name], stack.pids[name])
                if stack_plan.services[name].one_shot:
                    del stack.pids[name]
    except BaseException:
        logger.error("start failed; stopping what was started")
        stop_stack(config.state_dir)
        raise
    return stack


def _load_state(state_dir: Path | str) -> dict[str, Any]:
    path = Path(state_dir).resolve() / STATE_FILE
    if not path.exists():
        raise LocalStackError(f"no local stack state at {path}: nothing was started there")
    state: dict[str, Any] = json.loads(path.read_text())
    return state


def load_config(state_dir: Path | str) -> StackConfig:
    """The configuration of the stack started from ``state_dir``."""
    return StackConfig.from_json(_load_state(state_dir)["config"])


def stop_stack(
    state_dir: Path | str, *, drop_databases: bool = False, flush_redis: bool = False
) -> None:
    """Stop every process of the stack at ``state_dir``, in reverse start order.

    Args:
        state_dir: the stack's state directory.
        drop_databases: also drop its Postgres databases.
        flush_redis: also empty its Redis database (the number in ``redis_url``).
    """
    state = _load_state(state_dir)
    config = StackConfig.from_json(state["config"])
    started = list(reversed(state["services"]))
    others = sorted({p.stem for p in config.pids_dir.glob("*.pid")} - set(started))
    for name in [*others, *started]:
        _terminate(config, name, None)
    if drop_databases:
        drop_stack_databases(config, state["databases"])
    if flush_redis:
        _redis(config).flushdb()
        logger.info("flushed Redis %s", config.redis_url)


def stack_status(state_dir: Path | str) -> dict[str, str]:
    """Name -> 'running (pid N)' / 'stopped' for each long-running service."""
    state = _load_state(state_dir)
    config = StackConfig.from_json(state["config"])
    status = {}
    for name in state["services"]:
        if name not in state["one_shot"]:
            pid = _read_pid(_pid_path(config, name))
            status[name] = f"running (pid {pid})" if pid and _alive(pid) else "stopped"
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


def _exports(env: Mapping[str, str]) -> list[str]:
    return [f"export {name}={shlex.quote(value)}" for name, value in env.items()]


def summary(stack: Stack) -> str:
    """What ``up`` prints: every compose service and where it runs, and how to use it."""
    config, stack_plan = stack.config, stack.plan
    command = f"{_relative(Path(sys.executable))} {_relative(ENTRY_POINT)}"
    state = f" --state-dir {shlex.quote(str(_relative(config.state_dir)))}"
    lines = [f"ReelRank local stack is up ({_relative(config.compose_file)}):"]
    for name in stack_plan.infrastructure:
        lines.append(f"  {name:15} {INFRASTRUCTURE[name].where(config)}  (running here)")
    if stack_plan.databases:
        lines.append(f"  {'databases':15} {', '.join(stack_plan.databases)}")
    for name in (n for wave in stack_plan.waves for n in wave):
        service = stack_plan.services[name]
        where = service.url or ""
        how = "ran once" if service.one_shot else f"pid {stack.pids.get(name)}"
        lines.append(f"  {name:15} {where}{'  ' if where else ''}({how})")
    lines += [f"  {name:15} {reason}" for name, reason in stack_plan.skipped.items()]
    if "api" in stack.pids:
        lines.append(f"  try: curl {stack.api_url}/recommendations/1   (docs {stack.api_url}/docs)")
    redacted = {**stack_plan.shell_env, "REELRANK_API_KEY": f"<in {SECRETS_FILE}>"}
    stop = f"{command} down{state} [--drop-databases] [--flush-redis]"
    if config.state_dir == StackConfig().state_dir:
        stop = f"make down-local  (or {stop})"
    lines += [
        f"  logs            {config.logs_dir}",
        "",
        "Point reelrank at it (pipeline runs land in these servers, features in Redis):",
        f'  eval "$({command} env{state})"',
        f"  reelrank run --dataset {config.dataset}",
        "",
        "which sets:",
        *(f"  {line}" for line in _exports(redacted)),
        "",
        f"Status: {command} status{state}",
        f"Stop:   {stop}",
    ]
    return "\n".join(lines)


#: ``up`` options, one per StackConfig field (``--pg-host`` sets ``pg_host``).
_UP_FIELDS = (
    "pg_host", "pg_port", "pg_user", "pg_password", "mlflow_db", "prefect_db", "redis_url",
    "host", "mlflow_port", "prefect_port", "api_port", "worker_port", "api_workers",
    "dataset", "model_name", "work_pool", "pipeline_cron", "bin_dir", "compose_file",
)  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    hints = typing.get_type_hints(StackConfig)
    defaults = StackConfig(state_dir=Path(".local-stack"))
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    commands = {
        "up": "start the stack and wait until every service is ready",
        "down": "stop every process of the stack",
        "status": "show which services run",
        "env": "print `export` lines pointing reelrank at the stack",
    }
    subs = {name: sub.add_parser(name, help=text) for name, text in commands.items()}
    for p in subs.values():
        p.formatter_class = argparse.ArgumentDefaultsHelpFormatter
        p.add_argument(
            "--state-dir", type=Path, default=Path(".local-stack"), help="pids, logs, volumes"
        )
    up = subs["up"]
    for name in _UP_FIELDS:
        kind = {int: int, Path: Path}.get(hints[name], str)
        up.add_argument(
            "--" + name.replace("_", "-"),
            type=kind,
            default=getattr(defaults, name),
            help=f"StackConfig.{name}",
        )
    up.add_argument(
        "--run-args",
        default="",
        help='extra `reelrank run` arguments, one string (e.g. "--users 300 --folds 2")',
    )
    up.add_argument(
        "--startup-timeout",
        type=float,
        default=defaults.startup_timeout_s,
        help="seconds each server may take to pass its healthcheck (the Prefect server's "
        "first start migrates its database: a minute on a loaded 2-core machine)",
    )
    up.add_argument("--pipeline-timeout", type=float, default=defaults.pipeline_timeout_s)
    up.add_argument("--no-pipeline", action="store_true", help="skip `reelrank run`")
    up.add_argument("--no-api", action="store_true", help="skip `reelrank serve`")
    up.add_argument("--worker", action="store_true", help="also deploy and start the worker")
    up.add_argument(
        "--ray",
        action="store_true",
        help="also start the Ray head and worker; the pipeline and worker then use the Ray engine",
    )
    subs["down"].add_argument("--drop-databases", action="store_true")
    subs["down"].add_argument("--flush-redis", action="store_true")
    return parser


def _config_from(args: argparse.Namespace) -> StackConfig:
    return StackConfig(
        state_dir=args.state_dir,
        **{name: getattr(args, name) for name in _UP_FIELDS},
        run_args=tuple(shlex.split(args.run_args)),
        startup_timeout_s=args.startup_timeout,
        pipeline_timeout_s=args.pipeline_timeout,
        run_pipeline=not args.no_pipeline,
        serve_api=not args.no_api,
        start_worker=args.worker,
        start_ray=args.ray,
    )


def _run(args: argparse.Namespace) -> None:
    if args.command == "up":
        print(summary(start_stack(_config_from(args))))
    elif args.command == "down":
        if not (Path(args.state_dir).resolve() / STATE_FILE).exists():
            print(f"nothing to stop: no local stack state in {Path(args.state_dir).resolve()}")
            return
        stop_stack(args.state_dir, drop_databases=args.drop_databases, flush_redis=args.flush_redis)
        print(f"stopped the local stack of {Path(args.state_dir).resolve()}")
    elif args.command == "status":
        for name, state in stack_status(args.state_dir).items():
            print(f"{name:15} {state}")
    elif args.command == "env":
        config = load_config(args.state_dir)
        shell_env = plan(config, secrets={"REELRANK_API_KEY": _read_api_key(config)}).shell_env
        print("\n".join(_exports(shell_env)))


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        _run(_parser().parse_args(argv))
    except LocalStackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0

"""docker-compose.yml translated into local processes: the one description of the topology.

``docker-compose.yml`` is the only list of services. :func:`plan` reads it and turns each
service into what runs on this machine; ``deploy/local_stack.py`` starts the result
(``make up-local``). Adding a service to the compose file adds it to the local stack.

How a compose service is translated:

* built from this repository (it has ``build:``, the ReelRank image): its ``command`` runs
  with its ``environment``, executables from this venv, after these rewrites of every
  argument and value (:func:`_rules`):

  - URLs of an infrastructure service -> the server already running here (INFRASTRUCTURE:
    Postgres with the local credentials and the stack's database names, the stack's Redis);
  - ``<service>:<port>`` of a ReelRank service, and ``127.0.0.1:<port>`` / ``localhost:<port>``
    of its own -> ``<host>:<local port>`` (LOCAL_PORTS; unlisted services keep their port);
  - its own port written alone (``--port 5000``) -> its local port; ``0.0.0.0`` -> ``host``;
  - paths under its volume mounts (``/data``, ``/mlartifacts``) -> under the state directory
    (volumes) or the repository (bind mounts);
  - OPTION_OVERRIDES and EXTRA_ARGS change or extend a few commands;

* infrastructure images (INFRASTRUCTURE: postgres, redis) -> the servers running here;
* SKIPPED services do not run locally (``up`` prints why); any other image is an error;
* ``depends_on`` gives the start order (waves of services started together) and the
  ``healthcheck`` what to wait for: its HTTP URL is polled, or else its command is run; a
  service that runs once (``restart: "no"``) is waited for until it exits.

Compose variables (``${VAR:-default}``) come from VARIABLES (the stack's configuration) and
otherwise keep compose's default, never from the shell or a ``.env`` file: a stack is
reproducible from its StackConfig.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import shlex
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import SplitResult, quote, urlsplit

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class LocalStackError(RuntimeError):
    """A service of the local stack failed to start, or a precondition is missing."""


@dataclass(frozen=True)
class StackConfig:
    """Where and how to run the local stack; everything else comes from docker-compose.yml.

    Attributes:
        state_dir: pids, logs, the stack's volumes (``/data`` -> ``<state_dir>/data``).
        pg_host, pg_port, pg_user, pg_password: the running Postgres (trust auth needs no
            password); it replaces compose's ``postgres`` service.
        mlflow_db, prefect_db: the stack's databases there (compose's MLFLOW_DB, PREFECT_DB).
        redis_url: replaces compose's ``redis`` (pick a database number for isolation).
        host: address the servers bind to and are reached at.
        mlflow_port, prefect_port, api_port, worker_port: local ports (LOCAL_PORTS).
        api_workers, dataset, model_name, work_pool, pipeline_cron: compose variables.
        run_args: extra arguments of ``reelrank run`` (e.g. a small synthetic world:
            ``("--users", "300", "--items", "200", "--folds", "2")``).
        api_key: admin key of the API; a random one is generated when None.
        run_pipeline / start_worker / serve_api / start_ray: which optional services run
            (ENABLED_BY); with start_ray the pipeline and the worker use the Ray engine.
        startup_timeout_s: budget for each server to pass its healthcheck.
        pipeline_timeout_s: budget for each service that runs once (``reelrank run``).
        bin_dir: where the mlflow, prefect and reelrank executables are (this venv).
        extra_env: added to every process's environment (after the translated one).
        compose_file: the topology to run.
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
    start_ray: bool = False
    work_pool: str = "reelrank-local"
    pipeline_cron: str = "0 3 * * *"
    startup_timeout_s: float = 240.0
    pipeline_timeout_s: float = 1800.0
    bin_dir: Path = field(default_factory=lambda: Path(sys.executable).parent)
    extra_env: Mapping[str, str] = field(default_factory=dict)
    compose_file: Path = COMPOSE_FILE

    def __post_init__(self) -> None:
        for name in (self.mlflow_db, self.prefect_db):
            if not _DB_NAME.match(name):
                raise LocalStackError(
                    f"invalid database name {name!r}: use letters, digits and _ "
                    "(at most 63 characters, not starting with a digit)"
                )
        for attr in ("state_dir", "compose_file"):
            object.__setattr__(self, attr, Path(getattr(self, attr)).resolve())
        object.__setattr__(self, "bin_dir", Path(self.bin_dir))
        object.__setattr__(self, "run_args", tuple(str(a) for a in self.run_args))

    def local_path(self, container_path: str) -> Path:
        """Where a path of a volume mounted in a container lives here."""
        return self.state_dir / container_path.strip("/")

    @property
    def data_dir(self) -> Path:
        return self.local_path("/data")

    @property
    def artifacts_dir(self) -> Path:
        return self.local_path("/mlartifacts")

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def pids_dir(self) -> Path:
        return self.state_dir / "pids"

    def to_json(self) -> dict[str, Any]:
        """JSON-safe fields; the API key is kept in secrets.env (0600), never here."""
        data = dataclasses.asdict(self)
        for name in ("state_dir", "bin_dir", "compose_file"):
            data[name] = str(data[name])
        data.update(extra_env=dict(self.extra_env), run_args=list(self.run_args), api_key=None)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StackConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# ---------------------------------------------------------------------------
# the translation table
# ---------------------------------------------------------------------------
#: Compose variables as the stack sets them; the others keep compose's default.
VARIABLES: Mapping[str, Callable[[StackConfig], str]] = {
    "REELRANK_DATASET": lambda c: c.dataset,
    "REELRANK_MODEL_NAME": lambda c: c.model_name,
    "REELRANK_API_WORKERS": lambda c: str(c.api_workers),
    "PREFECT_WORK_POOL": lambda c: c.work_pool,
    "PIPELINE_CRON": lambda c: c.pipeline_cron,
    "MLFLOW_DB": lambda c: c.mlflow_db,
    "PREFECT_DB": lambda c: c.prefect_db,
    # Only inside Postgres URLs, whose credentials INFRASTRUCTURE replaces.
    "POSTGRES_PASSWORD": lambda c: "replaced-by-the-local-credentials",
    "MLFLOW_HOST_PORT": lambda c: str(c.mlflow_port),
    "PREFECT_HOST_PORT": lambda c: str(c.prefect_port),
    "API_HOST_PORT": lambda c: str(c.api_port),
    "REELRANK_ENGINE": lambda c: "ray" if c.start_ray else "local",
}
#: StackConfig field holding a service's port here; unlisted services keep their port.
LOCAL_PORTS: Mapping[str, str] = {
    "mlflow": "mlflow_port",
    "prefect-server": "prefect_port",
    "prefect-worker": "worker_port",
    "api": "api_port",
}
#: Option values changed here: one MLflow server worker is enough on a small machine, and
#: the two Ray nodes share its cores (one CPU each, a smaller object store).
OPTION_OVERRIDES: Mapping[str, Mapping[str, str]] = {
    "mlflow": {"--workers": "1"},
    "ray-head": {"--num-cpus": "1", "--object-store-memory": "250000000"},
    "ray-worker": {"--num-cpus": "1", "--object-store-memory": "250000000"},
}
#: StackConfig field whose arguments are appended to a service's command.
EXTRA_ARGS: Mapping[str, str] = {"pipeline": "run_args"}
#: StackConfig flag that switches a service on (unlisted services always run).
ENABLED_BY: Mapping[str, str] = {
    "pipeline": "run_pipeline",
    "prefect-worker": "start_worker",
    "api": "serve_api",
    "ray-head": "start_ray",
    "ray-worker": "start_ray",
}
#: The service whose environment ``env`` prints and ``Stack.env`` holds (the fullest one).
SHELL_ENV_SERVICE = "api"


class Infrastructure(NamedTuple):
    """A server already running on this machine, in place of a compose service."""

    where: Callable[[StackConfig], str]  # for the summary
    rewrite: Callable[[SplitResult, StackConfig], str]  # a compose URL pointing at it


def _pg_netloc(c: StackConfig) -> str:
    auth = c.pg_user if c.pg_password is None else f"{c.pg_user}:{quote(c.pg_password, safe='')}"
    return f"{auth}@{c.pg_host}:{c.pg_port}"


INFRASTRUCTURE: Mapping[str, Infrastructure] = {
    "postgres": Infrastructure(
        where=lambda c: f"postgresql://{_pg_netloc(c)}",
        rewrite=lambda url, c: url._replace(netloc=_pg_netloc(c)).geturl(),
    ),
    "redis": Infrastructure(where=lambda c: c.redis_url, rewrite=lambda url, c: c.redis_url),
}
#: Services not run locally, with the reason ``up`` prints.
SKIPPED: Mapping[str, str] = {
    "prometheus": "not run locally; the API still serves its /metrics",
    "grafana": "not run locally (it reads prometheus)",
}


# ---------------------------------------------------------------------------
# the plan: what runs here
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class LocalService:
    """One compose service as a local process.

    Attributes:
        argv: the translated compose command (executable resolved later, on PATH).
        env: the translated compose environment (the process gets more, see local_stack).
        depends_on: compose services it starts after (those not run here count as met).
        one_shot: runs to completion (``restart: "no"``) instead of staying up.
        health_url: polled until it answers 2xx (an HTTP healthcheck).
        health_argv: run until it exits 0 (any other healthcheck), when no URL.
        url: ``http://<host>:<port>`` it listens on, when it has a port.
    """

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    depends_on: tuple[str, ...] = ()
    one_shot: bool = False
    health_url: str | None = None
    health_argv: tuple[str, ...] | None = None
    url: str | None = None


@dataclass(frozen=True)
class Plan:
    """The local stack of one compose file.

    Attributes:
        services: the services to start, by name.
        waves: their start order; the services of one wave start together.
        skipped: services not started here, with the reason.
        infrastructure: compose services replaced by servers running here.
        databases: Postgres databases the services use (created before the start).
        directories: local directories of their volumes.
        shell_env: the translated environment of SHELL_ENV_SERVICE.
    """

    services: Mapping[str, LocalService]
    waves: tuple[tuple[str, ...], ...]
    skipped: Mapping[str, str]
    infrastructure: tuple[str, ...]
    databases: tuple[str, ...]
    directories: tuple[Path, ...]
    shell_env: Mapping[str, str]


def load_compose(path: Path) -> dict[str, Any]:
    """The compose file as written (variables not yet interpolated)."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise LocalStackError(f"cannot read the compose file {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        raise LocalStackError(f"{path} has no services")
    return data


def plan(
    config: StackConfig,
    compose: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
) -> Plan:
    """Translate ``compose`` (default: ``config.compose_file``) for this machine.

    Args:
        config: the stack's configuration.
        compose: a parsed compose file, as written.
        secrets: compose variables not kept in the configuration (REELRANK_API_KEY).
    """
    compose = load_compose(config.compose_file) if compose is None else compose
    variables = {name: value(config) for name, value in VARIABLES.items()} | dict(secrets or {})
    ours: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    infrastructure = []
    for name, raw in compose["services"].items():
        if name in INFRASTRUCTURE:
            infrastructure.append(name)
        elif name in SKIPPED:
            skipped[name] = SKIPPED[name]
        elif "build" in raw:
            ours[name] = _interpolated(name, raw, variables)
        else:
            raise LocalStackError(
                f"service {name!r} runs image {raw.get('image')!r}, not the ReelRank image: "
                "map it in INFRASTRUCTURE or SKIPPED of deploy/topology.py"
            )
    ports = {n: _ports(n, svc, config) for n, svc in ours.items()}
    translated = {n: _translate(n, svc, ports, config) for n, svc in ours.items()}
    for name, flag in ENABLED_BY.items():
        if name in translated and not getattr(config, flag):
            skipped[name] = f"not started (StackConfig.{flag} is false)"
    services = {n: s for n, s in translated.items() if n not in skipped}
    return Plan(
        services=services,
        waves=_waves(services),
        skipped=skipped,
        infrastructure=tuple(infrastructure),
        databases=tuple(dict.fromkeys(_postgres_databases(ours.values()))),
        directories=tuple(dict.fromkeys(p for n in services for p in _volumes(ours[n], config))),
        shell_env=translated[SHELL_ENV_SERVICE].env if SHELL_ENV_SERVICE in translated else {},
    )


# ---------------------------------------------------------------------------
# the translator
# ---------------------------------------------------------------------------
_VAR = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)
_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^\s'\"]+")
_HTTP_URL = re.compile(r"https?://[^\s'\"]+")


class MissingVariableError(ValueError):
    """A ``${VAR:?message}`` whose variable is unset or empty."""


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose interpolation of one string (``$$`` is a literal ``$``)."""

    def one(match: re.Match[str]) -> str:
        name = match["braced"] or match["bare"]
        op, arg = match["op"], match["arg"] or ""
        value = env.get(name)
        if op in (":?", "?"):
            if value is None or (op == ":?" and not value):
                raise MissingVariableError(f"{name}: {arg}")
            return value
        if op in (":-", "-"):
            unset = not value if op == ":-" else value is None
            return interpolate(arg, env) if unset else str(value)
        if op in (":+", "+"):
            present = bool(value) if op == ":+" else value is not None
            return interpolate(arg, env) if present else ""
        return value or ""

    return "$".join(_VAR.sub(one, part) for part in text.split("$$"))


def interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    """:func:`interpolate` applied to every string of a parsed YAML tree."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, Mapping):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(value, env) for value in node]
    return node


def _interpolated(name: str, raw: Mapping[str, Any], variables: Mapping[str, str]) -> Any:
    try:
        return interpolate_tree(copy.deepcopy(dict(raw)), variables)
    except MissingVariableError as exc:
        raise LocalStackError(
            f"service {name!r} needs the variable {exc}; set it in VARIABLES of deploy/topology.py"
        ) from exc


def _words(value: Any) -> list[str]:
    """A compose command or healthcheck test as a list of words."""
    return shlex.split(value) if isinstance(value, str) else [str(word) for word in value or ()]


def _container_port(svc: Mapping[str, Any]) -> int | None:
    """The port a service listens on: its first published port, else its healthcheck's."""
    for entry in svc.get("ports") or ():
        target = entry["target"] if isinstance(entry, Mapping) else str(entry).rsplit(":", 1)[-1]
        return int(str(target).split("/")[0])
    test = " ".join(_words((svc.get("healthcheck") or {}).get("test")))
    ports = [urlsplit(url).port for url in _HTTP_URL.findall(test)]
    return next((port for port in ports if port), None)


def _ports(name: str, svc: Mapping[str, Any], config: StackConfig) -> tuple[int, int] | None:
    """(port in the container, port here) of a service that listens."""
    inside = _container_port(svc)
    if inside is None:
        return None
    here = int(getattr(config, LOCAL_PORTS[name])) if name in LOCAL_PORTS else inside
    return inside, here


def _mounts(svc: Mapping[str, Any], config: StackConfig) -> dict[str, Path]:
    """Container path -> local path of each volume mount of a service."""
    result = {}
    for entry in svc.get("volumes") or ():
        if isinstance(entry, Mapping):
            source, target = str(entry.get("source", "")), str(entry["target"])
        else:
            parts = str(entry).split(":")
            source, target = (parts[0], parts[1]) if len(parts) > 1 else ("", parts[0])
        if source.startswith((".", "/", "~")):  # bind mount: a path of the repository
            result[target] = (config.compose_file.parent / source).resolve()
        else:  # a volume: a directory of the stack
            result[target] = config.local_path(target)
    return result


def _volumes(svc: Mapping[str, Any], config: StackConfig) -> list[Path]:
    return [p for p in _mounts(svc, config).values() if p.is_relative_to(config.state_dir)]


Rule = tuple[re.Pattern[str], str]
Ports = Mapping[str, tuple[int, int] | None]


def _rules(name: str, svc: Mapping[str, Any], ports: Ports, config: StackConfig) -> list[Rule]:
    """The rewrites of one service's arguments and values (see the module docstring)."""
    host = config.host
    rules: list[Rule] = []
    for other, pair in ports.items():
        if pair is not None:  # its listening port: the local one
            hosts = re.escape(other) + (r"|127\.0\.0\.1|localhost" if other == name else "")
            rules.append(
                (re.compile(rf"(?<![\w.-])(?:{hosts}):{pair[0]}(?!\d)"), f"{host}:{pair[1]}")
            )
        rules.append((re.compile(rf"(?<![\w.-]){re.escape(other)}:(?=\d)"), f"{host}:"))
    if (pair := ports[name]) is not None:
        rules.append((re.compile(rf"(?<![\w.:/-]){pair[0]}(?![\w.:/-])"), str(pair[1])))
    rules.append((re.compile(r"(?<![\w.])0\.0\.0\.0(?![\w.])"), host))
    for target, local in _mounts(svc, config).items():
        rules.append((re.compile(rf"(?<![\w./-]){re.escape(target)}(?![\w.-])"), str(local)))
    return rules


def _rewrite(text: str, rules: list[Rule], config: StackConfig) -> str:
    """Apply the infrastructure URL rewrites, then ``rules``, to one string."""

    def infrastructure(match: re.Match[str]) -> str:
        url = urlsplit(match[0])
        server = INFRASTRUCTURE.get(url.hostname or "")
        return server.rewrite(url, config) if server else match[0]

    text = _URL.sub(infrastructure, text)
    for pattern, replacement in rules:
        text = pattern.sub(replacement.replace("\\", "\\\\"), text)  # a literal replacement
    return text


def _with_overrides(name: str, argv: list[str], config: StackConfig) -> list[str]:
    """OPTION_OVERRIDES and EXTRA_ARGS applied to a translated command."""
    overrides = OPTION_OVERRIDES.get(name, {})
    result = []
    for i, word in enumerate(argv):
        option = word.split("=", 1)[0]
        if option in overrides and "=" in word:
            word = f"{option}={overrides[option]}"
        elif i > 0 and argv[i - 1] in overrides:
            word = overrides[argv[i - 1]]
        result.append(word)
    if name in EXTRA_ARGS:
        result += [str(arg) for arg in getattr(config, EXTRA_ARGS[name])]
    return result


def _health(
    svc: Mapping[str, Any], rewrite: Callable[[str], str]
) -> tuple[str | None, tuple[str, ...] | None]:
    """What to wait for: (URL to poll, None), (None, command to run) or (None, None)."""
    check = svc.get("healthcheck") or {}
    test = check.get("test")
    if check.get("disable") or not test or test == ["NONE"]:
        return None, None
    words = _words(test)
    argv = ["sh", "-c", test] if isinstance(test, str) else words[1:]
    if words[0] == "CMD-SHELL":
        argv = ["sh", "-c", words[1]]
    urls = _HTTP_URL.findall(" ".join(argv))
    if urls:
        return rewrite(urls[0]), None
    return None, tuple(rewrite(word) for word in argv)


def _translate(
    name: str, svc: Mapping[str, Any], ports: Ports, config: StackConfig
) -> LocalService:
    """One ReelRank-image service (interpolated) as a local process."""
    rules = _rules(name, svc, ports, config)

    def rewrite(text: str) -> str:
        return _rewrite(text, rules, config)

    if svc.get("command") is None:
        raise LocalStackError(f"service {name!r} has no command: write it in the compose file")
    environment = svc.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    health_url, health_argv = _health(svc, rewrite)
    return LocalService(
        name=name,
        argv=tuple(_with_overrides(name, [rewrite(w) for w in _words(svc["command"])], config)),
        env={key: rewrite(str(value)) for key, value in environment.items()},
        depends_on=tuple(svc.get("depends_on") or ()),
        one_shot=svc.get("restart") == "no",
        health_url=health_url,
        health_argv=health_argv,
        url=f"http://{config.host}:{pair[1]}" if (pair := ports[name]) else None,
    )


def _waves(services: Mapping[str, LocalService]) -> tuple[tuple[str, ...], ...]:
    """Start order from depends_on; dependencies not started here count as met."""
    done: set[str] = set()
    waves = []
    while len(done) < len(services):
        wave = tuple(
            name
            for name, svc in services.items()
            if name not in done and all(d in done or d not in services for d in svc.depends_on)
        )
        if not wave:
            raise LocalStackError(f"depends_on has a cycle among {sorted(set(services) - done)}")
        waves.append(wave)
        done.update(wave)
    return tuple(waves)


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def _postgres_databases(services: Any) -> Iterator[str]:
    """Database names of the compose services' Postgres URLs (after interpolation)."""
    for text in _strings(list(services)):
        for match in _URL.finditer(text):
            url = urlsplit(match[0])
            if url.hostname == "postgres" and url.path.strip("/"):
                yield url.path.strip("/")

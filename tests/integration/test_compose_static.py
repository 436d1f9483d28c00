"""Static proof of the docker-compose topology: no Docker engine, no services.

The compose file must validate against the Compose Specification schema (vendored
in compose-spec.json, see compose-spec.README.md), and agree with the code and the
other deployment files: every REELRANK_* variable is a setting, every command is a
real command with real options, ports and service names match Prometheus, Grafana,
the Dockerfile and the API settings, every variable is documented in .env.example.
The compose file is also the only description of the local-process stack (``make
up-local``): the last section tests deploy/topology.py, which translates it, on the real
file and on small compose snippets.
"""

from __future__ import annotations

import copy
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from jsonschema import Draft7Validator

from deploy import topology
from deploy.local_stack import Stack, _config_from, _parser, summary
from deploy.topology import (
    LocalStackError,
    MissingVariableError,
    StackConfig,
    interpolate,
    interpolate_tree,
)

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROMETHEUS_FILE = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
SCHEMA_FILE = HERE / "compose-spec.json"

EXPECTED_SERVICES = {
    "postgres",
    "redis",
    "mlflow",
    "prefect-server",
    "prefect-worker",
    "pipeline",
    "api",
    "prometheus",
    "grafana",
    "ray-head",
    "ray-worker",
}
ONE_SHOT_SERVICES = {"pipeline"}
APP_SERVICES = ("pipeline", "prefect-worker", "api")  # run ReelRank code
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY", re.IGNORECASE)
# Sub-commands of third-party CLIs that compose may run (longest prefix wins).
KNOWN_TOOL_COMMANDS = {
    ("prefect", "server", "start"),
    ("prefect", "work-pool", "create"),
    ("prefect", "worker", "start"),
    ("mlflow", "server"),
    ("ray", "start"),
}

# ---------------------------------------------------------------------------
# compose variable interpolation: deploy/topology.py's (the launcher's), plus this
# ---------------------------------------------------------------------------
_VAR = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def variables_in(text: str) -> set[str]:
    """Variable names a compose string references (nested defaults included)."""
    names = set()
    for part in text.split("$$"):
        for match in _VAR.finditer(part):
            names.add(match["braced"] or match["bare"])
            if match["arg"]:
                names |= variables_in(match["arg"])
    return names


def walk_strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from walk_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk_strings(value)


def parse_dotenv(path: Path) -> dict[str, str]:
    values = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: line without '=': {raw!r}"
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def raw_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def example_env() -> dict[str, str]:
    return parse_dotenv(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def filled_env(example_env: dict[str, str]) -> dict[str, str]:
    """.env.example with every empty (secret) value filled by a strong dummy."""
    return {
        key: value or f"{key.lower()}-Dummy-0123456789abcdef" for key, value in example_env.items()
    }


@pytest.fixture(scope="module")
def compose(raw_compose: dict[str, Any], filled_env: dict[str, str]) -> dict[str, Any]:
    return interpolate_tree(raw_compose, filled_env)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text())


@pytest.fixture(scope="module")
def prometheus() -> dict[str, Any]:
    return yaml.safe_load(PROMETHEUS_FILE.read_text())


# ---------------------------------------------------------------------------
# helpers over the compose model
# ---------------------------------------------------------------------------
def env_of(service: Mapping[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: str(value) for key, value in environment.items()}


def commands_of(service: Mapping[str, Any]) -> list[list[str]]:
    """Every command line a service runs (``sh -c`` chains split at && ; ||)."""
    command = service.get("command")
    if command is None:
        return []
    argv = shlex.split(command) if isinstance(command, str) else [str(c) for c in command]
    if argv[:2] in (["sh", "-c"], ["bash", "-c"]):
        lexer = shlex.shlex(argv[2], posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        tokens = list(lexer)
        chains: list[list[str]] = [[]]
        for token in tokens:
            if token in {"&&", "||", ";", "|", "&"}:
                chains.append([])
            else:
                chains[-1].append(token)
        return [chain[1:] if chain[:1] == ["exec"] else chain for chain in chains if chain]
    return [argv]


def all_commands(services: Mapping[str, Any]) -> list[tuple[str, list[str]]]:
    return [(name, argv) for name, svc in services.items() for argv in commands_of(svc)]


def option_names(argv: list[str]) -> list[str]:
    return [token.split("=", 1)[0] for token in argv if token.startswith("--")]


def option_value(argv: list[str], option: str) -> str:
    for i, token in enumerate(argv):
        if token == option:
            return argv[i + 1]
        if token.startswith(option + "="):
            return token.split("=", 1)[1]
    raise AssertionError(f"{option} not in {argv}")


def container_ports(service: Mapping[str, Any]) -> set[int]:
    ports = set()
    for entry in service.get("ports", []):
        if isinstance(entry, Mapping):
            ports.add(int(entry["target"]))
        else:
            ports.add(int(str(entry).split("/")[0].rsplit(":", 1)[-1]))
    ports |= {int(p) for p in service.get("expose", [])}
    return ports


def healthcheck_urls(service: Mapping[str, Any]) -> list[str]:
    test = service.get("healthcheck", {}).get("test", [])
    text = " ".join(test) if isinstance(test, list) else str(test)
    return re.findall(r"https?://[^\s'\"]+", text)


def mounts(service: Mapping[str, Any]) -> list[tuple[str, str]]:
    result = []
    for entry in service.get("volumes", []):
        if isinstance(entry, Mapping):
            result.append((entry.get("source", ""), entry["target"]))
        else:
            parts = str(entry).split(":")
            result.append((parts[0], parts[1]) if len(parts) > 1 else ("", parts[0]))
    return result


# ---------------------------------------------------------------------------
# the Compose Specification
# ---------------------------------------------------------------------------
def test_compose_file_validates_against_the_compose_spec(
    raw_compose: dict[str, Any], compose: dict[str, Any], schema: dict[str, Any]
) -> None:
    validator = Draft7Validator(schema)
    for label, document in (("as written", raw_compose), ("interpolated", compose)):
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
        assert not errors, f"{label}: " + "; ".join(
            f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors
        )


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("services", "api", "depends_on", "pipeline", "condition"), "service_finished"),
        (("services", "api", "healthcheck", "tests"), ["CMD", "true"]),
        (("services", "redis", "imagee"), "redis:7"),
        (("volumez",), {}),
    ],
)
def test_the_schema_rejects_broken_compose_files(
    raw_compose: dict[str, Any], schema: dict[str, Any], path: tuple[str, ...], value: Any
) -> None:
    broken = json.loads(json.dumps(raw_compose))
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert list(Draft7Validator(schema).iter_errors(broken)), f"schema accepted {path}={value!r}"


def test_the_vendored_schema_is_the_compose_spec(schema: dict[str, Any]) -> None:
    assert schema["title"] == "Compose Specification"
    Draft7Validator.check_schema(schema)
    assert (HERE / "compose-spec.README.md").exists()
    assert "Apache License" in (HERE / "compose-spec.LICENSE").read_text()


def _docker_compose() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    if standalone:
        probe = subprocess.run([standalone, "version"], capture_output=True, text=True, check=False)
        if probe.returncode == 0 and "v2" in probe.stdout:
            return [standalone]
    return None


def test_docker_compose_config_accepts_the_file(
    tmp_path: Path, filled_env: dict[str, str], example_env: dict[str, str]
) -> None:
    tool = _docker_compose()
    if tool is None:
        pytest.skip("docker compose v2 is not installed (no engine needed for `config`)")
    base = [*tool, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE)]
    clean = {k: v for k, v in os.environ.items() if k not in example_env}
    filled = tmp_path / "filled.env"
    filled.write_text("".join(f"{k}={json.dumps(v)}\n" for k, v in filled_env.items()))
    ok = subprocess.run(
        [*base, "--env-file", str(filled), "config", "-q"],
        capture_output=True, text=True, env=clean, check=False,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    # With the secrets left empty, as in .env.example, compose refuses to start.
    empty = subprocess.run(
        [*base, "--env-file", str(ENV_EXAMPLE), "config", "-q"],
        capture_output=True, text=True, env=clean, check=False,
    )  # fmt: skip
    assert empty.returncode != 0
    assert "required variable" in empty.stderr


# ---------------------------------------------------------------------------
# topology: services, healthchecks, dependencies, volumes
# ---------------------------------------------------------------------------
def test_every_service_of_the_topology_is_there(services: dict[str, Any]) -> None:
    assert set(services) == EXPECTED_SERVICES


def test_long_running_services_have_healthchecks(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        check = svc.get("healthcheck", {})
        if name in ONE_SHOT_SERVICES:
            assert svc.get("restart") == "no", f"{name} runs once: restart must be 'no'"
            continue
        assert check.get("test"), f"{name} has no healthcheck"
        assert not check.get("disable"), f"{name} disables its healthcheck"
        assert svc.get("restart") in {"unless-stopped", "always"}, name


def test_dependencies_wait_on_health_or_completion(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        depends = svc.get("depends_on", {})
        assert isinstance(depends, Mapping), f"{name}: depends_on needs conditions"
        for target, spec in depends.items():
            assert target in services, f"{name} depends on unknown service {target}"
            condition = spec["condition"]
            if condition == "service_healthy":
                assert not services[target].get("healthcheck", {}).get("disable"), (
                    f"{name} waits for {target} to be healthy but it has no healthcheck"
                )
            elif condition == "service_completed_successfully":
                assert target in ONE_SHOT_SERVICES, f"{target} is not a one-shot service"
            else:
                pytest.fail(f"{name} -> {target}: use service_healthy or completed_successfully")
    assert services["api"]["depends_on"]["pipeline"]["condition"] == (
        "service_completed_successfully"
    )
    for upstream in ("mlflow", "prefect-server", "redis"):
        assert services["pipeline"]["depends_on"][upstream]["condition"] == "service_healthy"


def test_named_volumes_are_declared_and_bind_mounts_exist(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes", {}))
    used = set()
    for name, svc in compose["services"].items():
        for source, _target in mounts(svc):
            if source.startswith(("./", "/", "../")):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            elif source:
                assert source in declared, f"{name} uses undeclared volume {source}"
                used.add(source)
    assert used == declared, f"declared but unused volumes: {declared - used}"


def test_app_services_share_the_data_volume(services: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        data_dir = env_of(services[name])["REELRANK_DATA_DIR"]
        assert data_dir in {target for _, target in mounts(services[name])}, name


# ---------------------------------------------------------------------------
# configuration: settings, secrets, .env.example
# ---------------------------------------------------------------------------
def test_every_reelrank_variable_is_a_setting(services: dict[str, Any]) -> None:
    from reelrank.config import Settings

    fields = set(Settings.model_fields)
    for name, svc in services.items():
        for key in env_of(svc):
            if key.startswith("REELRANK_"):
                field = key.removeprefix("REELRANK_").lower()
                assert field in fields, f"{name}: {key} is not a field of reelrank.config.Settings"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_settings_build_from_the_compose_environment(
    services: dict[str, Any], service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reelrank.config import Settings

    for key in list(os.environ):
        if key.startswith("REELRANK_") or key == "MLFLOW_TRACKING_URI":
            monkeypatch.delenv(key)
    env = env_of(services[service])
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)
    assert settings.environment == "production"
    assert settings.online_store == "redis"
    assert settings.tracking_uri == env["REELRANK_MLFLOW_TRACKING_URI"]
    assert str(settings.data_dir) == env["REELRANK_DATA_DIR"]


def test_secrets_are_required_variables_never_literals(raw_compose: dict[str, Any]) -> None:
    for name, svc in raw_compose["services"].items():
        for key, value in env_of(svc).items():
            if SECRET_NAME.search(key):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]+\}", value), (
                    f"{name}.{key} must be ${{VAR:?message}}, not {value!r}"
                )
            for embedded in re.findall(r"://[^:/@\s]+:([^@\s]+)@", value):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]+\}", embedded), (
                    f"{name}.{key} embeds a password that is not a required variable"
                )


def test_env_example_documents_every_variable(
    raw_compose: dict[str, Any], example_env: dict[str, str]
) -> None:
    referenced = set().union(*(variables_in(s) for s in walk_strings(raw_compose)))
    missing = referenced - set(example_env)
    assert not missing, f".env.example does not document {sorted(missing)}"
    stale = set(example_env) - referenced
    assert not stale, f".env.example lists variables compose never uses: {sorted(stale)}"
    # Each variable sits in a block (no blank line) that starts with a comment.
    documented = False
    for line in ENV_EXAMPLE.read_text().splitlines():
        stripped = line.strip()
        if not stripped:
            documented = False
        elif stripped.startswith("#"):
            documented = True
        else:
            assert documented, f".env.example: {stripped.split('=')[0]} has no comment above it"


def test_env_example_holds_no_secret(
    raw_compose: dict[str, Any], example_env: dict[str, str]
) -> None:
    required = set()
    for text in walk_strings(raw_compose):
        required |= set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    assert required >= {"POSTGRES_PASSWORD", "REELRANK_API_KEY", "GRAFANA_ADMIN_PASSWORD"}
    for key in required:
        assert example_env[key] == "", f".env.example must leave {key} empty"


def test_compose_refuses_to_start_without_secrets(
    raw_compose: dict[str, Any], example_env: dict[str, str]
) -> None:
    with pytest.raises(MissingVariableError, match=r"POSTGRES_PASSWORD|REELRANK_API_KEY|GRAFANA"):
        interpolate_tree(raw_compose, example_env)


# ---------------------------------------------------------------------------
# commands: real CLI commands with real options
# ---------------------------------------------------------------------------
def _reelrank_commands(services: dict[str, Any]) -> list[tuple[str, list[str]]]:
    return [(n, argv) for n, argv in all_commands(services) if argv[0] == "reelrank"]


def test_compose_runs_the_pipeline_the_api_and_the_deployment(services: dict[str, Any]) -> None:
    subcommands = {argv[1] for _, argv in _reelrank_commands(services)}
    assert {"run", "serve", "deploy"} <= subcommands


def test_every_reelrank_command_exists_with_its_options(services: dict[str, Any]) -> None:
    from typer.testing import CliRunner

    # The app behind the installed `reelrank` command, wherever the code keeps it.
    (entry_point,) = importlib.metadata.entry_points(group="console_scripts", name="reelrank")
    app = entry_point.load()
    runner = CliRunner()
    for name, argv in _reelrank_commands(services):
        result = runner.invoke(
            app, [argv[1], "--help"], env={"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
        )
        assert result.exit_code == 0, (
            f"{name}: `reelrank {argv[1]}` is not a reelrank command:\n{result.output}"
        )
        for option in option_names(argv[2:]):
            assert option in result.output, f"{name}: `reelrank {argv[1]}` has no {option}"


def _tool_help(argv: tuple[str, ...]) -> str:
    executable = Path(sys.executable).parent / argv[0]
    assert executable.exists(), f"{argv[0]} is not installed next to {sys.executable}"
    result = subprocess.run(
        [str(executable), *argv[1:], "--help"],
        capture_output=True, text=True, check=False, timeout=180,
        env={**os.environ, "COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def tool_help() -> dict[tuple[str, ...], str]:
    """``--help`` of every known tool command, run concurrently (each CLI is slow to import)."""
    tools = sorted(KNOWN_TOOL_COMMANDS)
    with ThreadPoolExecutor(max_workers=len(tools)) as pool:
        return dict(zip(tools, pool.map(_tool_help, tools), strict=True))


@pytest.mark.parametrize("tool", sorted(KNOWN_TOOL_COMMANDS))
def test_every_tool_command_exists_with_its_options(
    services: dict[str, Any], tool: tuple[str, ...], tool_help: dict[tuple[str, ...], str]
) -> None:
    uses = []
    for name, argv in all_commands(services):
        if argv[0] in {"prefect", "mlflow", "reelrank", "ray"}:
            known = [k for k in KNOWN_TOOL_COMMANDS if tuple(argv[: len(k)]) == k]
            assert known or argv[0] == "reelrank", f"{name}: unexpected command {argv}"
            if known and max(known, key=len) == tool:
                uses.append((name, argv))
    if not uses:
        pytest.skip(f"compose does not run {' '.join(tool)}")
    help_text = tool_help[tool]
    for name, argv in uses:
        for option in option_names(argv[len(tool) :]):
            assert option in help_text, f"{name}: `{' '.join(tool)}` has no option {option}"


# ---------------------------------------------------------------------------
# ports and names: compose, Prometheus, Grafana, Dockerfile, API settings
# ---------------------------------------------------------------------------
def test_api_port_agrees_everywhere(services: dict[str, Any]) -> None:
    from reelrank.config import Settings

    api = services["api"]
    (serve,) = [argv for argv in commands_of(api) if argv[:2] == ["reelrank", "serve"]]
    port = int(option_value(serve, "--port"))
    assert int(env_of(api)["REELRANK_API_PORT"]) == port
    assert container_ports(api) == {port}
    assert all(urlsplit(url).port == port for url in healthcheck_urls(api))
    assert option_value(serve, "--host") == env_of(api)["REELRANK_API_HOST"] == "0.0.0.0"
    assert Settings.model_fields["api_port"].default == port
    dockerfile = DOCKERFILE.read_text()
    assert re.search(rf"^EXPOSE\s+{port}\b", dockerfile, re.MULTILINE)
    assert f"REELRANK_API_PORT={port}" in dockerfile


def test_prometheus_scrapes_the_api_by_service_name_and_port(
    services: dict[str, Any], prometheus: dict[str, Any]
) -> None:
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    api_job = jobs["reelrank-api"]
    assert api_job.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for sc in api_job["static_configs"] for t in sc["targets"]]
    assert targets, "the API job has no target"
    for target in targets:
        host, port = target.rsplit(":", 1)
        assert host == "api"
        assert host in services
        assert int(port) in container_ports(services[host])
    for job in jobs.values():
        for sc in job["static_configs"]:
            for target in sc["targets"]:
                host = target.rsplit(":", 1)[0]
                assert host in services or host == "localhost", f"unknown target {target}"


def test_prometheus_and_grafana_files_are_mounted_where_they_are_read(
    services: dict[str, Any],
) -> None:
    prom = services["prometheus"]
    config_path = option_value(prom["command"], "--config.file")
    assert ("./deploy/prometheus/prometheus.yml", config_path) in mounts(prom)
    assert int(urlsplit(healthcheck_urls(prom)[0]).port or 0) in container_ports(prom)

    grafana = services["grafana"]
    mounted = dict(mounts(grafana))
    assert mounted["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    providers = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "dashboards" / "reelrank.yml").read_text()
    )["providers"]
    assert [p["options"]["path"] for p in providers] == [mounted["./deploy/grafana/dashboards"]]


def test_grafana_reads_prometheus_and_the_dashboard_covers_the_signals(
    services: dict[str, Any],
) -> None:
    datasources = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"]
    (source,) = datasources
    url = urlsplit(source["url"])
    assert url.hostname in services
    assert url.port in container_ports(services[url.hostname])
    dashboard = json.loads((GRAFANA_DIR / "dashboards" / "reelrank.json").read_text())
    uids = {
        p["datasource"]["uid"] for p in dashboard["panels"] if isinstance(p.get("datasource"), dict)
    }
    assert uids == {source["uid"]}
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    assert "rate(reelrank_http_requests_total" in exprs  # request rate
    for quantile in ("0.5", "0.95", "0.99"):  # latency percentiles
        assert f"histogram_quantile({quantile}," in exprs
    assert "reelrank_fallbacks_total" in exprs  # fallback rate
    assert "reelrank_model_info" in exprs  # model version


def test_service_urls_point_at_services_and_their_ports(services: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        env = env_of(services[name])
        for key, server in (
            ("REELRANK_MLFLOW_TRACKING_URI", "mlflow"),
            ("PREFECT_API_URL", "prefect-server"),
            ("REELRANK_REDIS_URL", "redis"),
        ):
            url = urlsplit(env[key])
            assert url.hostname == server, f"{name}.{key} should point at {server}"
            if server == "redis":
                continue
            (server_cmd,) = commands_of(services[server])
            assert url.port == int(option_value(server_cmd, "--port"))
            assert url.port in container_ports(services[server])
            assert all(urlsplit(u).port == url.port for u in healthcheck_urls(services[server]))


def test_databases_match_between_postgres_and_its_clients(services: dict[str, Any]) -> None:
    pg = env_of(services["postgres"])
    mlflow = urlsplit(env_of(services["mlflow"])["MLFLOW_BACKEND_STORE_URI"])
    prefect = urlsplit(env_of(services["prefect-server"])["PREFECT_SERVER_DATABASE_CONNECTION_URL"])
    assert mlflow.scheme == "postgresql+psycopg2"  # SQLAlchemy 2.1 defaults to psycopg 3
    assert prefect.scheme == "postgresql+asyncpg"
    for url, db_key in ((mlflow, "MLFLOW_DB"), (prefect, "PREFECT_DB")):
        assert url.hostname == "postgres"
        assert url.path.lstrip("/") == pg[db_key]
        assert url.username == pg["POSTGRES_USER"]
        assert url.password == pg["POSTGRES_PASSWORD"]
    init_targets = [t for _, t in mounts(services["postgres"])]
    assert any(t.startswith("/docker-entrypoint-initdb.d/") for t in init_targets)


# ---------------------------------------------------------------------------
# Dockerfile and .dockerignore
# ---------------------------------------------------------------------------
def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def test_dockerfile_is_multi_stage_slim_and_non_root() -> None:
    instructions = dockerfile_instructions()
    args = dict(rest.split("=", 1) for kw, rest in instructions if kw == "ARG" and "=" in rest)
    stages = [interpolate(rest.split()[0], args) for kw, rest in instructions if kw == "FROM"]
    assert len(stages) >= 2, "the Dockerfile must be multi-stage"
    assert all(stage == "python:3.11-slim" for stage in stages), stages
    last_from = max(i for i, (kw, _) in enumerate(instructions) if kw == "FROM")
    final = instructions[last_from:]
    users = [rest for kw, rest in final if kw == "USER"]
    assert users, "the final stage has no USER"
    assert users[-1].split(":")[0] not in {"root", "0"}, "final stage runs as root"
    assert any(kw == "HEALTHCHECK" for kw, _ in final), "final stage has no HEALTHCHECK"
    assert any(kw == "CMD" for kw, _ in final)


def test_dockerfile_installs_dependencies_from_the_lock_in_their_own_layer() -> None:
    instructions = dockerfile_instructions()
    steps = [(kw, rest) for kw, rest in instructions]
    lock_copy = next(
        i for i, (kw, rest) in enumerate(steps) if kw == "COPY" and "requirements.lock" in rest
    )
    lock_install = next(
        i
        for i, (kw, rest) in enumerate(steps)
        if kw == "RUN" and "pip install" in rest and "requirements.lock" in rest
    )
    code_copy = next(
        i for i, (kw, rest) in enumerate(steps) if kw == "COPY" and re.search(r"\breelrank\b", rest)
    )
    assert lock_copy < lock_install < code_copy, (
        "copy the lock and install dependencies before copying the code"
    )
    project_install = [
        rest for kw, rest in steps[code_copy:] if kw == "RUN" and "pip install" in rest
    ]
    assert project_install
    assert all("-c requirements.lock" in r for r in project_install)


def test_every_file_the_dockerfile_copies_exists() -> None:
    for kw, rest in dockerfile_instructions():
        if kw == "COPY" and "--from" not in rest:
            for source in [s for s in rest.split() if not s.startswith("--")][:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"


def test_dockerignore_keeps_data_venvs_caches_and_secrets_out() -> None:
    patterns = {
        line.strip().rstrip("/").removeprefix("**/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for required in ("data", ".venv", "__pycache__", ".pytest_cache", ".mypy_cache", ".env"):
        assert required in patterns, f".dockerignore does not exclude {required}"
    copied = []
    for kw, rest in dockerfile_instructions():
        if kw == "COPY" and "--from" not in rest:
            sources = [s for s in rest.split() if not s.startswith("--")][:-1]
            copied += sources
    for source in copied:
        assert source.rstrip("/") not in patterns, f".dockerignore excludes {source}"


# ---------------------------------------------------------------------------
# the local-process stack: docker-compose.yml translated by deploy/topology.py
# ---------------------------------------------------------------------------
KEY = {"REELRANK_API_KEY": "k" * 32}
#: A compose hostname (with a port or credentials), a container path or a bind-all
#: address left in a translated value.
_HOSTS = "postgres|redis|mlflow|prefect-server|prefect-worker|pipeline|api|ray-head|ray-worker"
COMPOSE_ONLY = re.compile(
    rf"(?<![\w.-])(?:{_HOSTS}):\d|(?:://|@)(?:{_HOSTS})(?![\w@-])"
    r"|(?<![\w./-])/(?:data|mlartifacts)(?![\w.-])|0\.0\.0\.0"
)


def local_config(tmp_path: Path, **overrides: Any) -> StackConfig:
    """A stack whose local ports and names all differ from compose's (so they show)."""
    values: dict[str, Any] = {
        "state_dir": tmp_path / "stack",
        "mlflow_port": 15000,
        "prefect_port": 14200,
        "api_port": 18000,
        "worker_port": 18080,
        "redis_url": "redis://127.0.0.1:6379/5",
        "mlflow_db": "t_mlflow",
        "prefect_db": "t_prefect",
        "start_worker": True,
        "start_ray": True,
    }
    return StackConfig(**(values | overrides))


@pytest.fixture
def local_plan(raw_compose: dict[str, Any], tmp_path: Path) -> topology.Plan:
    return topology.plan(local_config(tmp_path), raw_compose, KEY)


def test_every_compose_service_is_run_mapped_or_skipped_locally(
    raw_compose: dict[str, Any], local_plan: topology.Plan
) -> None:
    built = {name for name, svc in raw_compose["services"].items() if "build" in svc}
    assert set(local_plan.services) == built
    assert set(local_plan.infrastructure) == {"postgres", "redis"}
    assert set(local_plan.skipped) == {"prometheus", "grafana"}
    assert all(local_plan.skipped.values()), "every skipped service says why"


def test_local_processes_run_the_compose_commands(
    services: dict[str, Any], local_plan: topology.Plan
) -> None:
    """Same programs, sub-commands and options: the translation changes values only."""
    for name, local in local_plan.services.items():
        composed = [_shape(argv) for argv in commands_of(services[name])]
        assert [_shape(argv) for argv in commands_of({"command": list(local.argv)})] == composed
        assert set(local.env) == set(env_of(services[name])), f"{name} gained or lost variables"


def test_translated_values_point_at_this_machine(local_plan: topology.Plan, tmp_path: Path) -> None:
    config = local_config(tmp_path)
    for name, local in local_plan.services.items():
        for text in [*local.argv, *local.env.values(), local.health_url or ""]:
            assert not COMPOSE_ONLY.search(text), f"{name}: {text!r} is not translated"
    api = local_plan.services["api"].env
    assert api["REELRANK_DATA_DIR"] == str(config.data_dir)
    assert api["REELRANK_REDIS_URL"] == config.redis_url
    assert api["REELRANK_MLFLOW_TRACKING_URI"] == "http://127.0.0.1:15000"
    assert api["PREFECT_API_URL"] == "http://127.0.0.1:14200/api"
    assert (api["REELRANK_API_HOST"], api["REELRANK_API_PORT"]) == ("127.0.0.1", "18000")
    assert api["REELRANK_API_KEY"] == KEY["REELRANK_API_KEY"]
    assert api["REELRANK_API_WORKERS"] == "1"
    assert local_plan.shell_env == api
    mlflow = local_plan.services["mlflow"]
    assert mlflow.env["MLFLOW_BACKEND_STORE_URI"] == (
        "postgresql+psycopg2://postgres@127.0.0.1:5432/t_mlflow"
    )
    assert option_value(list(mlflow.argv), "--artifacts-destination") == str(config.artifacts_dir)
    assert option_value(list(mlflow.argv), "--port") == "15000"
    assert option_value(list(mlflow.argv), "--workers") == "1"  # OPTION_OVERRIDES
    prefect = local_plan.services["prefect-server"].env
    assert prefect["PREFECT_SERVER_DATABASE_CONNECTION_URL"] == (
        "postgresql+asyncpg://postgres@127.0.0.1:5432/t_prefect"
    )
    assert prefect["PREFECT_UI_API_URL"] == "http://localhost:14200/api"  # PREFECT_HOST_PORT
    worker = local_plan.services["prefect-worker"]
    assert worker.env["PREFECT_WORKER_WEBSERVER_PORT"] == "18080"
    assert "--pool reelrank-local" in worker.argv[2]
    assert local_plan.databases == ("t_mlflow", "t_prefect")
    assert set(local_plan.directories) == {config.data_dir, config.artifacts_dir}


def test_start_order_and_readiness_come_from_depends_on_and_healthchecks(
    services: dict[str, Any], local_plan: topology.Plan
) -> None:
    assert local_plan.waves == (
        ("mlflow", "prefect-server", "ray-head"),
        ("ray-worker",),
        ("pipeline", "prefect-worker"),
        ("api",),
    )
    started: set[str] = set()
    for wave in local_plan.waves:
        for name in wave:
            assert set(services[name].get("depends_on", {})) & set(local_plan.services) <= started
        started |= set(wave)
    health = {name: svc.health_url for name, svc in local_plan.services.items()}
    assert health == {
        "mlflow": "http://127.0.0.1:15000/health",
        "prefect-server": "http://127.0.0.1:14200/api/health",
        "pipeline": None,
        "prefect-worker": "http://127.0.0.1:18080/health",
        "api": "http://127.0.0.1:18000/ready",
        "ray-head": None,
        "ray-worker": None,
    }
    ray_status = ("ray", "status", "--address", "127.0.0.1:6380")
    assert local_plan.services["ray-head"].health_argv == ray_status
    assert local_plan.services["ray-worker"].health_argv == ray_status
    assert [n for n, s in local_plan.services.items() if s.one_shot] == ["pipeline"]


def test_the_ray_services_run_here_bounded_and_switch_the_engine(
    raw_compose: dict[str, Any], tmp_path: Path
) -> None:
    with_ray = topology.plan(local_config(tmp_path), raw_compose, KEY)
    head, worker = with_ray.services["ray-head"], with_ray.services["ray-worker"]
    assert head.argv[:4] == ("ray", "start", "--head", "--block")
    assert worker.argv[:5] == ("ray", "start", "--block", "--address", "127.0.0.1:6380")
    for node in (head, worker):  # two nodes share this machine's cores (OPTION_OVERRIDES)
        assert option_value(list(node.argv), "--num-cpus") == "1"
        assert int(option_value(list(node.argv), "--object-store-memory")) <= 500_000_000
    assert option_value(list(head.argv), "--include-dashboard") == "false"
    for name in ("pipeline", "prefect-worker"):
        env = with_ray.services[name].env
        assert (env["REELRANK_ENGINE"], env["REELRANK_RAY_ADDRESS"]) == ("ray", "127.0.0.1:6380")
    without = topology.plan(local_config(tmp_path, start_ray=False), raw_compose, KEY)
    assert {"ray-head", "ray-worker"} <= set(without.skipped)
    assert without.services["pipeline"].env["REELRANK_ENGINE"] == "local"
    assert without.waves[0] == ("mlflow", "prefect-server")


def test_flags_switch_optional_services_and_extend_the_pipeline(
    raw_compose: dict[str, Any], tmp_path: Path
) -> None:
    default = topology.plan(local_config(tmp_path, start_worker=False), raw_compose, KEY)
    assert "prefect-worker" in default.skipped
    assert "prefect-worker" not in default.services
    quick = local_config(tmp_path, run_pipeline=False, start_worker=False, start_ray=False)
    no_pipeline = topology.plan(quick, raw_compose, KEY)
    assert "pipeline" in no_pipeline.skipped
    assert no_pipeline.waves == (("mlflow", "prefect-server"), ("api",))
    with_args = topology.plan(local_config(tmp_path, run_args=("--users", "300")), raw_compose, KEY)
    assert with_args.services["pipeline"].argv[-2:] == ("--users", "300")  # EXTRA_ARGS


def test_postgres_credentials_are_the_local_servers(
    raw_compose: dict[str, Any], tmp_path: Path
) -> None:
    config = local_config(tmp_path, pg_host="db.local", pg_port=5433, pg_password="p@ss/word")
    env = topology.plan(config, raw_compose, KEY).services["mlflow"].env
    url = urlsplit(env["MLFLOW_BACKEND_STORE_URI"])
    assert (url.hostname, url.port, url.username) == ("db.local", 5433, "postgres")
    assert url.password == "p%40ss%2Fword"
    assert url.path == "/t_mlflow"


def test_a_service_added_to_compose_becomes_a_local_process(
    raw_compose: dict[str, Any], tmp_path: Path
) -> None:
    """No code edit: a Ray head and worker on the ReelRank image, as they would be added."""
    compose = copy.deepcopy(raw_compose)
    compose["services"]["ray-head"] = {
        "build": {"context": "."},
        "command": ["ray", "start", "--head", "--port", "6380", "--dashboard-host", "0.0.0.0",
                    "--dashboard-port", "8265", "--block"],
        "environment": {
            "RAY_TMPDIR": "/data/ray",
            "MLFLOW_TRACKING_URI": "http://mlflow:5000",
            "REELRANK_REDIS_URL": "redis://redis:6379/0",
        },
        "volumes": ["reelrank-data:/data"],
        "depends_on": {"mlflow": {"condition": "service_healthy"}},
        "healthcheck": {"test": ["CMD", "python", "-c", "import urllib.request; "
                                 "urllib.request.urlopen('http://127.0.0.1:8265/api/version')"]},
    }  # fmt: skip
    compose["services"]["ray-worker"] = {
        "build": {"context": "."},
        "command": "ray start --address ray-head:6380 --block",
        "depends_on": ["ray-head"],
        "healthcheck": {"test": ["CMD", "ray", "status", "--address", "ray-head:6380"]},
    }
    config = local_config(tmp_path)
    result = topology.plan(config, compose, KEY)
    head, worker = result.services["ray-head"], result.services["ray-worker"]
    assert head.argv[:3] == ("ray", "start", "--head")
    assert option_value(list(head.argv), "--dashboard-host") == "127.0.0.1"
    assert option_value(list(head.argv), "--dashboard-port") == "8265"  # no LOCAL_PORTS entry
    assert head.env == {
        "RAY_TMPDIR": str(config.data_dir / "ray"),
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:15000",
        "REELRANK_REDIS_URL": config.redis_url,
    }
    assert head.health_url == "http://127.0.0.1:8265/api/version"
    assert head.url == "http://127.0.0.1:8265"
    assert worker.argv == ("ray", "start", "--address", "127.0.0.1:6380", "--block")
    assert worker.health_argv == ("ray", "status", "--address", "127.0.0.1:6380")
    waves = {name: i for i, wave in enumerate(result.waves) for name in wave}
    assert waves["mlflow"] < waves["ray-head"] < waves["ray-worker"]


def test_a_tiny_compose_file(tmp_path: Path) -> None:
    compose = {
        "services": {
            "redis": {"image": "redis:7"},
            "web": {
                "build": ".",
                "command": "reelrank serve --host 0.0.0.0 --port 9000",
                "environment": ["REELRANK_REDIS_URL=redis://redis:6379/0", "REELRANK_DATA_DIR=/d"],
                "volumes": [{"type": "volume", "source": "cache", "target": "/d"}],
                "ports": ["${WEB_PORT:-9100}:9000"],
                "depends_on": ["redis"],
            },
        }
    }
    config = local_config(tmp_path)
    result = topology.plan(config, compose, {})
    (web,) = result.services.values()
    assert web.argv == ("reelrank", "serve", "--host", "127.0.0.1", "--port", "9000")
    assert web.env == {
        "REELRANK_REDIS_URL": config.redis_url,
        "REELRANK_DATA_DIR": str(config.state_dir / "d"),
    }
    assert (web.url, web.health_url, web.health_argv) == ("http://127.0.0.1:9000", None, None)
    assert result.waves == (("web",),)
    assert result.directories == (config.state_dir / "d",)


@pytest.mark.parametrize(
    ("service", "error"),
    [
        ({"image": "jaegertracing/all-in-one:1.60"}, "INFRASTRUCTURE or SKIPPED"),
        ({"build": ".", "command": "echo ${NEW_SECRET:?set it}"}, "NEW_SECRET"),
        ({"build": "."}, "no command"),
        ({"build": ".", "command": "true", "depends_on": ["extra", "api"]}, "cycle"),
    ],
)
def test_what_the_translation_cannot_do_is_an_error_naming_the_service(
    raw_compose: dict[str, Any], tmp_path: Path, service: dict[str, Any], error: str
) -> None:
    compose = copy.deepcopy(raw_compose)
    compose["services"]["extra"] = service
    compose["services"]["api"]["depends_on"]["extra"] = {"condition": "service_healthy"}
    with pytest.raises(LocalStackError, match=error):
        topology.plan(local_config(tmp_path), compose, KEY)


def test_the_api_key_is_required(raw_compose: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(LocalStackError, match="REELRANK_API_KEY"):
        topology.plan(local_config(tmp_path), raw_compose, {})


def test_the_summary_shows_every_service_and_why_some_are_not_run(
    local_plan: topology.Plan, tmp_path: Path
) -> None:
    pids = {name: 1000 + i for i, name in enumerate(local_plan.services) if name != "pipeline"}
    text = summary(Stack(local_config(tmp_path), env={}, pids=pids, plan=local_plan))
    lines = {line.split()[0]: line for line in text.splitlines() if line.startswith("  ")}
    for name in [*local_plan.services, *local_plan.infrastructure, *local_plan.skipped]:
        assert name in lines, f"the summary does not mention {name}"
    assert "not run locally" in lines["prometheus"]
    assert "ran once" in lines["pipeline"]
    assert "http://127.0.0.1:18000" in lines["api"]
    assert "<in secrets.env>" in text
    assert KEY["REELRANK_API_KEY"] not in text


def test_every_command_line_flag_reaches_the_config(tmp_path: Path) -> None:
    compose_file = tmp_path / "compose.yml"
    argv = [
        "up", "--state-dir", str(tmp_path / "s"), "--pg-host", "h", "--pg-port", "1",
        "--pg-user", "u", "--pg-password", "pw", "--mlflow-db", "m", "--prefect-db", "p",
        "--redis-url", "redis://r:1/2", "--host", "0.0.0.0", "--mlflow-port", "2",
        "--prefect-port", "3", "--api-port", "4", "--worker-port", "5", "--api-workers", "6",
        "--dataset", "ml-100k", "--model-name", "mm", "--work-pool", "wp",
        "--pipeline-cron", "1 2 * * *", "--bin-dir", str(tmp_path), "--compose-file",
        str(compose_file), "--run-args", "--users 300 --folds 2", "--startup-timeout", "7",
        "--pipeline-timeout", "8", "--no-pipeline", "--no-api", "--worker", "--ray",
    ]  # fmt: skip
    config = _config_from(_parser().parse_args(argv))
    assert config == StackConfig(
        state_dir=tmp_path / "s", pg_host="h", pg_port=1, pg_user="u", pg_password="pw",
        mlflow_db="m", prefect_db="p", redis_url="redis://r:1/2", host="0.0.0.0",
        mlflow_port=2, prefect_port=3, api_port=4, worker_port=5, api_workers=6,
        dataset="ml-100k", model_name="mm", work_pool="wp", pipeline_cron="1 2 * * *",
        bin_dir=tmp_path, compose_file=compose_file, run_args=("--users", "300", "--folds", "2"),
        startup_timeout_s=7.0, pipeline_timeout_s=8.0, run_pipeline=False, serve_api=False,
        start_worker=True, start_ray=True,
    )  # fmt: skip
    defaults = _config_from(_parser().parse_args(["up"]))
    assert defaults == StackConfig()
    for command in ("down", "status", "env"):
        assert _parser().parse_args([command]).state_dir == Path(".local-stack")
    down = _parser().parse_args(["down", "--drop-databases", "--flush-redis"])
    assert down.drop_databases
    assert down.flush_redis


def _shape(argv: list[str]) -> tuple[str, ...]:
    """A command without values: program, sub-commands and option names."""
    words = [w for w in argv[1:3] if not w.startswith("-")]
    return (Path(argv[0]).name, *words, *sorted(option_names(argv)))


def test_interpolation_follows_the_compose_spec() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d} ${EMPTY:-d} ${EMPTY-d} ${UNSET-d} $$SET $SET", env) == (
        "x d  d $SET x"
    )
    assert interpolate("${SET:+y}|${EMPTY:+y}|${EMPTY+y}|${UNSET+y}", env) == "y||y|"
    assert interpolate("${UNSET:-$SET}", env) == "x"
    with pytest.raises(MissingVariableError, match="EMPTY: needed"):
        interpolate("${EMPTY:?needed}", env)
    assert interpolate("${EMPTY?ok}", env) == ""

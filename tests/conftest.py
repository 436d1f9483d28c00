"""Shared test fixtures: every test runs against its own data directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from reelrank.config import Settings, get_settings, reset_settings


def pytest_configure(config: pytest.Config) -> None:
    # Offline and quiet: no telemetry from Prefect, Feast or MLflow during tests, and time
    # for Prefect's temporary server to start on a loaded 2-core machine.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("FEAST_USAGE", "False")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("EVIDENTLY_DISABLE_TELEMETRY", "1")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_service(available: bool, what: str) -> None:
    """Fail in CI when a service is missing; skip elsewhere with the reason."""
    if available:
        return
    message = f"{what} is not reachable"
    if in_ci():
        pytest.fail(f"{message}; CI must provide it (CI=true).")
    pytest.skip(f"{message}; start it to run this test (it is required when CI=true).")


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh REELRANK_DATA_DIR for one test, with the settings cache reset."""
    directory = tmp_path / "data"
    monkeypatch.setenv("REELRANK_DATA_DIR", str(directory))
    for name in ("MLFLOW_TRACKING_URI", "REELRANK_MLFLOW_TRACKING_URI", "REELRANK_ONLINE_STORE"):
        monkeypatch.delenv(name, raising=False)
    reset_settings()
    yield directory
    reset_settings()


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return get_settings()

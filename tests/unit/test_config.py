from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from reelrank.config import Settings, get_settings, reset_settings


def test_paths_derive_from_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI; other tests in this process may
    # have called it.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = Settings(data_dir=tmp_path)
    assert settings.lake_path == tmp_path / "lake"
    assert settings.quarantine_path == tmp_path / "quarantine"
    assert settings.raw_path == tmp_path / "raw"
    assert settings.feast_path == tmp_path / "feast"
    assert settings.tracking_uri == f"sqlite:///{(tmp_path / 'mlflow.db').resolve()}"


def test_explicit_path_wins(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, lake_dir=tmp_path / "elsewhere")
    assert settings.lake_path == tmp_path / "elsewhere"
    assert settings.raw_path == tmp_path / "raw"


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REELRANK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("REELRANK_ONLINE_STORE", "redis")
    reset_settings()
    try:
        settings = get_settings()
        assert settings.data_dir == tmp_path
        assert settings.online_store == "redis"
        assert get_settings() is settings  # built once
    finally:
        reset_settings()


def test_mlflow_env_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert Settings(data_dir=tmp_path).tracking_uri == "http://mlflow:5000"


def test_bad_values_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="online_store"):
        Settings(data_dir=tmp_path, online_store="memcached")  # type: ignore[arg-type]


@pytest.mark.parametrize("key", ["changeme", "short"])
def test_placeholder_api_key_refused_outside_development(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValidationError, match="REELRANK_API_KEY"):
        Settings(data_dir=tmp_path, environment="production", api_key=key)  # type: ignore[arg-type]
    assert Settings(data_dir=tmp_path, environment="development", api_key=key)  # type: ignore[arg-type]


def test_import_has_no_side_effects(tmp_path: Path) -> None:
    code = "import reelrank, reelrank.config, cli.app; import os; print(sorted(os.listdir('.')))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]", "importing reelrank created files"


def test_the_rerank_default_is_the_chosen_one_and_overridable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from reelrank.models.reranking import DEFAULT_RERANK

    assert Settings(data_dir=tmp_path).rerank.config() == DEFAULT_RERANK
    monkeypatch.setenv("REELRANK_RERANK", '{"diversity": 0.3, "long_tail": 0}')
    config = Settings(data_dir=tmp_path).rerank.config()
    # a strength not given keeps the default's
    assert (config.diversity, config.freshness, config.long_tail) == (
        0.3,
        DEFAULT_RERANK.freshness,
        0.0,
    )
    for bad in ('{"diversity": 1.5}', '{"diversity": NaN}', '{"boost": 1}'):
        monkeypatch.setenv("REELRANK_RERANK", bad)
        with pytest.raises(ValidationError, match="rerank"):
            Settings(data_dir=tmp_path)


def test_configuring_mlflow_leaves_the_environment_to_the_user(tmp_path, monkeypatch) -> None:
    """mlflow.set_tracking_uri writes MLFLOW_TRACKING_URI, which wins in Settings: left
    there, a later Settings of another data dir in the same process pointed at the first
    store (the server-parity test loaded another store's champion that way)."""
    import os

    import mlflow

    from reelrank.config import Settings
    from reelrank.registry.store import configure

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    first = configure(Settings(data_dir=tmp_path / "a"))
    assert mlflow.get_tracking_uri() == mlflow.get_registry_uri() == first
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert Settings(data_dir=tmp_path / "b").tracking_uri.endswith("/b/mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///" + str(tmp_path / "user.db"))
    assert configure(Settings(data_dir=tmp_path / "a")).endswith("/user.db")  # the user's wins
    assert os.environ["MLFLOW_TRACKING_URI"].endswith("/user.db")

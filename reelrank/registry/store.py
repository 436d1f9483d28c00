"""Where MLflow keeps runs and the registry: one URI from Settings, for both."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from reelrank.config import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient


def configure(settings: Settings) -> str:
    """Point MLflow (tracking and registry) at the store in force; returns its URI."""
    import mlflow

    uri = settings.tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def artifact_root(settings: Settings) -> str | None:
    """Where a local store keeps artifacts: ``<data_dir>/mlartifacts`` (never the cwd).

    ``None`` for a tracking server, which decides (``--artifacts-destination``).
    """
    if settings.tracking_uri.startswith(("sqlite:", "postgresql", "mysql", "file:")):
        return (settings.data_dir / "mlartifacts").resolve().as_uri()
    return None


def client() -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient()

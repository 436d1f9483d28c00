"""Where MLflow keeps runs and the registry: one URI from Settings, for both."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Final

from reelrank.config import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient


_MLFLOW_URI_VARIABLES: Final = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def configure(settings: Settings) -> str:
    """Point MLflow (tracking and registry) at the store in force; returns its URI."""
    import mlflow

    uri = settings.tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    # mlflow.set_tracking_uri also writes MLFLOW_TRACKING_URI into os.environ, and that
    # variable wins in Settings.tracking_uri: left there, every later Settings of another
    # data dir in this process would point at this store (a test loaded another store's
    # champion that way). The environment keeps only what the user set.
    before = {name: os.environ.get(name) for name in _MLFLOW_URI_VARIABLES}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    return uri


def artifact_root(settings: Settings) -> str | None:
    """Where a local store keeps artifacts: ``<data_dir>/mlartifacts`` (never the cwd).

    ``None`` for a tracking server, which decides (``--artifacts-destination``).
    """
    if settings.tracking_uri.startswith(("sqlite:", "postgresql", "mysql", "file:")):
        return (settings.data_dir / "mlartifacts").resolve().as_uri()
    return None


def use_experiment(settings: Settings, name: str) -> str:
    """Make ``name`` the active MLflow experiment, creating it with a local artifact root if
    new; returns its id."""
    import mlflow

    existing = mlflow.get_experiment_by_name(name)
    if existing is None:
        experiment_id = mlflow.create_experiment(name, artifact_location=artifact_root(settings))
    else:
        experiment_id = existing.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return str(experiment_id)


def client() -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient()


def relocate_store(database: Path, old_root: Path, new_root: Path) -> int:
    """Point a copied SQLite MLflow store at its copy's artifacts; returns the cells changed.

    A local store records absolute artifact locations (experiments, runs, registered
    versions, logged models under ``<data_dir>/mlartifacts``). After a data dir is copied,
    its store still names the original's, and training in the copy would write artifacts
    into the original. Every text cell naming ``old_root`` is rewritten to ``new_root``.
    """
    import sqlite3

    old, new = str(Path(old_root).resolve()), str(Path(new_root).resolve())
    changed = 0
    with sqlite3.connect(database) as connection:
        tables = [
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        for table in tables:
            columns = connection.execute(f'PRAGMA table_info("{table}")').fetchall()
            for column in (
                c[1] for c in columns if "CHAR" in c[2].upper() or "TEXT" in c[2].upper()
            ):
                cursor = connection.execute(
                    f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) '
                    f'WHERE instr("{column}", ?) > 0',
                    (old, new, old),
                )
                changed += cursor.rowcount
    return changed

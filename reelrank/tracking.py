"""MLflow: experiments, the logged model, the registry and its aliases.

The registered model is a pyfunc wrapper around the fitted
:class:`~reelrank.models.recommender.Recommender`: ``predict`` takes a frame of
``user_id`` (and an optional ``k`` parameter) and returns the recommendations, and
:func:`load_recommender` gives back the native object the API serves.
"""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow.pyfunc import PythonModel

from reelrank.config import Settings
from reelrank.exceptions import ModelNotFoundError
from reelrank.promotion import CHALLENGER, CHAMPION

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from reelrank.models.recommender import Recommender

logger = logging.getLogger(__name__)

MODEL_ARTIFACT: Final = "model"
GATE_METRIC_KEY: Final = "cv_ndcg_at_10"
TAG_DATA_VERSION: Final = "data_version"
TAG_DATASET: Final = "dataset"
TAG_FEATURE_SERVICE: Final = "feature_service"
TAG_GIT_COMMIT: Final = "git_commit"
TAG_PROMOTION: Final = "promotion"
TAG_FOLD_SPEC: Final = "fold_spec"


def experiment_name(dataset: str) -> str:
    """One experiment per dataset."""
    return f"reelrank-{dataset}"


def configure(settings: Settings) -> str:
    """Point MLflow (tracking and registry) at the store in force; returns its URI."""

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


def use_experiment(settings: Settings, name: str) -> str:
    """Make ``name`` the active experiment, creating it with a local artifact root if new."""
    existing = mlflow.get_experiment_by_name(name)
    if existing is None:
        experiment_id = mlflow.create_experiment(name, artifact_location=artifact_root(settings))
    else:
        experiment_id = existing.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return str(experiment_id)


def git_commit(repo: Path | None = None) -> str:
    """The commit of the code that ran (``unknown`` outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=repo or Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


class RecommenderModel(PythonModel):
    """pyfunc face of the Recommender: ``user_id`` in, ranked items out (``k`` a parameter)."""

    def __init__(self, recommender: Recommender) -> None:
        self.recommender = recommender

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        k = int((params or {}).get("k", 10))
        users = pd.DataFrame(model_input)["user_id"].astype("int64").tolist()
        return self.recommender.recommend(users, k=k, exclude_seen=True)


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    run_id: str


def log_recommender(
    recommender: Recommender, example_users: list[int], registered_name: str
) -> RegisteredVersion:
    """Log the fitted model (signature + input example) in the active run and register it."""
    from mlflow.models import infer_signature

    example = pd.DataFrame({"user_id": pd.Series(example_users[:3], dtype="int64")})
    output = recommender.recommend(example["user_id"].tolist(), k=10)
    signature = infer_signature(example, output, params={"k": 10})
    info = mlflow.pyfunc.log_model(
        name=MODEL_ARTIFACT,
        python_model=RecommenderModel(recommender),
        signature=signature,
        input_example=example,
        registered_model_name=registered_name,
    )
    version = str(info.registered_model_version)
    run = mlflow.active_run()
    assert run is not None
    return RegisteredVersion(registered_name, version, run.info.run_id)


def client() -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient()


def version_by_alias(name: str, alias: str) -> Any | None:
    """The model version holding ``alias``, or ``None`` when nobody holds it."""
    from mlflow.exceptions import MlflowException

    try:
        return client().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def set_alias(name: str, alias: str, version: str) -> None:
    client().set_registered_model_alias(name, alias, version)


def run_metrics(run_id: str) -> dict[str, float]:
    return dict(client().get_run(run_id).data.metrics)


def load_recommender(settings: Settings, alias: str = CHAMPION) -> tuple[Recommender, Any]:
    """Load the native Recommender holding ``alias`` from the registry.

    Raises:
        ModelNotFoundError: no version holds the alias (run ``reelrank train`` first).
    """
    configure(settings)
    version = version_by_alias(settings.model_name, alias)
    if version is None:
        raise ModelNotFoundError(
            f"No '{alias}' version of model '{settings.model_name}' in the MLflow registry at "
            f"{settings.tracking_uri}. Run `reelrank run` (or `reelrank train`) to train and "
            "register one."
        )
    model = mlflow.pyfunc.load_model(f"models:/{settings.model_name}@{alias}")
    recommender = model.unwrap_python_model().recommender
    return recommender, version


__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "RegisteredVersion",
    "configure",
    "experiment_name",
    "git_commit",
    "load_recommender",
    "log_recommender",
]

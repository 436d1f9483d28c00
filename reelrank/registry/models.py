"""The registered model's format, and registering and loading versions.

The registered model is a pyfunc wrapper around the fitted
:class:`~reelrank.models.recommender.Recommender`: ``predict`` takes a frame of
``user_id`` (and an optional ``k`` parameter) and returns the recommendations, and
:func:`load_recommender` gives back the native object the API serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import pandas as pd
from mlflow.pyfunc import PythonModel

from reelrank.config import Settings
from reelrank.exceptions import ModelNotFoundError
from reelrank.registry.aliases import Alias, version_by_alias
from reelrank.registry.store import client, configure
from reelrank.schema import USER_ID

if TYPE_CHECKING:
    from reelrank.models.recommender import Recommender

MODEL_ARTIFACT: Final = "model"
DEFAULT_K: Final = 10


class RecommenderModel(PythonModel):
    """pyfunc face of the Recommender: ``user_id`` in, ranked items out (``k`` a parameter)."""

    def __init__(self, recommender: Recommender) -> None:
        self.recommender = recommender

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        k = int((params or {}).get("k", DEFAULT_K))
        users = pd.DataFrame(model_input)[USER_ID].astype("int64").tolist()
        return self.recommender.recommend(users, k=k, exclude_seen=True)


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    run_id: str


def register(model_uri: str, name: str, run_id: str) -> RegisteredVersion:
    """Register the logged model at ``model_uri`` as a new version of ``name``."""
    import mlflow

    version = mlflow.register_model(model_uri, name)
    return RegisteredVersion(name, str(version.version), run_id)


def run_metrics(run_id: str) -> dict[str, float]:
    return dict(client().get_run(run_id).data.metrics)


def load_recommender(settings: Settings, alias: str = Alias.CHAMPION) -> tuple[Recommender, Any]:
    """Load the native Recommender holding ``alias`` from the registry.

    Raises:
        ModelNotFoundError: no version holds the alias (run ``reelrank train`` first).
    """
    import mlflow.pyfunc

    configure(settings)
    version = version_by_alias(settings.model_name, alias)
    if version is None:
        raise ModelNotFoundError(
            f"No '{alias}' version of model '{settings.model_name}' in the MLflow registry at "
            f"{settings.tracking_uri}. Run `reelrank run` (or `reelrank train`) to train and "
            "register one."
        )
    model = mlflow.pyfunc.load_model(f"models:/{settings.model_name}@{alias}")
    recommender: Recommender = model.unwrap_python_model().recommender
    return recommender, version


def load_recommender_version(settings: Settings, version: str) -> tuple[Recommender, Any]:
    """Load the native Recommender of registered version ``version``.

    Raises:
        ModelNotFoundError: the registry has no such version.
    """
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    configure(settings)
    try:
        found = client().get_model_version(settings.model_name, str(version))
    except MlflowException:
        raise ModelNotFoundError(
            f"No version {version} of model '{settings.model_name}' in the MLflow registry at "
            f"{settings.tracking_uri}; name an existing version (or an alias) in "
            "REELRANK_EXPERIMENT."
        ) from None
    model = mlflow.pyfunc.load_model(f"models:/{settings.model_name}/{version}")
    recommender: Recommender = model.unwrap_python_model().recommender
    return recommender, found

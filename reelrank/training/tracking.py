"""Everything a training run logs to MLflow, in one module.

A run is opened once (:func:`start_run`: tags and parameters) and resumed by id by each
later step (:func:`resumed`), so the steps can run as separate Prefect tasks. Metric names:
``<model label>.<metric>`` per fold in nested ``fold-<i>`` runs, ``cv_<metric>_mean|std``
for the candidate and ``<label>.cv_...`` for the others, ``diff_vs_<reference>.*`` for the
gate's differences, ``candidate_recall_at_<N>.<source>``, ``oracle.<column>.<label>``.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pandas as pd

from reelrank.config import Settings
from reelrank.registry.models import MODEL_ARTIFACT, RecommenderModel
from reelrank.registry.store import configure, use_experiment
from reelrank.schema import USER_ID, Dataset
from reelrank.training import plots
from reelrank.training.config import CANDIDATE, TrainConfig
from reelrank.training.report import FOLD, MODEL, RunReport

if TYPE_CHECKING:
    from reelrank.models.recommender import Recommender
    from reelrank.training.crossval import CVResult
    from reelrank.training.diagnostics import Diagnostics

TAG_DATA_VERSION: Final = "data_version"
TAG_DATASET: Final = "dataset"
TAG_FEATURE_SERVICE: Final = "feature_service"
TAG_GIT_COMMIT: Final = "git_commit"
TAG_PROMOTION: Final = "promotion"
TAG_FOLD_SPEC: Final = "fold_spec"
ARTIFACT_DIR: Final = "evaluation"
EXAMPLE_USERS: Final = 3
MODEL_REQUIREMENTS: Final = (
    "reelrank",
    "mlflow",
    "cloudpickle",
    "numpy",
    "pandas",
    "scipy",
    "scikit-learn",
    "lightgbm",
    "implicit",
    "numba",
)
"""What unpickling and calling a registered model imports, pinned to the installed versions.
Given explicitly: MLflow's inference of them loads the model in a subprocess (logging the
MovieLens-100K model took 5.98 s inferred, 0.17 s explicit) and missed lightgbm, implicit
and numba, which the model imports only when it scores."""


def experiment_name(dataset: str) -> str:
    """One experiment per dataset."""
    return f"reelrank-{dataset}"


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


@dataclass(frozen=True)
class TrainingRun:
    """The MLflow run of one training run (resumed by id by every step)."""

    run_id: str
    experiment: str


def start_run(
    settings: Settings,
    config: TrainConfig,
    dataset: Dataset,
    data_version: str,
    feature_service: str,
    model_params: Mapping[str, Any],
) -> TrainingRun:
    """Open the run of ``config`` with its tags and parameters."""
    import mlflow

    configure(settings)
    experiment = experiment_name(config.dataset)
    use_experiment(settings, experiment)
    with mlflow.start_run(run_name=f"train-{config.dataset}") as run:
        mlflow.set_tags(
            {
                TAG_DATASET: config.dataset,
                TAG_DATA_VERSION: data_version,
                TAG_GIT_COMMIT: git_commit(),
                TAG_FEATURE_SERVICE: feature_service,
                TAG_FOLD_SPEC: f"rolling_origin(n_folds={config.n_folds})",
            }
        )
        mlflow.log_params(
            {
                "ranker": config.ranker,
                "n_folds": config.n_folds,
                "k": config.k,
                "seed": config.seed,
                "n_events": len(dataset.events),
                "n_users": dataset.events[USER_ID].nunique(),
                "n_items": len(dataset.items),
                **model_params,
            }
        )
    return TrainingRun(run.info.run_id, experiment)


@contextmanager
def resumed(run: TrainingRun) -> Iterator[None]:
    """Log into ``run`` again (each step of a run opens it by id)."""
    import mlflow

    with mlflow.start_run(run_id=run.run_id):
        yield


def _metrics(values: Mapping[str, Any]) -> dict[str, float]:
    return {name: float(value) for name, value in values.items() if pd.notna(value)}


def log_tuning(run: TrainingRun, chosen: Mapping[str, Mapping[str, Any]]) -> None:
    """The ladder's chosen hyperparameters (``baseline.<label>.<param>``)."""
    import mlflow

    with resumed(run):
        mlflow.log_params(
            {
                f"baseline.{label}.{k}": v
                for label, params in chosen.items()
                for k, v in params.items()
            }
        )


def log_cross_validation(run: TrainingRun, cv: CVResult) -> None:
    """One nested run per fold (every model's metrics), then the means and deviations."""
    import mlflow

    with resumed(run):
        for fold_info in cv.folds:
            fold = fold_info[FOLD]
            with mlflow.start_run(run_name=f"fold-{fold}", nested=True):
                mlflow.log_params({k: str(v) for k, v in fold_info.items()})
                rows = cv.per_fold[cv.per_fold[FOLD] == fold]
                for _, row in rows.iterrows():
                    mlflow.log_metrics(
                        _metrics(
                            {
                                f"{row[MODEL]}.{n}": v
                                for n, v in row.items()
                                if n not in (MODEL, FOLD)
                            }
                        )
                    )
        for label, row in cv.summary().iterrows():
            prefix = "cv_" if label == CANDIDATE else f"{label}.cv_"
            mlflow.log_metrics(_metrics({f"{prefix}{name}": v for name, v in row.items()}))


def log_differences(run: TrainingRun, differences: Mapping[str, Mapping[str, Any]]) -> None:
    """The gate's paired differences (``diff_vs_<reference>.mean|low|high``)."""
    import mlflow

    with resumed(run):
        for name, diff in differences.items():
            mlflow.log_metrics(
                {f"diff_{name}.{k}": v for k, v in diff.items() if isinstance(v, float)}
            )


def log_diagnostics(
    run: TrainingRun, diagnostics: Diagnostics, per_fold: pd.DataFrame, metric: str
) -> None:
    """Candidate recall and AUC as metrics; every figure as an artifact."""
    import mlflow

    with resumed(run), tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch)
        for source, row in diagnostics.candidate_recall.iterrows():
            mlflow.log_metrics(
                {
                    f"candidate_{str(k).replace('@', '_at_')}.{source}": float(v)
                    for k, v in row.items()
                }
            )
        figures = [plots.fold_comparison(per_fold, metric, out / "fold_comparison.png")]
        if diagnostics.auc is not None:
            mlflow.log_metric("ranker_auc_last_fold", diagnostics.auc)
            figures.append(
                plots.roc_pr_curves(
                    diagnostics.labels, diagnostics.scores, out / "ranker_roc_pr.png"
                )
            )
        importances = diagnostics.importances
        if importances is not None and len(importances):
            figures.append(plots.feature_importance(importances, out / "feature_importance.png"))
            importances.rename("importance").to_csv(out / "feature_importance.csv")
            figures.append(out / "feature_importance.csv")
        if diagnostics.learning_curve is not None:
            figures.append(
                plots.learning_curve(diagnostics.learning_curve, metric, out / "learning_curve.png")
            )
        if diagnostics.regularisation is not None:
            figures.append(
                plots.regularisation_sweep(
                    diagnostics.regularisation, metric, out / "regularisation.png"
                )
            )
        for path in figures:
            mlflow.log_artifact(str(path), artifact_path=ARTIFACT_DIR)


def log_oracle(run: TrainingRun, oracle_summary: pd.DataFrame) -> None:
    """The comparison with the synthetic world's oracle, averaged over folds."""
    import mlflow

    with resumed(run):
        mlflow.log_metrics(
            _metrics(
                {
                    f"oracle.{column}.{row[MODEL]}": value
                    for _, row in oracle_summary.iterrows()
                    for column, value in row.items()
                    if column != MODEL
                }
            )
        )


def log_model(run: TrainingRun, model: Recommender, fit_seconds: float) -> str:
    """Log the final model (signature + input example) in ``run``; returns its URI."""
    import mlflow
    from mlflow.models import infer_signature

    users = [int(u) for u in model.interactions_.user_ids[:EXAMPLE_USERS]]
    example = pd.DataFrame({USER_ID: pd.Series(users, dtype="int64")})
    output = model.recommend(users, k=10)
    signature = infer_signature(example, output, params={"k": 10})
    with resumed(run):
        mlflow.log_metric("final_fit_seconds", fit_seconds)
        groups = {
            "final_ranker_groups": getattr(model, "n_ranker_groups_", None),
            "final_slate_groups": getattr(model, "n_slate_groups_", None),
        }
        mlflow.log_metrics({k: float(v) for k, v in groups.items() if v is not None})
        info = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            python_model=RecommenderModel(model),
            signature=signature,
            input_example=example,
            pip_requirements=model_requirements(),
        )
    return str(info.model_uri)


def model_requirements() -> list[str]:
    """:data:`MODEL_REQUIREMENTS` as ``name==version`` of this environment."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in MODEL_REQUIREMENTS]


def data_version_of(run_id: str) -> str | None:
    """The data version a training run was tagged with (None: untagged or unreadable)."""
    import mlflow

    try:
        return mlflow.get_run(run_id).data.tags.get(TAG_DATA_VERSION)
    except Exception:  # a deleted or foreign run: no version to compare
        return None


def log_reference(run: TrainingRun, model: Recommender) -> None:
    """The drift monitor's reference (``reelrank.monitoring.monitor``): the profiles and
    the sample of the training users' features and scores, under ``monitoring/``."""

    import mlflow

    from reelrank.data.io import atomic_write_json, atomic_write_parquet
    from reelrank.monitoring import monitor

    features, scores = monitor.reference_frames(model)
    features_profile, scores_profile = monitor.reference_profiles(features, scores)
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        atomic_write_json(features_profile.to_dict(), folder / monitor.FEATURES_PROFILE)
        atomic_write_json(scores_profile.to_dict(), folder / monitor.SCORES_PROFILE)
        atomic_write_parquet(features, folder / monitor.FEATURES_SAMPLE)
        atomic_write_parquet(scores, folder / monitor.SCORES_SAMPLE)
        with resumed(run):
            mlflow.log_artifacts(directory, artifact_path=monitor.REFERENCE_DIR)


def log_outcome(run: TrainingRun, reason: str, train_seconds: float) -> None:
    """The gate's decision (a tag) and the run's duration."""
    import mlflow

    with resumed(run):
        mlflow.set_tag(TAG_PROMOTION, reason)
        mlflow.log_metric("train_seconds", train_seconds)


def log_report(run: TrainingRun, report: RunReport) -> None:
    """Every file of the run report, as artifacts under ``evaluation/``."""
    import mlflow

    with resumed(run), tempfile.TemporaryDirectory() as scratch:
        for path in report.save(Path(scratch)):
            mlflow.log_artifact(str(path), artifact_path=ARTIFACT_DIR)

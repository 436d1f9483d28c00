"""The ReelRank pipeline as Prefect flows: one task per step boundary, thin over the library.

``reelrank_pipeline`` = data -> features -> train, each a subflow. Tasks pass their data
as return values, so the flow graph shows the dependencies and a retried task does not
re-run the tasks before it; retries only on I/O (download, Feast registry and online
store writes, MLflow logging and registration). With no ``PREFECT_API_URL`` Prefect runs
the flows against a temporary local server; with one set, that server records the runs
(the docker-compose and ``make up-local`` setups).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from reelrank.config import DatasetName, get_settings
from reelrank.data.synthetic import SyntheticConfig
from reelrank.training.config import TrainConfig

if TYPE_CHECKING:
    from reelrank.data.synthetic import GroundTruth
    from reelrank.models.recommender import Recommender
    from reelrank.schema import Dataset
    from reelrank.training.report import RunReport
    from reelrank.training.steps import Evaluation, Registration
    from reelrank.training.tracking import TrainingRun

IO_RETRIES: Final = 3
RETRY_DELAYS: Final[list[float]] = [2, 5, 15]
DEPLOYMENT_NAME: Final = "nightly-retrain"


def io_task(name: str) -> Any:
    """A task that talks to a store or a server (retried); compute tasks are never retried."""
    return task(name=name, cache_policy=NONE, retries=IO_RETRIES, retry_delay_seconds=RETRY_DELAYS)


# ------------------------------------------------------------------------------ data
@task(name="ingest", cache_policy=NONE)
def ingest_task(
    dataset: DatasetName, source: Path | None, synthetic: SyntheticConfig | None
) -> dict[str, Any]:
    """Load, validate and write the lake; returns the summary (``summary.json``)."""
    from reelrank.data.ingest import run_ingest

    logger = get_run_logger()
    summary = run_ingest(
        dataset, get_settings(), source=source, synthetic=synthetic, progress=logger.info
    ).to_dict()
    for table in ("events", "users", "items"):
        figures = summary[table]
        logger.info(
            "%s: read %d, accepted %d, quarantined %d %s",
            table,
            figures["read"],
            figures["accepted"],
            figures["quarantined"],
            figures["reasons"] or "",
        )
    return summary


@flow(name="reelrank-data")
def data_flow(
    dataset: DatasetName = "ml-100k",
    source: Path | None = None,
    synthetic: SyntheticConfig | None = None,
) -> dict[str, Any]:
    """Ingest -> validate -> lake + quarantine."""
    return ingest_task(dataset, source, synthetic)


# -------------------------------------------------------------------------- features
@task(name="build-features", cache_policy=NONE)
def build_features_task() -> dict[str, Any]:
    """Point-in-time change-row tables from the lake -> offline parquet, block by block
    (bounded memory), published together (both or neither)."""
    from reelrank.data.ingest import read_lake
    from reelrank.features.feast.store import write_feature_tables

    settings = get_settings()
    users, items = write_feature_tables(read_lake(settings.lake_path), settings)
    stats = {
        "user_rows": users.rows,
        "item_rows": items.rows,
        "from": min(users.first, items.first),
        "to": max(users.last, items.last),
        "paths": [str(users.path), str(items.path)],
    }
    get_run_logger().info("features: %(user_rows)d user rows, %(item_rows)d item rows", stats)
    return stats


@io_task(name="feast-apply")
def feast_apply_task() -> None:
    from reelrank.features.feast.store import apply_definitions

    apply_definitions(get_settings())
    get_run_logger().info("feast apply: definitions registered")


@io_task(name="materialize")
def materialize_task(incremental: bool = True) -> dict[str, list[str]]:
    from reelrank.features.feast.store import materialize

    settings = get_settings()
    done = materialize(settings, incremental=incremental)
    logger = get_run_logger()
    for view, (start, end) in done.items():
        logger.info(
            "materialized %s over %s .. %s into %s", view, start, end, settings.online_store
        )
    if not done:
        logger.info("online store already up to date")
    return {view: [str(start), str(end)] for view, (start, end) in done.items()}


@flow(name="reelrank-features")
def features_flow(incremental: bool = True) -> dict[str, Any]:
    """Build features -> feast apply -> materialize (incremental after the first run)."""
    stats = build_features_task()
    feast_apply_task()
    stats["materialized"] = materialize_task(incremental)
    return stats


# -------------------------------------------------------------------------- training
@dataclass(frozen=True)
class TrainingData:
    """The lake as training reads it: the dataset, its version, the world's truth if any."""

    dataset: Dataset
    data_version: str
    truth: GroundTruth | None


@task(name="load-lake", cache_policy=NONE)
def load_lake_task() -> TrainingData:
    from reelrank.data.ingest import read_lake, read_summary

    settings = get_settings()
    summary = read_summary(settings.lake_path)
    truth = None
    if summary.get("dataset") == "synthetic":
        from reelrank.data.synthetic import GroundTruth

        truth = GroundTruth.load(Path(summary["source"]))
    version = str(summary.get("data_version", "unknown"))
    return TrainingData(read_lake(settings.lake_path), version, truth)


@io_task(name="start-run")
def start_run_task(config: TrainConfig, data: TrainingData) -> TrainingRun:
    from reelrank.training.steps import start

    return start(get_settings(), config, data.dataset, data.data_version)


@io_task(name="load-incumbent")
def incumbent_task() -> Recommender | None:
    from reelrank.training.steps import incumbent

    return incumbent(get_settings())


@task(name="cross-validate", cache_policy=NONE)
def cross_validate_task(
    data: TrainingData, config: TrainConfig, incumbent: Recommender | None
) -> Evaluation:
    """Time folds, baselines, the gate's differences and the diagnostics (no I/O)."""
    from reelrank.training.steps import evaluate

    logger = get_run_logger()
    return evaluate(data.dataset, config, incumbent, data.truth, logger.info)


@io_task(name="log-evaluation")
def log_evaluation_task(run: TrainingRun, evaluation: Evaluation, config: TrainConfig) -> None:
    from reelrank.training.steps import log_evaluation

    log_evaluation(run, evaluation, config)


@task(name="final-fit", cache_policy=NONE)
def final_fit_task(data: TrainingData, config: TrainConfig, use_feast: bool) -> Recommender:
    """The model that ships, its ranker trained on Feast's historical retrieval."""
    from reelrank.training.steps import fit_final

    provider = None
    if use_feast:
        from reelrank.features.feast.providers import FeastOfflineProvider
        from reelrank.features.feast.store import get_feature_store

        provider = FeastOfflineProvider(get_feature_store(get_settings()))
    return fit_final(data.dataset, config, provider, get_run_logger().info)


@io_task(name="register-and-gate")
def register_task(
    run: TrainingRun, model: Recommender, evaluation: Evaluation, config: TrainConfig
) -> Registration:
    from reelrank.training.steps import register_and_gate

    registration = register_and_gate(get_settings(), run, model, evaluation, config)
    get_run_logger().info(
        "version %s: %s", registration.version.version, registration.decision.reason
    )
    return registration


@io_task(name="write-report")
def report_task(
    run: TrainingRun,
    config: TrainConfig,
    evaluation: Evaluation,
    registration: Registration,
    seconds: float,
    data_version: str,
) -> RunReport:
    from reelrank.training.steps import finish

    return finish(get_settings(), run, config, evaluation, registration, seconds, data_version)


@flow(name="reelrank-train")
def train_flow(
    config_fields: dict[str, Any] | None = None, use_feast: bool = True
) -> dict[str, Any]:
    """Cross-validate, fit, register, gate the promotion and report (one task each)."""
    started = time.perf_counter()
    config = TrainConfig(**(config_fields or {}))
    data = load_lake_task()
    run = start_run_task(config, data)
    evaluation = cross_validate_task(data, config, incumbent_task())
    log_evaluation_task(run, evaluation, config)
    model = final_fit_task(data, config, use_feast)
    registration = register_task(run, model, evaluation, config)
    seconds = time.perf_counter() - started
    report = report_task(run, config, evaluation, registration, seconds, data.data_version)
    return {
        **asdict(report.summary),
        "report_dir": str(get_settings().reports_path / config.dataset),
    }


# -------------------------------------------------------------------------- pipeline
@flow(name="reelrank-pipeline")
def reelrank_pipeline(
    dataset: DatasetName = "ml-100k",
    source: Path | None = None,
    synthetic: SyntheticConfig | None = None,
    train: bool = True,
    train_config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole offline path: data -> features -> train, as subflows."""
    result: dict[str, Any] = {"data": data_flow(dataset, source, synthetic)}
    result["features"] = features_flow()
    if train:
        result["train"] = train_flow({"dataset": dataset, **(train_config or {})})
    return result


def deploy_pipeline(
    work_pool: str,
    cron: str,
    dataset: DatasetName = "synthetic",
    name: str = DEPLOYMENT_NAME,
) -> str:
    """Register the pipeline as a scheduled deployment on a process work pool.

    The worker polling ``work_pool`` imports ``pipelines.flows`` from the installed package
    (no code is copied or pulled); returns the deployment id.
    """
    from prefect.deployments.runner import EntrypointType

    deployment: Any = reelrank_pipeline.to_deployment(
        name=name,
        cron=cron,
        parameters={"dataset": dataset},
        description="Nightly retrain: data -> features -> train, promotion gated.",
        tags=["reelrank", "nightly"],
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    deployment_id = deployment.apply(work_pool_name=work_pool)  # sync in a sync context
    return str(deployment_id)

"""The ReelRank pipeline as Prefect flows: one task per step boundary, thin over the library.

``reelrank_pipeline`` = data -> features -> train, each a subflow. Tasks pass their data
as return values, so the flow graph shows the dependencies and a retried task does not
re-run the tasks before it; retries only on I/O (download, Feast registry and online
store writes, MLflow logging and registration). With no ``PREFECT_API_URL`` Prefect runs
the flows against a temporary local server; with one set, that server records the runs
(the docker-compose and ``make up-local`` setups).

The engine (``REELRANK_ENGINE``, :mod:`reelrank.engines`) decides where the parallel
tasks run: one per cross-validation fold and one per feature table. Locally they run one
after the other in this process; under ``ray`` the features and training subflows run on
Prefect's ``RayTaskRunner`` (prefect-ray) connected to ``REELRANK_RAY_ADDRESS`` and those
tasks are submitted to the cluster together, while the I/O tasks stay in the flow's
process (Feast's Ray offline store and compute engine reach the cluster from there).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from reelrank.config import DatasetName, get_settings
from reelrank.data.synthetic import SyntheticConfig
from reelrank.training.config import TrainConfig

if TYPE_CHECKING:
    from reelrank.data.synthetic import GroundTruth
    from reelrank.models.recommender import Recommender
    from reelrank.schema import Dataset
    from reelrank.training.crossval import FoldResult
    from reelrank.training.report import RunReport
    from reelrank.training.steps import Evaluation, EvaluationPlan, Registration
    from reelrank.training.tracking import TrainingRun

IO_RETRIES: Final = 3
RETRY_DELAYS: Final[list[float]] = [2, 5, 15]
DEPLOYMENT_NAME: Final = "nightly-retrain"


def io_task(name: str) -> Any:
    """A task that talks to a store or a server (retried); compute tasks are never retried."""
    return task(name=name, cache_policy=NONE, retries=IO_RETRIES, retry_delay_seconds=RETRY_DELAYS)


# ---------------------------------------------------------------------------- engine
FlowT = TypeVar("FlowT")


def on_engine(subflow: FlowT) -> FlowT:
    """``subflow`` on the engine's task runner: itself locally, on RayTaskRunner under ray."""
    from reelrank.engines import ray_address, uses_ray

    settings = get_settings()
    if not uses_ray(settings):
        return subflow
    from prefect_ray import RayTaskRunner

    from reelrank.engines.ray_cluster import init_kwargs

    runner = RayTaskRunner(address=ray_address(settings), init_kwargs=init_kwargs(settings))
    return subflow.with_options(task_runner=runner)  # type: ignore[attr-defined]


def run_parallel(parallel_task: Any, arguments: list[tuple[Any, ...]]) -> list[Any]:
    """``parallel_task`` once per argument tuple: submitted together to the cluster under the
    Ray engine, one after the other in this process locally; results in argument order."""
    from reelrank.engines import uses_ray

    if not uses_ray(get_settings()):
        return [parallel_task(*args) for args in arguments]
    futures = [parallel_task.submit(*args) for args in arguments]
    return [future.result() for future in futures]


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


@task(name="ingest-feedback", cache_policy=NONE)
def ingest_feedback_task(grace_seconds: float | None = None) -> dict[str, Any]:
    """The impression and feedback logs into the lake (validated, quarantined, watermarked)."""
    from reelrank.loop.feedback import DEFAULT_GRACE_SECONDS, ingest_feedback

    logger = get_run_logger()
    grace = DEFAULT_GRACE_SECONDS if grace_seconds is None else grace_seconds
    summary = ingest_feedback(get_settings(), grace_seconds=grace, progress=logger.info).to_dict()
    for log in ("impressions", "feedback"):
        figures = summary[log]
        logger.info(
            "%s log: read %d, accepted %d, quarantined %d %s",
            log,
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
FeatureTable = Literal["user", "item"]


@task(name="build-feature-table", cache_policy=NONE)
def build_feature_table_task(table: FeatureTable) -> dict[str, Any]:
    """One point-in-time change-row table from the lake, written beside its target in
    blocks (bounded memory; the tables are built in parallel); returns its figures."""
    from dataclasses import asdict

    from reelrank.data.ingest import read_lake
    from reelrank.features.feast.store import stage_feature_table

    settings = get_settings()
    stats = stage_feature_table(table, read_lake(settings.lake_path), settings)
    return {**asdict(stats), "path": str(stats.path)}


@task(name="write-features", cache_policy=NONE)
def write_features_task(users: dict[str, Any], items: dict[str, Any]) -> dict[str, Any]:
    """Both staged tables -> the offline parquet, published together (both or neither)."""
    from reelrank.features.feast.store import publish_feature_tables

    user_path, item_path = publish_feature_tables(get_settings())
    stats = {
        "user_rows": users["rows"],
        "item_rows": items["rows"],
        "from": min(users["first"], items["first"]),
        "to": max(users["last"], items["last"]),
        "paths": [str(user_path), str(item_path)],
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
    users, items = run_parallel(build_feature_table_task, [("user",), ("item",)])
    stats = write_features_task(users, items)
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
    from reelrank.loop.feedback import with_slates

    settings = get_settings()
    summary = read_summary(settings.lake_path)
    truth = None
    if summary.get("dataset") == "synthetic":
        from reelrank.data.synthetic import GroundTruth

        truth = GroundTruth.load(Path(summary["source"]))
    version = str(summary.get("data_version", "unknown"))
    dataset = with_slates(read_lake(settings.lake_path), settings.lake_path)
    return TrainingData(dataset, version, truth)


@io_task(name="start-run")
def start_run_task(config: TrainConfig, data: TrainingData) -> TrainingRun:
    from reelrank.training.steps import start

    return start(get_settings(), config, data.dataset, data.data_version)


@io_task(name="load-incumbent")
def incumbent_task() -> Recommender | None:
    from reelrank.training.steps import incumbent

    return incumbent(get_settings())


@task(name="plan-evaluation", cache_policy=NONE)
def plan_evaluation_task(
    data: TrainingData, config: TrainConfig, incumbent: Recommender | None
) -> EvaluationPlan:
    """Time folds and the models every fold scores (the ladder tuned on the first fold)."""
    from reelrank.training.steps import plan_evaluation

    return plan_evaluation(data.dataset, config, incumbent, get_run_logger().info)


@task(name="score-fold", cache_policy=NONE)
def score_fold_task(plan: EvaluationPlan, data: TrainingData, fold: int, k: int) -> FoldResult:
    """Every model fitted and judged on one fold (the folds run in parallel; no I/O)."""
    from reelrank.training.crossval import score_fold

    n_folds = len(plan.folds)
    progress = get_run_logger().info
    return score_fold(
        plan.factories, data.dataset, plan.folds[fold], k, data.truth, progress, n_folds
    )


@task(name="conclude-evaluation", cache_policy=NONE)
def conclude_evaluation_task(
    plan: EvaluationPlan, folds: list[FoldResult], data: TrainingData, config: TrainConfig
) -> Evaluation:
    """The folds combined, the gate's differences and the diagnostics (no I/O)."""
    from reelrank.training.crossval import combine
    from reelrank.training.steps import conclude_evaluation

    cv = combine(folds, config.k)
    return conclude_evaluation(plan, cv, data.dataset, config, get_run_logger().info)


def cross_validate(
    data: TrainingData, config: TrainConfig, incumbent: Recommender | None
) -> Evaluation:
    """Plan, one ``score-fold`` task per fold (in parallel under the Ray engine), conclude."""
    plan = plan_evaluation_task(data, config, incumbent)
    arguments = [(plan, data, fold, config.k) for fold in range(len(plan.folds))]
    folds = run_parallel(score_fold_task, arguments)
    return conclude_evaluation_task(plan, folds, data, config)


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
    evaluation = cross_validate(data, config, incumbent_task())
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
    """The whole offline path: data -> (feedback, when the service's logs exist) ->
    features -> train, as subflows."""
    from reelrank.loop.feedback import logs_exist

    result: dict[str, Any] = {"data": data_flow(dataset, source, synthetic)}
    if logs_exist(get_settings()):
        result["feedback"] = ingest_feedback_task()
    result["features"] = on_engine(features_flow)()
    if train:
        result["train"] = on_engine(train_flow)({"dataset": dataset, **(train_config or {})})
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

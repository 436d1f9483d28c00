"""The ReelRank pipeline as Prefect flows: thin tasks over library functions.

``reelrank_pipeline`` = data -> features -> train, each a subflow. With no
``PREFECT_API_URL`` Prefect runs them against a temporary local server; with one set,
the runs are recorded by that server (the docker-compose and ``make up-local`` setups).
Retries only on I/O (download, Feast registry and online-store writes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from reelrank.config import DatasetName, get_settings
from reelrank.data.synthetic import SyntheticConfig

IO_RETRIES = 3
RETRY_DELAYS: list[float] = [2, 5, 15]


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


@task(name="build-features", cache_policy=NONE)
def build_features_task() -> dict[str, Any]:
    """Point-in-time user and item feature tables -> offline parquet (atomic)."""
    from reelrank.data.ingest import read_lake
    from reelrank.features import build_item_features, build_user_features
    from reelrank.features.store import write_offline_features

    logger = get_run_logger()
    settings = get_settings()
    lake = read_lake(settings.lake_path)
    users = build_user_features(lake.events, lake.users, lake.items)
    items = build_item_features(lake.events, lake.items)
    user_path, item_path = write_offline_features(users, items, settings)
    stats = {
        "user_rows": len(users),
        "item_rows": len(items),
        "from": str(users["event_timestamp"].min()),
        "to": str(users["event_timestamp"].max()),
        "paths": [str(user_path), str(item_path)],
    }
    logger.info(
        "features: %d user rows, %d item rows, snapshots %s .. %s",
        stats["user_rows"],
        stats["item_rows"],
        stats["from"],
        stats["to"],
    )
    return stats


@task(name="feast-apply", cache_policy=NONE, retries=IO_RETRIES, retry_delay_seconds=RETRY_DELAYS)
def feast_apply_task() -> None:
    from reelrank.features.store import apply_definitions

    apply_definitions(get_settings())
    get_run_logger().info("feast apply: definitions registered")


@task(name="materialize", cache_policy=NONE, retries=IO_RETRIES, retry_delay_seconds=RETRY_DELAYS)
def materialize_task(incremental: bool = True) -> dict[str, list[str]]:
    from reelrank.features.store import materialize

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


@task(name="train", cache_policy=NONE)
def train_task(config_fields: dict[str, Any], use_feast: bool) -> dict[str, Any]:
    """Cross-validate, fit, log to MLflow, register and gate (reelrank.training)."""
    from reelrank.data.ingest import read_lake, read_summary
    from reelrank.training import TrainConfig, train_and_register

    logger = get_run_logger()
    settings = get_settings()
    lake = read_lake(settings.lake_path)
    summary = read_summary(settings.lake_path)
    truth = None
    if summary.get("dataset") == "synthetic":
        from reelrank.data.synthetic import GroundTruth

        truth = GroundTruth.load(Path(summary["source"]))
    provider = None
    if use_feast:
        from reelrank.features import FeastOfflineProvider
        from reelrank.features.store import get_feature_store

        provider = FeastOfflineProvider(get_feature_store(settings))
    report = train_and_register(
        lake,
        settings,
        TrainConfig(**config_fields),
        feature_provider=provider,
        data_version=str(summary.get("data_version", "unknown")),
        progress=logger.info,
        truth=truth,
    )
    logger.info("model %s version %s: %s", report.model_name, report.version, report.reason)
    return {
        "run_id": report.run_id,
        "version": report.version,
        "promoted": report.promoted,
        "reason": report.reason,
        "report_dir": str(report.report_dir),
    }


@flow(name="reelrank-data")
def data_flow(
    dataset: DatasetName = "ml-100k",
    source: Path | None = None,
    synthetic: SyntheticConfig | None = None,
) -> dict[str, Any]:
    """Ingest -> validate -> lake + quarantine."""
    return ingest_task(dataset, source, synthetic)


@flow(name="reelrank-features")
def features_flow(incremental: bool = True) -> dict[str, Any]:
    """Build features -> feast apply -> materialize (incremental after the first run)."""
    stats = build_features_task()
    feast_apply_task()
    stats["materialized"] = materialize_task(incremental)
    return stats


@flow(name="reelrank-train")
def train_flow(
    config_fields: dict[str, Any] | None = None, use_feast: bool = True
) -> dict[str, Any]:
    """Train, evaluate, log, register and gate the promotion."""
    return train_task(config_fields or {}, use_feast)


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
        fields = {"dataset": dataset, **(train_config or {})}
        result["train"] = train_flow(fields)
    return result


DEPLOYMENT_NAME = "nightly-retrain"


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

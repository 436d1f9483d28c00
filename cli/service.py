"""Running the system: ``serve`` (the API) and ``deploy`` (the nightly retrain)."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.options import DatasetOpt, dataset_name
from cli.output import console, fail
from cli.pipeline import prefect_defaults
from reelrank.config import get_settings
from reelrank.exceptions import ReelRankError


def serve(
    host: Annotated[str | None, typer.Option("--host", help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option("--port", min=1, max=65535, help="Port.")] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="uvicorn worker processes.")
    ] = None,
) -> None:
    """Serve the registry's champion over HTTP (FastAPI + uvicorn); defaults from settings."""
    from serving.server import run_server

    settings = get_settings()
    try:
        run_server(
            host=host or settings.api_host,
            port=port or settings.api_port,
            workers=workers or settings.api_workers,
            metrics_dir=settings.metrics_dir,
        )
    except ReelRankError as error:
        raise fail(error) from error


def deploy(
    work_pool: Annotated[
        str, typer.Option("--work-pool", help="Prefect process work pool the worker polls.")
    ] = "reelrank",
    cron: Annotated[
        str, typer.Option("--cron", help="Schedule (cron, UTC) of the pipeline.")
    ] = "0 3 * * *",
    dataset: DatasetOpt = "synthetic",
    monitor_cron: Annotated[
        str,
        typer.Option("--monitor-cron", help="Schedule (cron, UTC) of the drift monitor."),
    ] = "0 * * * *",
) -> None:
    """Register the pipeline (nightly) and the drift monitor with its retrain trigger
    (hourly) with the Prefect server as scheduled deployments."""
    prefect_defaults()
    from pipelines.flows import DEPLOYMENT_NAME, deploy_pipeline
    from pipelines.monitor import MONITOR_DEPLOYMENT, deploy_monitor

    deployment_id = deploy_pipeline(work_pool, cron, dataset_name(dataset))
    console.print(
        f"deployment reelrank-pipeline/{DEPLOYMENT_NAME} ({deployment_id}) on pool "
        f"{work_pool!r}, schedule {cron!r}"
    )
    monitor_id = deploy_monitor(work_pool, monitor_cron)
    console.print(
        f"deployment reelrank-monitor/{MONITOR_DEPLOYMENT} ({monitor_id}) on pool "
        f"{work_pool!r}, schedule {monitor_cron!r}"
    )

"""The pipeline's steps as commands: ``data``, ``features``, ``train`` and ``run`` (all)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any, Final

import typer

from cli.engine import EngineOpt, RayAddressOpt, use_engine
from cli.options import (
    CompareOpt,
    DatasetOpt,
    DiagnosticsOpt,
    EventsOpt,
    FoldsOpt,
    ItemsOpt,
    OffPolicyGateOpt,
    ParamOpt,
    RankerOpt,
    SeedOpt,
    SourceOpt,
    SourcesOpt,
    UsersOpt,
    dataset_name,
    synthetic_config,
    train_fields,
)
from cli.output import console, fail, print_ingest_summary, print_train_result
from reelrank.config import get_settings
from reelrank.exceptions import ReelRankError

PREFECT_STARTUP_TIMEOUT_SECONDS: Final = "180"


def prefect_defaults() -> None:
    """Give Prefect's temporary local server time to start on a busy or fresh machine.

    A fresh ``PREFECT_HOME`` runs database migrations on first start, which can exceed
    Prefect's default 20 s start-up timeout on a loaded 2-core machine. An explicit
    setting in the environment wins.
    """
    os.environ.setdefault(
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", PREFECT_STARTUP_TIMEOUT_SECONDS
    )
    # No phoning home: these machines may have no network, and a pipeline should not wait
    # on telemetry (Prefect's server heartbeat, Feast usage, MLflow telemetry).
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("FEAST_USAGE", "False")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("EVIDENTLY_DISABLE_TELEMETRY", "1")
    # Prefect's database goes under PREFECT_HOME; a home that does not exist yet would fail
    # its temporary server's start with "unable to open database file".
    home = os.environ.get("PREFECT_HOME")
    if home:
        Path(home).expanduser().mkdir(parents=True, exist_ok=True)


def flows() -> Any:
    """``pipelines.flows``, imported with Prefect's console quiet on expected errors."""
    prefect_defaults()
    import pipelines.flows
    from cli import output

    if not output.VERBOSE:
        from cli.logs import hide_expected_tracebacks

        hide_expected_tracebacks()
    return pipelines.flows


def data(
    dataset: DatasetOpt = "ml-100k",
    source: SourceOpt = None,
    users: UsersOpt = None,
    items: ItemsOpt = None,
    events: EventsOpt = None,
    seed: SeedOpt = None,
) -> None:
    """Ingest a dataset: load, validate, write the lake and quarantine bad rows."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from reelrank.data.ingest import run_ingest

    settings = get_settings()
    name = dataset_name(dataset)
    synthetic = synthetic_config(users, items, events, seed) if name == "synthetic" else None
    started = time.perf_counter()
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task(f"ingesting {name}", total=None)
        try:
            summary = run_ingest(
                name,
                settings,
                source=source,
                synthetic=synthetic,
                progress=lambda message: progress.update(task, description=message),
            ).to_dict()
        except ReelRankError as error:
            raise fail(error) from error
    print_ingest_summary(summary)
    console.print(
        f"lake: {settings.lake_path}  quarantine: {settings.quarantine_path}  "
        f"({time.perf_counter() - started:.1f} s)"
    )


def features(
    full: Annotated[
        bool, typer.Option("--full", help="Materialize the whole ttl window, not incrementally.")
    ] = False,
    engine: EngineOpt = None,
    ray_address: RayAddressOpt = None,
) -> None:
    """Build point-in-time features from the lake, apply the Feast repo and materialize."""
    use_engine(engine, ray_address)
    try:
        pipelines = flows()
        stats = pipelines.on_engine(pipelines.features_flow)(incremental=not full)
    except ReelRankError as error:
        raise fail(error) from error
    console.print(
        f"features: {stats['user_rows']:,} user rows, {stats['item_rows']:,} item rows "
        f"({stats['from']} .. {stats['to']}); online store: {get_settings().online_store}"
    )


def _lake_dataset_name() -> str:
    from reelrank.data.ingest import read_summary

    return str(read_summary(get_settings().lake_path).get("dataset", "unknown"))


def _print_train(result: dict[str, Any]) -> None:
    settings = get_settings()
    print_train_result(result, settings.model_name, settings.tracking_uri)


def train(
    ranker: RankerOpt = "lgbm-lambdarank",
    compare: CompareOpt = None,
    folds: FoldsOpt = 3,
    diagnostics: DiagnosticsOpt = True,
    sources: SourcesOpt = None,
    param: ParamOpt = None,
    feast: Annotated[
        bool,
        typer.Option(
            "--feast/--no-feast",
            help="Train the final ranker on features from Feast's historical retrieval.",
        ),
    ] = True,
    engine: EngineOpt = None,
    ray_address: RayAddressOpt = None,
    offpolicy_gate: OffPolicyGateOpt = False,
) -> None:
    """Cross-validate against baselines, fit, log to MLflow, register and gate promotion."""
    use_engine(engine, ray_address)
    try:
        fields = train_fields(
            _lake_dataset_name(), ranker, compare, folds, diagnostics, sources, param,
            offpolicy_gate,
        )  # fmt: skip
        pipelines = flows()
        result = pipelines.on_engine(pipelines.train_flow)(fields, use_feast=feast)
    except ReelRankError as error:
        raise fail(error) from error
    _print_train(result)


def run(
    dataset: DatasetOpt = "ml-100k",
    source: SourceOpt = None,
    users: UsersOpt = None,
    items: ItemsOpt = None,
    events: EventsOpt = None,
    seed: SeedOpt = None,
    ranker: RankerOpt = "lgbm-lambdarank",
    compare: CompareOpt = None,
    folds: FoldsOpt = 3,
    diagnostics: DiagnosticsOpt = True,
    sources: SourcesOpt = None,
    param: ParamOpt = None,
    train: Annotated[
        bool, typer.Option("--train/--no-train", help="Also train and register a model.")
    ] = True,
    engine: EngineOpt = None,
    ray_address: RayAddressOpt = None,
    offpolicy_gate: OffPolicyGateOpt = False,
) -> None:
    """The whole pipeline as one Prefect flow: data -> features -> train (--engine ray: the
    folds and feature tables in parallel on a Ray cluster, Feast's Ray offline store)."""
    chosen = use_engine(engine, ray_address)
    pipeline = flows().reelrank_pipeline
    name = dataset_name(dataset)
    synthetic = synthetic_config(users, items, events, seed) if name == "synthetic" else None
    started = time.perf_counter()
    try:
        fields = train_fields(
            name, ranker, compare, folds, diagnostics, sources, param, offpolicy_gate
        )
        result = pipeline(name, source, synthetic, train=train, train_config=fields)
    except ReelRankError as error:
        raise fail(error) from error
    print_ingest_summary(result["data"])
    stats = result["features"]
    console.print(
        f"features: {stats['user_rows']:,} user rows, {stats['item_rows']:,} item rows; "
        f"online store ({get_settings().online_store}) materialized"
    )
    if train:
        _print_train(result["train"])
    console.print(f"pipeline finished in {time.perf_counter() - started:.0f} s ({chosen} engine)")

"""The `reelrank` command line: each stage of the pipeline is one command.

Commands are thin: they parse arguments, call the library (or the Prefect flow) and
print a summary. Heavy imports happen inside the commands so `--help` stays fast.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from reelrank.config import DatasetName, get_settings

if TYPE_CHECKING:
    from reelrank.data.synthetic import SyntheticConfig

app = typer.Typer(
    name="reelrank",
    help="ReelRank: the Top-picks-for-you row, from raw data to a served model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
scratch_app = typer.Typer(help="From-scratch implementations of the classic algorithms.")
app.add_typer(scratch_app, name="scratch")

console = Console()
err_console = Console(stderr=True)

DatasetOpt = Annotated[
    str,
    typer.Option(
        "--dataset",
        "-d",
        help="ml-100k, ml-1m (GroupLens zips) or synthetic (generated offline, with ground truth).",
    ),
]
SourceOpt = Annotated[
    Path | None,
    typer.Option(
        "--source",
        "-s",
        help="A local MovieLens zip to read instead of downloading.",
        exists=True,
        dir_okay=False,
        readable=True,
    ),
]
UsersOpt = Annotated[int | None, typer.Option("--users", min=1, help="Synthetic: users.")]
ItemsOpt = Annotated[int | None, typer.Option("--items", min=1, help="Synthetic: items.")]
EventsOpt = Annotated[int | None, typer.Option("--events", min=1, help="Synthetic: events.")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Synthetic: random seed.")]

DATASETS: tuple[DatasetName, ...] = ("ml-100k", "ml-1m", "synthetic")


def _dataset(value: str) -> DatasetName:
    for name in DATASETS:
        if value == name:
            return name
    raise typer.BadParameter(f"unknown dataset {value!r}; choose one of {', '.join(DATASETS)}.")


def _synthetic_config(
    users: int | None, items: int | None, events: int | None, seed: int | None
) -> SyntheticConfig:
    from dataclasses import replace

    from reelrank.data.synthetic import SyntheticConfig

    config = SyntheticConfig()
    overrides: dict[str, Any] = {}
    if users is not None:
        overrides["n_users"] = users
    if items is not None:
        overrides["n_items"] = items
    if events is not None:
        overrides["n_events"] = events
    if seed is not None:
        overrides["seed"] = seed
    return replace(config, **overrides)


PREFECT_STARTUP_TIMEOUT_SECONDS = "180"


def _prefect_defaults() -> None:
    """Give Prefect's temporary local server time to start on a busy or fresh machine.

    A fresh ``PREFECT_HOME`` runs database migrations on first start, which can exceed
    Prefect's default 20 s start-up timeout on a loaded 2-core machine. An explicit
    setting in the environment wins.
    """
    import os

    os.environ.setdefault(
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", PREFECT_STARTUP_TIMEOUT_SECONDS
    )
    # No phoning home: these machines may have no network, and a pipeline should not wait
    # on telemetry (Prefect's server heartbeat, Feast usage, MLflow telemetry).
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("FEAST_USAGE", "False")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")


def _fail(error: Exception) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {error}")
    return typer.Exit(code=1)


def print_ingest_summary(summary: dict[str, Any]) -> None:
    """Print the per-table read/accepted/quarantined table of an ingest run."""
    table = Table(title="Ingest summary", show_lines=False)
    for column in ("table", "read", "accepted", "quarantined", "reasons"):
        table.add_column(
            column, justify="right" if column in {"read", "accepted", "quarantined"} else "left"
        )
    for name in ("events", "users", "items"):
        figures = summary[name]
        reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(figures["reasons"].items()))
        table.add_row(
            name,
            f"{figures['read']:,}",
            f"{figures['accepted']:,}",
            f"{figures['quarantined']:,}",
            reasons or "-",
        )
    console.print(table)


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO level.")] = False,
) -> None:
    """ReelRank: the Top-picks-for-you row, from raw data to a served model."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command()
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
    from reelrank.exceptions import ReelRankError

    settings = get_settings()
    name = _dataset(dataset)
    synthetic = _synthetic_config(users, items, events, seed) if name == "synthetic" else None
    started = time.perf_counter()
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task(f"ingesting {name}", total=None)

        def report(message: str) -> None:
            progress.update(task, description=message)

        try:
            summary = run_ingest(
                name, settings, source=source, synthetic=synthetic, progress=report
            ).to_dict()
        except ReelRankError as error:
            raise _fail(error) from error
    print_ingest_summary(summary)
    console.print(
        f"lake: {settings.lake_path}  quarantine: {settings.quarantine_path}  "
        f"({time.perf_counter() - started:.1f} s)"
    )


RankerOpt = Annotated[
    str,
    typer.Option(
        "--ranker",
        help="Stage-2 ranker: lgbm-lambdarank, lgbm-binary, sklearn-logreg, scratch-logreg, "
        "scratch-mlp.",
    ),
]
CompareOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--compare",
        help="Extra rankers cross-validated and logged beside the main one (repeatable).",
    ),
]
FoldsOpt = Annotated[int, typer.Option("--folds", min=1, help="Rolling-origin time folds.")]
DiagnosticsOpt = Annotated[
    bool,
    typer.Option(
        "--diagnostics/--no-diagnostics",
        help="Learning curve and regularisation sweep (extra fits on the last fold).",
    ),
]


def _train_fields(
    dataset: str, ranker: str, compare: list[str] | None, folds: int, diagnostics: bool
) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "ranker": ranker,
        "extra_rankers": tuple(compare or ()),
        "n_folds": folds,
        "diagnostics": diagnostics,
    }


def _lake_dataset_name() -> str:
    from reelrank.data.ingest import read_summary

    return str(read_summary(get_settings().lake_path).get("dataset", "unknown"))


def print_train_result(result: dict[str, Any]) -> None:
    promoted = "[green]champion[/]" if result["promoted"] else "[yellow]challenger only[/]"
    console.print(
        f"registered [bold]{get_settings().model_name}[/] version {result['version']} "
        f"({promoted}): {result['reason']}"
    )
    console.print(f"MLflow run {result['run_id']} in {get_settings().tracking_uri}")
    _print_evaluation(Path(result["report_dir"]))


def _print_evaluation(report_dir: Path) -> None:
    import pandas as pd

    per_fold = report_dir / "cv_per_fold.csv"
    if not per_fold.exists():
        raise _fail(
            FileNotFoundError(f"no evaluation at {report_dir}; run `reelrank train` first.")
        )
    frame = pd.read_csv(per_fold)
    metrics = [
        c
        for c in frame.columns
        if c.startswith(("ndcg_at", "recall_at", "map_at")) and not c.endswith(("_low", "_high"))
    ]
    table = Table(title=f"Cross-validation ({report_dir.name}): mean ± std over time folds")
    table.add_column("model")
    for metric in metrics:
        table.add_column(metric, justify="right")
    grouped = frame.groupby("model", sort=False)[metrics]
    means, stds = grouped.mean(), grouped.std(ddof=1)
    for model in means.index:
        table.add_row(
            model,
            *[f"{means.loc[model, m]:.4f} ± {stds.loc[model, m]:.4f}" for m in metrics],
        )
    console.print(table)
    recall = report_dir / "candidate_recall.csv"
    if recall.exists():
        recall_frame = pd.read_csv(recall, index_col=0)
        recall_table = Table(title="Candidate recall (last fold)")
        recall_table.add_column("source")
        for column in recall_frame.columns:
            recall_table.add_column(column, justify="right")
        for source, row in recall_frame.iterrows():
            recall_table.add_row(str(source), *[f"{v:.3f}" for v in row])
        console.print(recall_table)


@app.command()
def features(
    full: Annotated[
        bool, typer.Option("--full", help="Materialize the whole ttl window, not incrementally.")
    ] = False,
) -> None:
    """Build point-in-time features from the lake, apply the Feast repo and materialize."""
    _prefect_defaults()
    from pipelines.flows import features_flow
    from reelrank.exceptions import ReelRankError

    try:
        stats = features_flow(incremental=not full)
    except ReelRankError as error:
        raise _fail(error) from error
    console.print(
        f"features: {stats['user_rows']:,} user rows, {stats['item_rows']:,} item rows "
        f"({stats['from']} .. {stats['to']}); online store: {get_settings().online_store}"
    )


@app.command()
def train(
    ranker: RankerOpt = "lgbm-lambdarank",
    compare: CompareOpt = None,
    folds: FoldsOpt = 3,
    diagnostics: DiagnosticsOpt = True,
    feast: Annotated[
        bool,
        typer.Option(
            "--feast/--no-feast",
            help="Train the final ranker on features from Feast's historical retrieval.",
        ),
    ] = True,
) -> None:
    """Cross-validate against baselines, fit, log to MLflow, register and gate promotion."""
    _prefect_defaults()
    from pipelines.flows import train_flow
    from reelrank.exceptions import ReelRankError

    try:
        fields = _train_fields(_lake_dataset_name(), ranker, compare, folds, diagnostics)
        result = train_flow(fields, use_feast=feast)
    except ReelRankError as error:
        raise _fail(error) from error
    print_train_result(result)


@app.command()
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
    train: Annotated[
        bool, typer.Option("--train/--no-train", help="Also train and register a model.")
    ] = True,
) -> None:
    """The whole pipeline as one Prefect flow: data -> features -> train."""
    _prefect_defaults()
    from pipelines.flows import reelrank_pipeline
    from reelrank.exceptions import ReelRankError

    name = _dataset(dataset)
    synthetic = _synthetic_config(users, items, events, seed) if name == "synthetic" else None
    started = time.perf_counter()
    try:
        result = reelrank_pipeline(
            name,
            source,
            synthetic,
            train=train,
            train_config=_train_fields(name, ranker, compare, folds, diagnostics),
        )
    except ReelRankError as error:
        raise _fail(error) from error
    print_ingest_summary(result["data"])
    stats = result["features"]
    console.print(
        f"features: {stats['user_rows']:,} user rows, {stats['item_rows']:,} item rows; "
        f"online store ({get_settings().online_store}) materialized"
    )
    if train:
        print_train_result(result["train"])
    console.print(f"pipeline finished in {time.perf_counter() - started:.0f} s")


@app.command()
def evaluate(
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Dataset (default: the lake's).")
    ] = None,
) -> None:
    """Print the comparison table of the latest training run."""
    name = dataset or _lake_dataset_name()
    _print_evaluation(get_settings().reports_path / name)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option("--host", help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option("--port", min=1, max=65535, help="Port.")] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="uvicorn worker processes.")
    ] = None,
) -> None:
    """Serve the registry's champion over HTTP (FastAPI + uvicorn); defaults from settings."""
    from reelrank.exceptions import ReelRankError
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
        raise _fail(error) from error


@app.command()
def deploy(
    work_pool: Annotated[
        str, typer.Option("--work-pool", help="Prefect process work pool the worker polls.")
    ] = "reelrank",
    cron: Annotated[
        str, typer.Option("--cron", help="Schedule (cron, UTC) of the pipeline.")
    ] = "0 3 * * *",
    dataset: DatasetOpt = "synthetic",
) -> None:
    """Register the pipeline with the Prefect server as a scheduled deployment (nightly)."""
    _prefect_defaults()
    from pipelines.flows import DEPLOYMENT_NAME, deploy_pipeline

    deployment_id = deploy_pipeline(work_pool, cron, _dataset(dataset))
    console.print(
        f"deployment reelrank-pipeline/{DEPLOYMENT_NAME} ({deployment_id}) on pool "
        f"{work_pool!r}, schedule {cron!r}"
    )


@app.command()
def report(
    dataset: Annotated[
        list[str] | None,
        typer.Option("--dataset", help="Datasets to report (default: those with results)."),
    ] = None,
    results: Annotated[
        Path, typer.Option("--results", help="Where the docs' results live.")
    ] = Path("design_docs/results"),
    collect_runs: Annotated[
        bool,
        typer.Option(
            "--collect/--no-collect",
            help="Copy the latest run outputs into the results data first (else re-render).",
        ),
    ] = True,
) -> None:
    """Write design_docs/results/*.md from the latest runs' outputs."""
    from reelrank.exceptions import ReelRankError
    from reelrank.report import collect, write_report

    settings = get_settings()
    names = dataset or sorted(
        p.name for p in settings.reports_path.glob("*") if (p / "cv_per_fold.csv").exists()
    )
    if not collect_runs and not dataset:
        names = sorted(p.name for p in (results / "data").glob("*") if p.is_dir())
    if not names:
        raise _fail(ReelRankError("no results to report; run `reelrank run` first."))
    for name in names:
        try:
            if collect_runs:
                collect(settings.reports_path, results, name)
            console.print(f"wrote {write_report(results, name)}")
        except ReelRankError as error:
            raise _fail(error) from error


@scratch_app.command("demo")
def scratch_demo(
    out: Annotated[Path, typer.Option("--out", help="Where to write the figures.")] = Path(
        "design_docs/figures"
    ),
) -> None:
    """Draw the learning figures: GD variants, regularisation paths, k-means, learning curve."""
    from reelrank.scratch.demo import make_figures

    for path in make_figures(out):
        console.print(f"wrote {path}")


if __name__ == "__main__":
    app()

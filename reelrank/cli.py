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


def _fail(error: Exception) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {error}")
    return typer.Exit(code=1)


def print_ingest_summary(summary: dict[str, Any]) -> None:
    """Print the per-table read/accepted/quarantined table of an ingest run."""
    table = Table(title="Ingest summary", show_lines=False)
    for column in ("table", "read", "accepted", "quarantined", "reasons"):
        table.add_column(column, justify="right" if column in {"read", "accepted", "quarantined"} else "left")
    for name, figures in summary["tables"].items():
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


@scratch_app.command("demo")
def scratch_demo(
    out: Annotated[
        Path, typer.Option("--out", help="Where to write the figures.")
    ] = Path("design_docs/figures"),
) -> None:
    """Draw the learning figures: GD variants, regularisation paths, k-means, learning curve."""
    from reelrank.scratch.demo import make_figures

    for path in make_figures(out):
        console.print(f"wrote {path}")


if __name__ == "__main__":
    app()

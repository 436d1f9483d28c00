"""Reading results: ``evaluate`` (the latest run's tables) and ``report`` (the docs' pages)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.options import JsonOpt
from cli.output import console, fail, print_evaluation, print_json
from reelrank.config import get_settings
from reelrank.exceptions import ReelRankError


def _lake_dataset_name() -> str:
    from reelrank.data.ingest import read_summary

    return str(read_summary(get_settings().lake_path).get("dataset", "unknown"))


def evaluate(
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Dataset (default: the lake's).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the comparison table of the latest training run."""
    from reelrank.training.report import RunReport

    try:
        name = dataset or _lake_dataset_name()
        directory = get_settings().reports_path / name
        if as_json:
            print_json(RunReport.load(directory).evaluation_records())
        else:
            print_evaluation(directory)
    except ReelRankError as error:
        raise fail(error) from error


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
    from reelrank.training.report import RunReport
    from reelrank.training.results_page import collect, write_report

    settings = get_settings()
    source = settings.reports_path if collect_runs else results / "data"
    names = dataset or sorted(p.name for p in source.glob("*") if RunReport.exists(p))
    if not names:
        raise fail(ReelRankError("no results to report; run `reelrank run` first."))
    for name in names:
        try:
            if collect_runs:
                collect(settings.reports_path, results, name)
            console.print(f"wrote {write_report(results, name)}")
        except ReelRankError as error:
            raise fail(error) from error

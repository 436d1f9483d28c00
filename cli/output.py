"""What the commands print: rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

VERBOSE = False
"""``reelrank --verbose``: log at INFO level and keep every traceback on the console."""
console = Console()
err_console = Console(stderr=True)
INGEST_COUNTS = ("read", "accepted", "quarantined")


def fail(error: Exception) -> typer.Exit:
    """Print ``error`` (its message says what to do) and return the exit to raise."""
    err_console.print(f"[bold red]error:[/] {error}")
    return typer.Exit(code=1)


def print_json(payload: Any) -> None:
    """Machine-readable output on stdout (no colours, no wrapping)."""
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")


def print_ingest_summary(summary: dict[str, Any]) -> None:
    """The per-table read/accepted/quarantined table of an ingest run."""
    table = Table(title="Ingest summary", show_lines=False)
    for column in ("table", *INGEST_COUNTS, "reasons"):
        table.add_column(column, justify="right" if column in INGEST_COUNTS else "left")
    for name in ("events", "users", "items"):
        figures = summary[name]
        reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(figures["reasons"].items()))
        table.add_row(name, *[f"{figures[c]:,}" for c in INGEST_COUNTS], reasons or "-")
    console.print(table)


def print_train_result(result: dict[str, Any], model_name: str, tracking_uri: str) -> None:
    promoted = "[green]champion[/]" if result["promoted"] else "[yellow]challenger only[/]"
    console.print(
        f"registered [bold]{model_name}[/] version {result['version']} "
        f"({promoted}): {result['reason']}"
    )
    console.print(f"MLflow run {result['run_id']} in {tracking_uri}")
    print_evaluation(Path(result["report_dir"]))


def print_evaluation(report_dir: Path) -> None:
    """The cross-validation and candidate-recall tables of the run report in ``report_dir``."""
    from reelrank.training.report import RunReport

    report = RunReport.load(report_dir)
    frame = report.per_fold
    metrics = [
        c
        for c in frame.columns
        if c.startswith(("ndcg_at", "recall_at", "map_at")) and not c.endswith(("_low", "_high"))
    ]
    table = Table(title=f"Cross-validation ({report_dir.name}): mean ± std over time folds")
    table.add_column("model")
    for metric in metrics:
        table.add_column(metric, justify="right")
    stats = report.metric_summary(metrics)
    for model in stats.index:
        cells = [
            f"{stats.loc[model, f'{m}_mean']:.4f} ± {stats.loc[model, f'{m}_std']:.4f}"
            for m in metrics
        ]
        table.add_row(str(model), *cells)
    console.print(table)
    recall_table = Table(title="Candidate recall (last fold)")
    recall_table.add_column("source")
    for column in report.candidate_recall.columns:
        recall_table.add_column(str(column), justify="right")
    for source, row in report.candidate_recall.iterrows():
        recall_table.add_row(str(source), *[f"{v:.3f}" for v in row])
    console.print(recall_table)

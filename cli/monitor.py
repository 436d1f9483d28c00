"""``reelrank monitor``: drift of the served window against the champion's reference."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.options import JsonOpt
from cli.output import console, fail, print_json
from cli.pipeline import prefect_defaults
from reelrank.exceptions import ReelRankError


def monitor(
    window: Annotated[
        float, typer.Option("--window", min=0.01, max=90, help="Days of serving to compare.")
    ] = 1.0,
    retrain: Annotated[
        bool,
        typer.Option("--retrain/--no-retrain", help="Retrain (gated) when a column drifted."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Per-feature PSI of the served users' online features and the PSI of the served
    scores against the champion's training reference (reelrank/monitoring/); the report
    goes to MLflow and to <data_dir>/monitoring/latest.json (the /metrics gauges)."""
    prefect_defaults()
    from pipelines.monitor import monitor_flow

    try:
        result = monitor_flow(window_days=window, retrain=retrain)
    except ReelRankError as error:
        raise fail(error) from error
    if as_json:
        print_json(result)
        return
    report = result["monitor"]
    console.print(
        f"model version {report['model_version']}, {report['users']:,} users and "
        f"{report['slates_items']:,} shown items from {report['window_start']} "
        f"(PSI threshold {report['threshold']})"
    )
    for name, value in sorted(report["feature_psi"].items(), key=lambda kv: -kv[1]):
        flag = " [red]drift[/]" if value > report["threshold"] else ""
        console.print(f"  {name:<28} {value:.4f}{flag}")
    if report["score_psi"] is not None:
        console.print(f"  {'score':<28} {report['score_psi']:.4f}")
    if "trigger" in result:
        done = "retrained" if result["retrained"] else "run with --retrain to retrain"
        console.print(f"retrain trigger: {result['trigger']} ({done})")

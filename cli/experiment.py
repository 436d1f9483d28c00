"""``reelrank experiment ...``: planning, analysing and simulating online experiments."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from cli.options import JsonOpt
from cli.output import console, fail, print_json
from reelrank.exceptions import ReelRankError

app = typer.Typer(help="Online experiments: plan, analyse, simulate on ground truth, off-policy.")


@app.command("plan")
def plan(
    baseline: Annotated[float, typer.Option("--baseline", help="The control rate, e.g. 0.10.")],
    mde: Annotated[
        float, typer.Option("--mde", help="Minimum detectable effect, relative (0.02 = 2 %).")
    ],
    alpha: Annotated[float, typer.Option("--alpha", help="Two-sided level.")] = 0.05,
    power: Annotated[float, typer.Option("--power", help="Power.")] = 0.8,
    design_effect: Annotated[
        float,
        typer.Option("--design-effect", help="Variance inflation of correlated units (>= 1)."),
    ] = 1.0,
    as_json: JsonOpt = False,
) -> None:
    """Units per arm to detect a relative effect on a rate (two-sided z-test)."""
    from reelrank.experiments.power import sample_size

    try:
        result = sample_size(baseline, mde, alpha, power, design_effect)
    except ReelRankError as error:
        raise fail(error) from error
    if as_json:
        print_json(asdict(result))
        return
    console.print(
        f"baseline {baseline:g}, effect {mde:+.2%} relative ({result.delta:+.5f} absolute), "
        f"alpha {alpha:g}, power {power:g}: [bold]{result.per_arm:,}[/] per arm"
        + (
            f"; {result.per_arm_with_design_effect:,} with design effect {design_effect:g}"
            if design_effect != 1.0
            else ""
        )
    )

"""``reelrank experiment ...``: planning, analysing and simulating online experiments."""

from __future__ import annotations

from dataclasses import asdict
from enum import StrEnum
from typing import Annotated, Any

import typer

from cli.options import JsonOpt
from cli.output import console, fail, print_json
from reelrank.config import get_settings
from reelrank.exceptions import ReelRankError


class Design(StrEnum):
    """The designs ``experiment simulate`` runs."""

    aa = "aa"
    ab = "ab"
    interleaving = "interleaving"


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


def _simulated_setup() -> tuple[Any, Any, Any]:
    """The world's truth, the champion loaded in process, and users' pre-test activity."""
    from cli.pipeline import prefect_defaults
    from serving.inprocess import simulation_setup

    prefect_defaults()
    return simulation_setup(get_settings())


@app.command("simulate")
def simulate(
    design: Annotated[
        Design,
        typer.Option(
            "--design",
            help="aa: both arms the champion (true effect 0); ab: the champion against "
            "itself with a strong long-tail boost; interleaving: the same two, team-drafted "
            "into every row.",
        ),
    ] = Design.ab,
    days: Annotated[int, typer.Option("--days", min=1, max=60, help="Simulated days.")] = 7,
    users: Annotated[
        int, typer.Option("--users", min=2, max=100_000, help="Visits per day.")
    ] = 200,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Simulator seed and salt.")] = 0,
    k: Annotated[int, typer.Option("--k", min=1, max=100, help="Items per row.")] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Run an A/A or A/B test in process on the synthetic world: the estimate, its
    interval and the true effect from the ground truth (reelrank/experiments/simulation.py)."""
    from reelrank.experiments.abtest import AbResult
    from reelrank.experiments.simulation import (
        SimulatedDesign,
        experiment_config,
        simulate_experiment,
    )
    from reelrank.loop.simulator import Simulator
    from serving.inprocess import experiment_client

    try:
        truth, service, pre_activity = _simulated_setup()
        chosen: SimulatedDesign = design.value
        client = experiment_client(service, experiment_config(chosen, seed))
        simulator = Simulator(truth, client, k=k, seed=seed)
        run = simulate_experiment(simulator, client, chosen, days, users, pre_activity)
    except ReelRankError as error:
        raise fail(error) from error
    if as_json:
        print_json(run.record())
        return
    estimate, low, high, p_value = run.estimate
    lines = [f"{chosen.upper()} test, {days} days x {users} visits (seed {seed}): "
             f"{run.visits:,} slates"]  # fmt: skip
    if isinstance(run.result, AbResult):
        r = run.result
        lines.append(
            f"  play rate control {r.control.play_rate:.4f}, treatment "
            f"{r.treatment.play_rate:.4f} ({r.control.users + r.treatment.users:,} users; "
            f"sample ratio p = {r.srm.p_value:.3f})"
        )
        unit = "plays per slate"
    else:
        lines.append(f"  rows won: control {run.result.wins_a:,}, treatment "
                     f"{run.result.wins_b:,}, ties {run.result.ties:,}")  # fmt: skip
        unit = "preference for the treatment"
    covered = {True: "[green]covered[/]", False: "[red]not covered[/]", None: "another scale"}
    lines += [
        f"  estimate {estimate:+.4f} {unit}, 95% CI [{low:+.4f}, {high:+.4f}], p = {p_value:.3f}",
        f"  true effect {run.true_effect:+.4f} plays per slate (from the ground truth): "
        + covered[run.covered],
    ]
    console.print("\n".join(lines))


@app.command("analyze")
def analyze(
    experiment: Annotated[
        str, typer.Option("--experiment", help="The experiment's name (as served).")
    ],
    control: Annotated[
        str | None,
        typer.Option("--control", help="The control arm (default: the configured first arm)."),
    ] = None,
    log_mlflow: Annotated[
        bool, typer.Option("--mlflow/--no-mlflow", help="Log the analysis as an MLflow run.")
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Analyse an experiment from the ingested logs (run `reelrank ingest-feedback` first):
    per-arm rates, the difference with its interval at the user level, CUPED, the
    sample-ratio check; the page goes to <data_dir>/reports/experiments/ and to MLflow."""
    from reelrank.data.io import atomic_write_text
    from reelrank.experiments.analysis import analyse_lake, render_page
    from reelrank.experiments.tracking import log_analysis

    settings = get_settings()
    configured = settings.experiment
    split = (
        {arm.name: arm.weight for arm in configured.arms}
        if configured is not None and configured.name == experiment
        else None
    )
    try:
        analysis = analyse_lake(settings.lake_path, experiment, control, split)
    except ReelRankError as error:
        raise fail(error) from error
    page = render_page(analysis)
    path = settings.reports_path / "experiments" / f"{experiment}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(page, path)
    run_id = log_analysis(settings, analysis, page) if log_mlflow else None
    if as_json:
        print_json(analysis.record() | {"page": str(path), "mlflow_run_id": run_id})
        return
    console.print(page)
    console.print(f"page: {path}" + (f"; MLflow run {run_id}" if run_id else ""))


@app.command("ope")
def ope(
    candidate: Annotated[
        str,
        typer.Option(
            "--candidate", help="The registered version to evaluate (or an alias, e.g. champion)."
        ),
    ],
    candidate_rerank: Annotated[
        str | None,
        typer.Option(
            "--candidate-rerank",
            help='The candidate\'s re-ranking as JSON, e.g. {"long_tail": 0.5} (default: '
            "REELRANK_RERANK).",
        ),
    ] = None,
    days: Annotated[int, typer.Option("--days", min=1, max=60, help="Simulated days.")] = 7,
    users: Annotated[
        int, typer.Option("--users", min=2, max=100_000, help="Visits per day.")
    ] = 200,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Simulator seed.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Estimate a candidate's plays per slate from the exploring champion's logs (IPS,
    self-normalised IPS, doubly robust) on the synthetic world, beside its true value
    (reelrank/experiments/offpolicy.py)."""
    from pydantic import ValidationError

    from reelrank.experiments.offpolicy import evaluate
    from reelrank.loop.simulator import Simulator
    from reelrank.models.reranking import RerankStrengths
    from serving.inprocess import off_policy_client
    from serving.state import load_model_state

    try:
        rerank = (
            None
            if candidate_rerank is None
            else RerankStrengths.model_validate_json(candidate_rerank).config()
        )
    except ValidationError as error:
        raise typer.BadParameter(f"--candidate-rerank {candidate_rerank!r}: {error}") from error
    ref = f"version:{candidate}" if candidate.isdigit() else f"alias:{candidate}"
    try:
        truth, service, _ = _simulated_setup()
        client = off_policy_client(service, load_model_state(get_settings(), ref), rerank)
        result = evaluate(Simulator(truth, client, seed=seed), client, days, users)
    except ReelRankError as error:
        raise fail(error) from error
    if as_json:
        print_json(result.record())
        return
    lines = [
        f"candidate {ref}, logs of the champion exploring ({result.slates:,} slates, seed "
        f"{seed}); support {result.support:.1%}, logged rows it agrees with {result.matches:.1%}",
        f"  true plays per slate: candidate {result.true_target:.4f}, logging "
        f"{result.true_logging:.4f} (observed {result.observed_logging:.4f})",
    ]
    for name in ("ips", "snips", "doubly_robust"):
        value = getattr(result, name)
        lines.append(f"  {name:<14} {value:.4f} (error {value - result.true_target:+.4f})")
    console.print("\n".join(lines))

"""``reelrank monitor``: drift of the served window against the champion's reference."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any, Final

import typer

from cli.options import FoldsOpt, JsonOpt
from cli.output import console, fail, print_json
from cli.pipeline import flows, prefect_defaults
from reelrank.config import get_settings
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
        f"{report['slates_items']:,} shown items from {report['window_start']} (a column "
        f"drifts over its threshold: {report['threshold']}, or the window's noise level)"
    )
    levels = dict(report.get("feature_thresholds", {}))
    values = dict(report["feature_psi"])
    if report["score_psi"] is not None:
        values["score"] = report["score_psi"]
        levels["score"] = report.get("score_threshold") or report["threshold"]
    console.print(f"  {'column':<28} {'PSI':>7} {'threshold':>10}")
    for name, value in sorted(values.items(), key=lambda kv: -kv[1]):
        level = levels.get(name, report["threshold"])
        flag = " [red]drift[/]" if name in report["drifted"] else ""
        console.print(f"  {name:<28} {value:7.4f} {level:10.4f}{flag}")
    if "trigger" in result:
        done = "retrained" if result["retrained"] else "run with --retrain to retrain"
        console.print(f"retrain trigger: {result['trigger']} ({done})")


# ----------------------------------------------------------------------------- drift run
def _print_timeline(arm: str, days: list[dict[str, Any]]) -> None:
    from rich.table import Table

    from reelrank.monitoring.timeline import COLUMNS, cell

    table = Table(title=f"{arm}: day by day (true play rate from the ground truth)")
    for _, title, _ in COLUMNS:
        table.add_column(title, justify="right")
    for record in days:
        table.add_row(*[cell(record, key, fmt) for key, _, fmt in COLUMNS])
    console.print(table)


def _write_page(run: dict[str, Any], results: Path) -> None:
    from reelrank.data.io import atomic_path, atomic_write_text, dumps_json
    from reelrank.monitoring.timeline import DATA, FIGURE, PAGE, plot, render_page

    results.mkdir(parents=True, exist_ok=True)
    with atomic_path(results / FIGURE) as tmp:
        plot(run, tmp.with_suffix(".png"))
        tmp.with_suffix(".png").replace(tmp)
    atomic_write_text(dumps_json(run), results / DATA)
    atomic_write_text(render_page(run), results / PAGE)
    console.print(f"wrote {results / PAGE}, {results / FIGURE} and {results / DATA}")


ARMS: Final = ("change", "control", "no-retrain")
"""The arms of a drift study: the change answered by the monitor's retrains; the same days
with no change (the control, for what the days alone do); the change with the trigger off
(what the retrains bought)."""


BaseOpt = Annotated[
    Path | None,
    typer.Option(
        "--base",
        help="Run the study's arms (change, control, no-retrain) on copies of this data "
        "dir (never changed); without it, one run in the data dir in force.",
    ),
]
ArmOpt = Annotated[
    list[str] | None,
    typer.Option("--arm", help=f"With --base: the arms to run ({', '.join(ARMS)}; all)."),
]
WorkdirOpt = Annotated[
    Path | None,
    typer.Option("--workdir", help="With --base: where the arms' copies go (a temp dir)."),
]
RenderOpt = Annotated[
    Path | None,
    typer.Option("--render", help="Only re-render the page of this recorded drift.json."),
]
WarmUpOpt = Annotated[
    int,
    typer.Option(
        "--warm-up",
        min=0,
        max=60,
        help="With --base: first run the loop this many days (daily retrains, every one "
        "promoted) so the arms start from a champion trained on simulated days.",
    ),
]


CohortOpt = Annotated[
    int,
    typer.Option(
        "--cohort",
        min=0,
        help="Instead of shifting everyone's taste: from --change-day on, this many "
        "lapsed users come back, their preference for --genre moved by --shift (0: no "
        "cohort, the genre shift).",
    ),
]
CohortShareOpt = Annotated[
    float,
    typer.Option("--cohort-share", help="With --cohort: the cohort's share of each day's visits."),
]


def _arm_arguments(arm: str, common: list[str], shift: float, cohort: list[str]) -> list[str]:
    """An arm's ``drift-run`` arguments: the control has no change at all (no shift, no
    cohort); the other two the study's change."""
    if arm == "control":
        return [*common, "--shift", "0", "--retrain"]
    retrain = "--retrain" if arm == "change" else "--no-retrain"
    return [*common, *cohort, "--shift", str(shift), retrain]


def _cohort_arguments(cohort: int, share: float) -> list[str]:
    return ["--cohort", str(cohort), "--cohort-share", str(share)] if cohort else []


def _run_arms(
    base: Path, workdir: Path, arms: list[str], common: list[str], shift: float,
    cohort: list[str],
) -> dict[str, Any]:  # fmt: skip
    """``reelrank drift-run`` per arm on its own copy of ``base``, in processes of their own
    (two at a time: MLflow's and the settings' state are per process)."""
    from cli.loop import copy_for_process

    runs: dict[str, Any] = {}
    pending = list(arms)
    while pending:
        batch, pending = pending[:2], pending[2:]
        started = []
        for arm in batch:
            _, env = copy_for_process(base, workdir / arm)
            record = workdir / arm / "run.json"
            arguments = [*_arm_arguments(arm, common, shift, cohort), "--record", str(record)]
            console.print(f"[bold]{arm}[/]: reelrank drift-run {' '.join(arguments)}")
            log = (workdir / arm / "log.txt").open("w")
            process = subprocess.Popen(
                [sys.executable, "-m", "cli", "drift-run", *arguments],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            started.append((arm, process, record, log))
        for arm, process, record, log in started:
            code = process.wait()
            log.close()
            if code != 0:
                raise ReelRankError(
                    f"`reelrank drift-run` for the {arm} arm exited with {code}; its output is "
                    f"in {workdir / arm / 'log.txt'}."
                )
            study = json.loads(record.read_text(encoding="utf-8"))
            runs[arm] = next(iter(study["arms"].values()))
    return runs


def drift_run(
    days: Annotated[int, typer.Option("--days", min=1, max=90, help="Simulated days.")] = 8,
    genre: Annotated[
        str, typer.Option("--genre", help="The genre whose true appeal changes.")
    ] = "Drama",
    shift: Annotated[
        float,
        typer.Option("--shift", help="Change of preference (sd) of a title wholly of the genre."),
    ] = -1.5,
    change_day: Annotated[
        int, typer.Option("--change-day", min=0, help="First simulated day of the change.")
    ] = 2,
    cohort: CohortOpt = 0,
    cohort_share: CohortShareOpt = 0.3,
    users: Annotated[int, typer.Option("--users", min=1, help="Visits per simulated day.")] = 200,
    k: Annotated[int, typer.Option("--k", min=1, max=100, help="Items per row.")] = 10,
    seed: Annotated[int, typer.Option("--seed", help="The simulator's seed.")] = 0,
    folds: FoldsOpt = 2,
    start_day: Annotated[
        int,
        typer.Option("--start-day", min=0, help="First simulated day (after earlier ones)."),
    ] = 0,
    retrain: Annotated[
        bool,
        typer.Option("--retrain/--no-retrain", help="Let drift over the threshold retrain."),
    ] = True,
    base: BaseOpt = None,
    arm: ArmOpt = None,
    workdir: WorkdirOpt = None,
    warm_up: WarmUpOpt = 0,
    record: Annotated[
        Path | None, typer.Option("--record", help="Also write the days as JSON here.")
    ] = None,
    results: Annotated[
        Path | None,
        typer.Option("--results", help="Write the results page (drift.md) into this folder."),
    ] = None,
    render: RenderOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change the synthetic world at a day; serve, monitor and retrain through it.

    From --change-day on, the simulated users' true preference for --genre moves by
    --shift, or with --cohort, that many lapsed users come back (--cohort-share of each
    day's visits) with that change of taste (the service and the pipelines never see the
    change, only what the users do); each day: simulate -> monitor ->
    ingest -> features -> retrain on drift (gated) -> reload. Per day: the true play rate,
    the largest PSI against its threshold, the play-rate test, the alerts, the retrain and
    the promotion."""
    if render is not None:  # re-render a recorded study's page, nothing run
        _write_page(json.loads(render.read_text(encoding="utf-8")), results or render.parent)
        return
    change = _change(genre, shift, change_day, cohort, cohort_share)
    with_cohort = _cohort_arguments(cohort, cohort_share)
    common = [
        "--days", str(days), "--genre", genre, "--change-day", str(change_day),
        "--users", str(users), "--k", str(k), "--seed", str(seed), "--folds", str(folds),
    ]  # fmt: skip
    started = time.perf_counter()
    flows()
    from reelrank.loop.study import build_command, world_of

    try:
        if base is not None:
            work = workdir or _temp_workdir()
            source = base.resolve()
            if warm_up:
                source = _warm_up(source, work, warm_up, users, k, seed, folds)
            world, runs, arguments = _study_arms(
                source, arm, work, start_day, common, shift, warm_up, with_cohort
            )
        else:
            world = world_of(get_settings().data_dir)
            runs = {_arm_name(shift, cohort, retrain): _one_run(
                days, change, start_day, users, k, seed, retrain, folds, as_json
            )}  # fmt: skip
            extra = [*with_cohort, "--shift", str(shift), "--start-day", str(start_day)]
            arguments = " ".join(common + extra + ([] if retrain else ["--no-retrain"]))
    except ReelRankError as error:
        raise fail(error) from error
    study = {
        "commands": [build_command(world, folds), f"reelrank drift-run {arguments} --results DIR"],
        "setup": {"world": world, "change": change.record(), "days": days, "users_per_day": users,
                  "k": k, "seed": seed, "folds": folds, "gate": "strict"},
        "arms": runs,
        "seconds": round(time.perf_counter() - started, 1),
    }  # fmt: skip
    _finish(study, record, results, as_json)


def _change(genre: str, shift: float, day: int, cohort: int, share: float) -> Any:
    """The change the options describe (a cohort with --cohort, else a genre shift)."""
    from reelrank.loop.world_change import GenreShift, ReturningCohort

    try:
        if cohort:
            return ReturningCohort(genre, shift, day, cohort, share)
        return GenreShift(genre, shift, day)
    except ReelRankError as error:
        raise fail(error) from error


def _finish(
    study: dict[str, Any], record: Path | None, results: Path | None, as_json: bool
) -> None:
    """Write the record and the page if asked; print the study (JSON or tables)."""
    if record is not None:
        record.write_text(json.dumps(study, indent=2, default=str) + "\n", encoding="utf-8")
    if results is not None:
        _write_page(study, results)
    if as_json:
        print_json(study)
        return
    for name, run in study["arms"].items():
        _print_timeline(name, run["days"])
    console.print(f"drift run finished in {study['seconds']:.0f} s")


def _warm_up(
    base: Path, workdir: Path, days: int, users: int, k: int, seed: int, folds: int
) -> Path:
    """``reelrank loop`` for ``days`` rounds (gate ``always``) on a copy of ``base``: the
    simulated users' own activity replaces the generated world's in the feature windows
    and the champion is trained on it. Its own seed, so the arms' users are new draws."""
    from cli.loop import copy_for_process

    data, env = copy_for_process(base, workdir / "warm-up")
    arguments = [
        "--rounds", str(days), "--users", str(users), "--k", str(k), "--seed", str(seed + 1),
        "--gate", "always", "--folds", str(folds),
    ]  # fmt: skip
    console.print(f"[bold]warm-up[/]: reelrank loop {' '.join(arguments)}")
    log = workdir / "warm-up" / "log.txt"
    with log.open("w") as handle:
        code = subprocess.run(
            [sys.executable, "-m", "cli", "loop", *arguments],
            env=env, stdout=handle, stderr=subprocess.STDOUT, check=False,
        ).returncode  # fmt: skip
    if code != 0:
        raise ReelRankError(f"the warm-up `reelrank loop` exited with {code}; see {log}.")
    return data


def _temp_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="reelrank-drift-"))


def _study_arms(
    source: Path, arm: list[str] | None, work: Path, start_day: int,
    common: list[str], shift: float, warm_up: int, cohort: list[str],
) -> tuple[dict[str, Any], dict[str, Any], str]:  # fmt: skip
    """The arms on copies of ``source``: the world, each arm's run, the study's arguments."""
    from reelrank.loop.study import next_simulated_day, world_of

    arms = list(arm or ARMS)
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        raise typer.BadParameter(f"--arm {unknown}: choose among {', '.join(ARMS)}.")
    first = next_simulated_day(source) if start_day == 0 else start_day
    common = [*common, "--start-day", str(first)]
    runs = _run_arms(source, work, arms, common, shift, cohort)
    arguments = " ".join(
        ["--base DIR", "--warm-up", str(warm_up), *common, *cohort, "--shift", str(shift)]
    )
    return world_of(source), runs, arguments


def _arm_name(shift: float, cohort: int, retrain: bool) -> str:
    if shift == 0 and not cohort:
        return "control"
    return "change" if retrain else "no-retrain"


def _one_run(
    days: int, change: Any, start_day: int, users: int, k: int, seed: int, retrain: bool,
    folds: int, as_json: bool,
) -> dict[str, Any]:  # fmt: skip
    """One drift run in the data dir in force."""
    from pipelines.drift import drift_flow

    config = {
        "days": days, "change": change.record(),
        "start_day": start_day, "users_per_day": users, "k": k, "seed": seed, "retrain": retrain,
        "train": {"n_folds": folds, "diagnostics": False},
    }  # fmt: skip
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr if as_json else sys.stdout):
        timeline = drift_flow(config)
    return {
        "shift": change.shift,
        "retrain": retrain,
        "start_day": start_day,
        "days": timeline,
        "seconds": round(time.perf_counter() - started, 1),
    }

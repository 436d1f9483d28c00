"""Closing the loop: ``ingest-feedback``, ``simulate``, ``loop`` and ``loop-study``."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer
from rich.table import Table

from cli.options import FoldsOpt, JsonOpt
from cli.output import console, fail, print_json
from cli.pipeline import flows, prefect_defaults
from reelrank.config import get_settings
from reelrank.exceptions import ReelRankError

if TYPE_CHECKING:
    from reelrank.data.synthetic import GroundTruth

LOG_COUNTS: Final = ("read", "accepted", "quarantined")
DEFAULT_GRACE_SECONDS: Final = 2.0  # reelrank.loop.feedback's (not imported: --help stays fast)
DEFAULT_POLICIES: Final = ('{"kind": "greedy"}', '{"kind": "epsilon", "epsilon": 0.3, "pool": 60}')

SeedOpt = Annotated[int, typer.Option("--seed", help="The simulator's seed.")]
UsersOpt = Annotated[int, typer.Option("--users", min=1, help="Visits per simulated day.")]
KOpt = Annotated[int, typer.Option("--k", min=1, max=100, help="Items per row.")]
StartDayOpt = Annotated[
    int, typer.Option("--start-day", min=0, help="First simulated day (0: after the span).")
]
PolicyOpt = Annotated[
    str | None,
    typer.Option(
        "--policy", help='Serving policy as REELRANK_POLICY JSON, e.g. {"kind": "epsilon"}.'
    ),
]
GateOpt = Annotated[
    str,
    typer.Option(
        "--gate", help="strict: the promotion gate decides; always: promote each retrain."
    ),
]


# ----------------------------------------------------------------------------- ingest
def print_feedback_summary(summary: dict[str, Any]) -> None:
    """The per-log read/accepted/quarantined table and what the lake gained."""
    table = Table(title="Feedback ingestion")
    for column in ("log", *LOG_COUNTS, "reasons"):
        table.add_column(column, justify="right" if column in LOG_COUNTS else "left")
    for log in ("impressions", "feedback"):
        figures = summary[log]
        reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(figures["reasons"].items()))
        table.add_row(log, *[f"{figures[c]:,}" for c in LOG_COUNTS], reasons or "-")
    console.print(table)
    added = summary["added"]
    rows = ", ".join(
        f"{kind} {added[kind]:+,}" for kind in ("play", "click", "rating", "impression_no_action")
    )
    console.print(
        f"lake feedback rows added: {rows}; events added: {added['events_from_feedback']:+,}"
    )
    if summary["feedback"]["deferred"]:
        waiting = summary["feedback"]["deferred"]
        console.print(
            f"{waiting:,} feedback lines received in the grace period wait for the next run"
        )
    state = "written" if summary["wrote"] else "unchanged (nothing new)"
    console.print(f"lake {summary['lake_dir']}: {state}; data version {summary['data_version']}")


def ingest_feedback(
    grace_seconds: Annotated[
        float,
        typer.Option("--grace-seconds", min=0.0, help="Feedback received this recently waits."),
    ] = DEFAULT_GRACE_SECONDS,
    as_json: JsonOpt = False,
) -> None:
    """Ingest the service's impression and feedback logs into the lake (idempotent).

    Every line is validated and accepted or quarantined with a reason; a second run over
    the same logs adds nothing (a watermark)."""
    from reelrank.loop.feedback import ingest_feedback as run

    try:
        summary = run(get_settings(), grace_seconds=grace_seconds).to_dict()
    except ReelRankError as error:
        raise fail(error) from error
    if as_json:
        print_json(summary)
    else:
        print_feedback_summary(summary)


# ----------------------------------------------------------------------------- simulate
def _truth() -> GroundTruth:
    from reelrank.loop.simulator import world_truth

    return world_truth(get_settings())


def _day_records(
    days: list[Any], model: Any, popularity: Any, start_day: int
) -> list[dict[str, Any]]:
    from reelrank.loop.metrics import round_metrics
    from reelrank.loop.simulator import visits_frame

    records = []
    for offset, visits in enumerate(days):
        shown = visits_frame(visits, model)
        clicks, plays = int(shown["clicked"].sum()), int(shown["played"].sum())
        metrics = round_metrics(shown, popularity)
        records.append({"day": start_day + offset, "clicks": clicks, "plays": plays, **metrics})
    return records


def _print_days(records: list[dict[str, Any]]) -> None:
    table = Table(title="Simulated days")
    columns = (
        "day",
        "visits",
        "impressions",
        "clicks",
        "plays",
        "true_play_rate",
        "observed_play_rate",
    )
    for column in columns:
        table.add_column(column, justify="right")
    for r in records:
        table.add_row(
            str(r["day"]), f"{r['visits']:,.0f}", f"{r['impressions']:,.0f}", f"{r['clicks']:,}",
            f"{r['plays']:,}", f"{r['true_play_rate']:.4f}", f"{r['observed_play_rate']:.4f}",
        )  # fmt: skip
    console.print(table)


def simulate(
    api: Annotated[
        str | None, typer.Option("--api", help="The service's URL, e.g. http://127.0.0.1:8000.")
    ] = None,
    in_process: Annotated[
        bool,
        typer.Option("--in-process", help="Serve from the registry's champion in this process."),
    ] = False,
    days: Annotated[int, typer.Option("--days", min=1, max=365, help="Simulated days.")] = 1,
    users: UsersOpt = 200,
    seed: SeedOpt = 0,
    start_day: StartDayOpt = 0,
    k: KOpt = 10,
    max_rate: Annotated[
        float, typer.Option("--max-rate", min=0.1, help="At most this many requests per second.")
    ] = 50.0,
    max_requests: Annotated[
        int | None, typer.Option("--max-requests", min=1, help="Stop after this many requests.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Simulated users on the world's ground truth request the row and post feedback.

    They examine by a position-bias model and click and play by their true preference
    (reelrank/loop/simulator.py); requests are bounded in rate and count."""
    from reelrank.loop.simulator import Simulator

    if (api is None) == (not in_process):
        raise fail(ReelRankError("give exactly one of --api URL or --in-process."))
    try:
        truth = _truth()
        client: Any = _http_client(api) if api is not None else _in_process_client()
    except ReelRankError as error:
        raise fail(error) from error
    simulator = Simulator(
        truth, client, k=k, seed=seed, max_requests=max_requests,
        max_rate=max_rate if api is not None else None,
    )  # fmt: skip
    try:
        visits = simulator.run(days, users, start_day)
    except ReelRankError as error:
        raise fail(error) from error
    finally:
        client.close()
    records = _day_records(visits, simulator.model, truth.item_popularity, start_day)
    if as_json:
        print_json(records)
    else:
        _print_days(records)
        console.print(f"{simulator.requests:,} requests; logs in {get_settings().data_dir}")


def _http_client(api: str) -> Any:
    from reelrank.loop.http import HttpRowClient

    return HttpRowClient(api)


def _in_process_client() -> Any:
    prefect_defaults()
    from serving.feedback import FeedbackLog
    from serving.impressions import ImpressionLog
    from serving.inprocess import InProcessRowClient
    from serving.service import RecommendationService

    settings = get_settings()
    service = RecommendationService(settings)
    service.load()
    impressions = ImpressionLog(settings.impressions_path, queue_size=1_000_000)
    return InProcessRowClient(service, impressions, FeedbackLog(settings.feedback_path))


# ----------------------------------------------------------------------------- loop
def _policy(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    from pydantic import TypeAdapter, ValidationError

    from reelrank.experiments.config import PolicyConfig

    try:
        return TypeAdapter(PolicyConfig).validate_json(text).model_dump()
    except ValidationError as error:
        raise typer.BadParameter(f"--policy {text!r}: {error}") from error


ROUND_COLUMNS: Final = (
    ("round", "round", "{:d}"),
    ("served_version", "served", "{}"),
    ("visits", "visits", "{:,.0f}"),
    ("true_play_rate", "true play", "{:.4f}"),
    ("observed_play_rate", "obs. play", "{:.4f}"),
    ("coverage", "coverage", "{:.3f}"),
    ("exposure_gini", "Gini", "{:.3f}"),
    ("top_decile_share", "top 10%", "{:.3f}"),
    ("events_added", "events+", "{:,d}"),
    ("next_version", "next", "{}"),
)


def _print_rounds(records: list[dict[str, Any]]) -> None:
    table = Table(title="The loop, per round (true play rate from the ground truth)")
    for _, title, _ in ROUND_COLUMNS:
        table.add_column(title, justify="right")
    for record in records:
        table.add_row(*[fmt.format(record[key]) for key, _, fmt in ROUND_COLUMNS])
    console.print(table)


def loop(
    rounds: Annotated[int, typer.Option("--rounds", min=1, max=100, help="Rounds.")] = 3,
    users: UsersOpt = 200,
    k: KOpt = 10,
    seed: SeedOpt = 0,
    start_day: StartDayOpt = 0,
    policy: PolicyOpt = None,
    gate: GateOpt = "strict",
    folds: FoldsOpt = 2,
    features: Annotated[
        bool, typer.Option("--features/--no-features", help="Rebuild features each round.")
    ] = True,
    record: Annotated[
        Path | None, typer.Option("--record", help="Also write the rounds as JSON here.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Simulate a day -> ingest -> retrain -> gate -> reload, for ROUNDS rounds.

    One Prefect flow, served in process; per round the true and observed play rate,
    coverage and the exposure Gini of what was served."""
    from pipelines.loop import GATES

    if gate not in GATES:
        raise typer.BadParameter(f"--gate {gate!r}: choose {' or '.join(GATES)}.")
    config = {
        "rounds": rounds, "users_per_day": users, "k": k, "seed": seed, "start_day": start_day,
        "gate": gate, "policy": _policy(policy), "features": features,
        "train": {"n_folds": folds, "diagnostics": False},
    }  # fmt: skip
    flows()  # Prefect's defaults and quiet console, as for the other flows
    from pipelines.loop import loop_flow

    started = time.perf_counter()
    try:
        # Libraries print progress (MLflow's registrations); with --json stdout is the JSON.
        with contextlib.redirect_stdout(sys.stderr if as_json else sys.stdout):
            records = loop_flow(config)
    except ReelRankError as error:
        raise fail(error) from error
    if record is not None:
        record.write_text(json.dumps(records, indent=2, default=str) + "\n", encoding="utf-8")
    if as_json:
        print_json(records)
        return
    _print_rounds(records)
    console.print(f"loop finished in {time.perf_counter() - started:.0f} s")


# ----------------------------------------------------------------------------- study
def copy_for_process(
    base: Path, folder: Path, prefect_home: Path | None = None
) -> tuple[Path, dict[str, str]]:
    """A self-contained copy of the data dir ``base`` at ``folder/data`` and the environment
    of a ``reelrank`` process of its own on it: this one's, without an MLflow URI (the
    copy's own store decides), with its own Prefect home (``folder/prefect`` by default).
    A process of its own, because MLflow's and the settings' state are per process."""
    from reelrank.loop.study import copy_data_dir

    data = copy_data_dir(base, folder / "data")
    env = {n: v for n, v in os.environ.items() if not n.endswith("MLFLOW_TRACKING_URI")}
    env |= {"REELRANK_DATA_DIR": str(data), "PREFECT_HOME": str(prefect_home or folder / "prefect")}
    return data, env


def _run_policy(
    base: Path, workdir: Path, label: str, arguments: list[str]
) -> list[dict[str, Any]]:
    """``reelrank loop`` on a fresh, self-contained copy of ``base``, in a process of its
    own (MLflow's and the settings' state are per process)."""
    _, env = copy_for_process(base, workdir / label, prefect_home=workdir / "prefect")
    record = workdir / label / "rounds.json"
    console.print(f"[bold]{label}[/]: reelrank loop {' '.join(arguments)}")
    done = subprocess.run(
        [sys.executable, "-m", "cli", "loop", *arguments, "--record", str(record)],
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise ReelRankError(f"`reelrank loop` for {label} exited with {done.returncode}.")
    rounds: list[dict[str, Any]] = json.loads(record.read_text(encoding="utf-8"))
    return rounds


def _write_study(study: dict[str, Any], results: Path) -> None:
    from reelrank.data.io import atomic_path, atomic_write_text, dumps_json
    from reelrank.loop.report import DATA, FIGURE, PAGE, plot, render_page

    results.mkdir(parents=True, exist_ok=True)
    with atomic_path(results / FIGURE) as tmp:
        plot(study, tmp.with_suffix(".png"))
        tmp.with_suffix(".png").replace(tmp)
    atomic_write_text(dumps_json(study), results / DATA)
    atomic_write_text(render_page(study), results / PAGE)
    console.print(f"wrote {results / PAGE}, {results / FIGURE} and {results / DATA}")


def loop_study(
    base: Annotated[
        Path | None,
        typer.Option(
            "--base",
            help="A data dir built by `reelrank run --dataset synthetic` (copied, never changed).",
        ),
    ] = None,
    rounds: Annotated[int, typer.Option("--rounds", min=1, max=100, help="Rounds per run.")] = 5,
    users: UsersOpt = 200,
    k: KOpt = 10,
    seed: SeedOpt = 0,
    gate: GateOpt = "always",
    folds: FoldsOpt = 2,
    policy: Annotated[
        list[str] | None, typer.Option("--policy", help="A policy to run (repeatable; JSON).")
    ] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", help="Each policy's name on the page.")
    ] = None,
    results: Annotated[Path, typer.Option("--results", help="Where the results page goes.")] = Path(
        "design_docs/results"
    ),
    workdir: Annotated[
        Path | None,
        typer.Option("--workdir", help="Where the runs' copies go (default: a temp dir)."),
    ] = None,
    run: Annotated[
        bool, typer.Option("--run/--no-run", help="Run the loops (else re-render loop.json).")
    ] = True,
) -> None:
    """Run the loop per policy from copies of one data dir; write the results page.

    The page is design_docs/results/loop.md, with its figure and raw figures (loop.json)."""
    from reelrank.loop.report import DATA

    if not run:
        _write_study(json.loads((results / DATA).read_text(encoding="utf-8")), results)
        return
    if base is None:
        raise typer.BadParameter("--base DIR is required to run the loops.")
    policies = list(policy or DEFAULT_POLICIES)
    labels = list(label or [json.loads(p)["kind"] for p in policies])
    if len(labels) != len(policies):
        raise typer.BadParameter("give one --label per --policy.")
    work = workdir or Path(tempfile.mkdtemp(prefix="reelrank-loop-study-"))
    common = ["--rounds", str(rounds), "--users", str(users), "--k", str(k), "--seed", str(seed)]
    common += ["--gate", gate, "--folds", str(folds)]
    from reelrank.loop.study import build_command, world_of

    try:
        world = world_of(base.resolve())
        runs = [
            {
                "label": name,
                "policy": _policy(text),
                "policy_label": _policy_label(text),
                "rounds": _run_policy(base.resolve(), work, name, [*common, "--policy", text]),
            }
            for name, text in zip(labels, policies, strict=True)
        ]
    except ReelRankError as error:
        raise fail(error) from error
    build = build_command(world, folds)
    named = [f"--policy '{p}' --label {n}" for p, n in zip(policies, labels, strict=True)]
    study_args = " ".join(["--base DIR", *common, *named])
    study = {
        "commands": [build, f"reelrank loop-study {study_args}"],
        "setup": {"world": world, "rounds": rounds, "users_per_day": users, "k": k, "seed": seed,
                  "gate": gate, "folds": folds},
        "runs": runs,
    }  # fmt: skip
    _write_study(study, results)


def _policy_label(text: str) -> str:
    from pydantic import TypeAdapter

    from reelrank.experiments.config import PolicyConfig

    return str(TypeAdapter(PolicyConfig).validate_json(text).label)

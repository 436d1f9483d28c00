"""Scale benchmark of the whole pipeline: wall time and peak memory per stage, 1M to 10M events.

Each size runs the real command, ``reelrank run --dataset synthetic --users U --items I
--events E`` (default folds, training included), as one process in a fresh data directory.
While it runs, this script samples the resident memory of that process and of its whole
process tree (Prefect's temporary server included) every ``--interval`` seconds, and reads
its log as it is written: the stages are cut at the log lines the pipeline prints
(subflow starts, ``features: ...``, ``feast apply: ...``, ``final fit on all events``,
the final-fit task's completion, ``version N: ...``). Per stage it reports wall time and
the peak RSS seen inside the stage's time window (process and tree); overall, the wall
time and the peak of both. Then it fits ``log(y) = a + b log(events)`` over the sizes:
``b`` is the exponent of time and memory in the number of events (1 = linear).

Usage (from the repository root; one size at a time, each several minutes):
    nice -n 5 .venv/bin/python benchmarks/pipeline_scale.py                    # 1M, 3M, 10M
    .venv/bin/python benchmarks/pipeline_scale.py --sizes 1000000:20000:5000    # events:users:items
    .venv/bin/python benchmarks/pipeline_scale.py \\
        --markdown design_docs/results/pipeline_scale.md \\
        --out design_docs/results/pipeline_scale.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

DEFAULT_SIZES = ("1000000:20000:5000", "3000000:60000:15000", "10000000:100000:20000")
STAGES = (
    "start-up",
    "ingest",
    "features",
    "feast apply",
    "materialize",
    "train: cross-validation",
    "train: final fit",
    "train: registration",
    "report, shut-down",
)
# The log line that *starts* each stage after the first (first match after the previous one).
MARKERS = (
    ("ingest", re.compile(r"Beginning subflow run .* for flow 'reelrank-data'")),
    ("features", re.compile(r"Beginning subflow run .* for flow 'reelrank-features'")),
    ("feast apply", re.compile(r"features: [\d,]+ user rows")),
    ("materialize", re.compile(r"feast apply: definitions registered")),
    ("train: cross-validation", re.compile(r"Beginning subflow run .* for flow 'reelrank-train'")),
    ("train: final fit", re.compile(r"final fit on all events")),
    ("train: registration", re.compile(r"Finished in state Completed\(\)")),
    ("report, shut-down", re.compile(r"version \d+: ")),
)
STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
MIB = 2**20


@dataclass
class Sample:
    at: float
    process: float
    tree: float


@dataclass
class Run:
    events: int
    users: int
    items: int
    wall_s: float
    peak_process_mib: float
    peak_tree_mib: float
    exit_code: int
    stages: list[dict[str, Any]] = field(default_factory=list)
    load_before: float = 0.0


def _rss(process: psutil.Process) -> tuple[float, float]:
    """(RSS of the process, RSS summed over it and every descendant), in MiB."""
    try:
        own = process.memory_info().rss
    except psutil.Error:
        return 0.0, 0.0
    total = own
    for child in process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            continue
    return own / MIB, total / MIB


def _sample(process: psutil.Process, samples: list[Sample], interval: float) -> None:
    while process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
        own, tree = _rss(process)
        samples.append(Sample(time.time(), own, tree))
        time.sleep(interval)


def _stage_starts(log: Path) -> dict[str, float]:
    """Epoch seconds at which each stage starts, from the run's log."""
    starts: dict[str, float] = {}
    pending = list(MARKERS)
    for line in log.read_text(errors="replace").splitlines():
        stamp = STAMP.match(line)
        if not stamp or not pending:
            continue
        name, pattern = pending[0]
        if pattern.search(line):
            at = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            starts[name] = at
            pending.pop(0)
    return starts


def run_size(events: int, users: int, items: int, interval: float, extra: Sequence[str]) -> Run:
    data_dir = Path(tempfile.mkdtemp(prefix="reelrank-scale-"))
    log = data_dir / "run.log"
    env = {**os.environ, "REELRANK_DATA_DIR": str(data_dir / "data")}
    reelrank = Path(sys.executable).parent / "reelrank"
    command = [
        str(reelrank), "run", "--dataset", "synthetic", "--users", str(users),
        "--items", str(items), "--events", str(events), *extra,
    ]  # fmt: skip
    load = os.getloadavg()[0]
    print(f"$ {' '.join(command)}   (load average {load:.1f})", flush=True)
    samples: list[Sample] = []
    started = time.time()
    with log.open("w") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        sampler = threading.Thread(
            target=_sample, args=(psutil.Process(child.pid), samples, interval), daemon=True
        )
        sampler.start()
        code = child.wait()
        sampler.join(timeout=5)
    ended = time.time()
    run = Run(
        events, users, items, round(ended - started, 1),
        round(max((s.process for s in samples), default=0.0)),
        round(max((s.tree for s in samples), default=0.0)), code, load_before=load,
    )  # fmt: skip
    run.stages = _stages(_stage_starts(log), samples, started, ended)
    if code != 0:
        print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
    shutil.rmtree(data_dir, ignore_errors=True)
    return run


def _stages(
    starts: dict[str, float], samples: list[Sample], begin: float, end: float
) -> list[dict[str, Any]]:
    bounds = [("start-up", begin)] + [(name, starts[name]) for name in STAGES[1:] if name in starts]
    rows = []
    for index, (name, lo) in enumerate(bounds):
        hi = bounds[index + 1][1] if index + 1 < len(bounds) else end
        inside = [s for s in samples if lo <= s.at <= hi] or [
            min(samples, key=lambda s: abs(s.at - lo), default=Sample(lo, 0.0, 0.0))
        ]
        rows.append(
            {
                "stage": name,
                "wall_s": round(hi - lo, 1),
                "peak_process_mib": round(max(s.process for s in inside)),
                "peak_tree_mib": round(max(s.tree for s in inside)),
            }
        )
    return rows


def load_runs(path: Path) -> list[Run]:
    """Runs from a JSON written by ``--out`` or from the lines this script prints."""
    text = path.read_text()
    if path.suffix == ".json":
        records = json.loads(text)["runs"]
    else:
        records = [json.loads(line) for line in text.splitlines() if line.startswith('{"events"')]
    return [Run(**record) for record in records]


def exponent(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Least-squares slope of log(y) on log(x) (None with fewer than two usable points)."""
    pairs = [(math.log(x), math.log(y)) for x, y in zip(xs, ys, strict=True) if x > 0 and y > 0]
    if len(pairs) < 2:
        return None
    mx = sum(p[0] for p in pairs) / len(pairs)
    my = sum(p[1] for p in pairs) / len(pairs)
    var = sum((p[0] - mx) ** 2 for p in pairs)
    return sum((p[0] - mx) * (p[1] - my) for p in pairs) / var if var else None


def exponents(runs: Sequence[Run]) -> dict[str, dict[str, float | None]]:
    ok = [r for r in runs if r.exit_code == 0]
    xs = [float(r.events) for r in ok]
    out = {
        "overall": {
            "time": exponent(xs, [r.wall_s for r in ok]),
            "memory": exponent(xs, [r.peak_process_mib for r in ok]),
        }
    }
    for name in STAGES:
        times = [next((s["wall_s"] for s in r.stages if s["stage"] == name), 0.0) for r in ok]
        peaks = [
            next((s["peak_process_mib"] for s in r.stages if s["stage"] == name), 0.0) for r in ok
        ]
        out[name] = {"time": exponent(xs, times), "memory": exponent(xs, peaks)}
    return out


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _sampling() -> str:
    """The sampling rules in force (read from the code, so the page says what ran)."""
    from reelrank.models.recommender import Recommender
    from reelrank.models.sources import DEFAULT_EASE_MAX_ITEMS
    from reelrank.training.ladder import TUNING_MAX_USERS
    from reelrank.training.steps import EVALUATION_MAX_USERS

    model = Recommender()
    return (
        f"Sampling in force: cross-validation, tuning and diagnostics on at most "
        f"{EVALUATION_MAX_USERS:,} users' histories (the ladder's grid on at most "
        f"{TUNING_MAX_USERS:,}); the final ranker's label windows from at most "
        f"{model.ranker_sample_users:,} users, at most {model.ranker_max_users:,} label users "
        f"per window; EASE on at most {DEFAULT_EASE_MAX_ITEMS:,} titles. The sources that "
        "serve are fitted on every event."
    )


def markdown(runs: Sequence[Run], fits: dict[str, dict[str, float | None]], command: str) -> str:
    lines = [
        "# Results: the pipeline at 1M, 3M and 10M events",
        "",
        "Written by `benchmarks/pipeline_scale.py`; not typed by hand. Command:",
        "",
        "```bash",
        command,
        "```",
        "",
        f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GB, Python {platform.python_version()}. "
        "Each size is one `reelrank run --dataset synthetic --users U --items I --events E` "
        "(3 folds, diagnostics, training, registration) in a fresh data directory; the "
        "machine is shared, so wall times carry its load (the load average at each start "
        "is listed). Peak RSS: the largest resident set seen in the stage (sampled), of "
        "the `reelrank` process and of its whole tree (Prefect's temporary server too).",
        "",
        "## Overall",
        "",
        "| events | users | items | load at start | wall s | peak RSS MiB (process) "
        "| peak RSS MiB (tree) | exit |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r.events:,} | {r.users:,} | {r.items:,} | {r.load_before:.1f} | {r.wall_s:,.0f} "
            f"| {r.peak_process_mib:,.0f} | {r.peak_tree_mib:,.0f} | {r.exit_code} |"
        )
    lines += ["", _sampling(), "", "## Per stage (wall s / peak RSS MiB of the process)", ""]
    header = (
        "| stage | " + " | ".join(f"{r.events:,}" for r in runs) + " | exponent: time | memory |"
    )
    lines += [header, "|---|" + "---:|" * (len(runs) + 2)]
    for name in STAGES:
        cells = []
        for r in runs:
            row = next((s for s in r.stages if s["stage"] == name), None)
            cells.append(
                "-" if row is None else f"{row['wall_s']:,.0f} s / {row['peak_process_mib']:,}"
            )
        fit = fits.get(name, {})
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {_fmt(fit.get('time'))} | {_fmt(fit.get('memory'))} |"
        )
    overall = fits["overall"]
    lines += [
        "",
        f"Fitted exponents over the sizes (slope of log y on log events): wall time "
        f"**{_fmt(overall['time'])}**, peak RSS **{_fmt(overall['memory'])}**.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", nargs="*", default=list(DEFAULT_SIZES), help="events:users:items"
    )
    parser.add_argument(
        "--include",
        type=Path,
        nargs="*",
        default=[],
        help="runs measured earlier: a JSON written by --out, or this script's printed log",
    )
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between RSS samples")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    parser.add_argument("--markdown", type=Path, default=None, help="write the results page")
    parser.add_argument("extra", nargs="*", help="more `reelrank run` arguments (after --)")
    args = parser.parse_args()
    runs = [run for path in args.include for run in load_runs(path)]
    for size in args.sizes:
        events, users, items = (int(part) for part in size.split(":"))
        run = run_size(events, users, items, args.interval, args.extra)
        runs.append(run)
        print(json.dumps(asdict(run)), flush=True)
    runs.sort(key=lambda run: run.events)
    fits = exponents(runs)
    print(json.dumps(fits, indent=2))
    command = " ".join(["nice -n 5 .venv/bin/python benchmarks/pipeline_scale.py", *sys.argv[1:]])
    if args.out is not None:
        args.out.write_text(
            json.dumps(
                {"command": command, "runs": [asdict(r) for r in runs], "exponents": fits}, indent=2
            )
            + "\n"
        )
    if args.markdown is not None:
        args.markdown.write_text(markdown(runs, fits, command) + "\n")
        print(f"wrote {args.markdown}")


if __name__ == "__main__":
    main()

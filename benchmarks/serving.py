"""Serving latency benchmark: the ReelRank API against a bare FastAPI route, same server.

Starts, in the same run, (1) ``reelrank serve`` on a data dir holding a champion and its
materialized online store, and (2) a bare FastAPI app with one trivial JSON route under the
same uvicorn settings (``serving.server.UVICORN_OPTIONS``, one worker each). Both get the
same closed-loop load (fixed concurrency, fixed request count, a warm-up pass excluded)
from an asyncio keep-alive client in a separate process pinned to the other CPU (the
servers are pinned to CPU 0), at concurrency 1 (the service's own latency) and 16
(saturation). Prints p50/p95/p99 latency and throughput of each app and the ratios.
(``wrk`` cannot stop after a fixed request count, hence our own client.)

Usage (after ``make run``, or on any data dir built by ``reelrank run``)::

    .venv/bin/python benchmarks/serving.py --data-dir data --requests 5000
    .venv/bin/python benchmarks/serving.py --build   # builds a small synthetic store first

Targets (2 cores, SQLite online store, k=10): p99 <= 5 ms at concurrency 1; throughput at
concurrency 16 at least 25% of the bare route's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# This file is named like the package it measures; make ``import serving`` find the package.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
sys.path.insert(0, str(ROOT))

CLIENT_CPU = 1
SERVER_CPU = 0


def _pin(cpu: int) -> None:
    """Pin this process to one CPU (when the machine has it), keeping client and server apart."""
    if hasattr(os, "sched_setaffinity") and cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {cpu})


async def _closed_loop(
    port: int, paths: list[str], concurrency: int, requests: int
) -> tuple[list[int], float, int]:
    """``concurrency`` keep-alive connections, each sending its next request when the
    previous answer is read, until ``requests`` answers; latencies in ns."""
    import asyncio

    latencies: list[int] = []
    stage_ms: dict[str, float] = {}
    issued = 0
    non_2xx = 0
    stored = 0  # answers with no ranking stage: served from the precomputed table

    async def connection() -> None:
        nonlocal issued, non_2xx, stored
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while issued < requests:
                path = paths[issued % len(paths)]
                issued += 1
                payload = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
                started = time.perf_counter_ns()
                writer.write(payload)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name = line[:15].lower()
                    if name == b"content-length:":
                        length = int(line[15:])
                    elif name == b"server-timing: ":
                        for part in line[15:].decode().split(", "):
                            stage, _, duration = part.partition(";dur=")
                            stage_ms[stage] = stage_ms.get(stage, 0.0) + float(duration)
                            if stage == "ranking" and float(duration) == 0.0:
                                stored += 1
                body = await reader.readexactly(length)
                latencies.append(time.perf_counter_ns() - started)
                if not head.startswith(b"HTTP/1.1 2"):
                    non_2xx += 1
                del body
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started, non_2xx, stage_ms, stored


def load_client() -> None:  # pragma: no cover - subprocess entry
    """Read a job from stdin, run it, print the result as JSON (a separate, pinned process)."""
    import asyncio

    import numpy as np

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    _pin(CLIENT_CPU)
    job = json.loads(sys.stdin.read())
    asyncio.run(_closed_loop(job["port"], job["paths"], job["concurrency"], job["warmup"]))
    latencies, seconds, non_2xx, stage_ms, stored = asyncio.run(
        _closed_loop(job["port"], job["paths"], job["concurrency"], job["requests"])
    )
    ms = np.asarray(latencies, dtype=np.float64) / 1e6
    print(
        json.dumps(
            {
                "requests": len(latencies),
                "p50_ms": float(np.percentile(ms, 50)),
                "p95_ms": float(np.percentile(ms, 95)),
                "p99_ms": float(np.percentile(ms, 99)),
                "mean_ms": float(ms.mean()),
                "throughput_rps": len(latencies) / seconds,
                "non_2xx": non_2xx,
                "from_table": stored,
                "latencies_ms": ms.round(4).tolist(),
                "stage_ms": {k: v / max(len(latencies), 1) for k, v in stage_ms.items()},
            }
        )
    )


def measure(port: int, paths: list[str], concurrency: int, requests: int, warmup: int) -> dict:
    """One closed-loop run (warm-up excluded) from a separate load-generator process."""
    job = {
        "port": port,
        "paths": paths,
        "concurrency": concurrency,
        "requests": requests,
        "warmup": warmup,
    }
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--load-client"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def bare_app():  # pragma: no cover - runs in the bare server process
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"status": "ok"}

    return app


def run_bare_server(port: int) -> None:  # pragma: no cover - subprocess entry
    import uvicorn

    from serving.server import UVICORN_OPTIONS

    _pin(SERVER_CPU)
    uvicorn.run(bare_app(), host="127.0.0.1", port=port, **UVICORN_OPTIONS)


def _taskset(cpu: int) -> list[str]:
    if shutil.which("taskset") and cpu < (os.cpu_count() or 1):
        return ["taskset", "-c", str(cpu)]
    return []


PRECOMPUTED = "service, precomputed"


def _service(port: int, env: dict[str, str]) -> subprocess.Popen:
    """``reelrank serve`` on ``port``, pinned to the server CPU."""
    command = [*_taskset(SERVER_CPU), sys.executable, "-m", "cli", "serve", "--port", str(port)]
    return subprocess.Popen(command, cwd=ROOT, env=env)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not become ready within {timeout:.0f} s")


def build_store(directory: Path) -> Path:
    data_dir, prefect = directory / "data", directory / "prefect"
    prefect.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "REELRANK_DATA_DIR": str(data_dir),
        "PREFECT_HOME": str(prefect),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    }
    args = "--dataset synthetic --users 300 --items 200 --events 20000 --seed 7 --folds 2"
    print(f"building a store with `reelrank run {args} --no-diagnostics` ...", flush=True)
    subprocess.run(
        [sys.executable, "-m", "cli", "run", *args.split(), "--no-diagnostics"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    return data_dir


def known_users(data_dir: Path, limit: int = 1000) -> list[int]:
    import pandas as pd

    events = pd.read_parquet(data_dir / "lake" / "events.parquet", columns=["user_id"])
    return sorted(map(int, events["user_id"].unique()))[:limit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir", type=Path, help="A data dir with a champion (default: REELRANK_DATA_DIR)."
    )
    parser.add_argument("--build", action="store_true", help="Build a small store first.")
    parser.add_argument("--requests", type=int, default=5000, help="Measured requests per run.")
    parser.add_argument("--warmup", type=int, default=1000, help="Warm-up requests per run.")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--rounds", type=int, default=3, help="Alternating rounds per app.")
    parser.add_argument(
        "--precomputed",
        action="store_true",
        help="Also measure the service answering from the precomputed top-k table "
        "(runs `reelrank batch-recommend` first; REELRANK_SERVE_PRECOMPUTED=true).",
    )
    parser.add_argument("--out", type=Path, help="Also write the results as JSON here.")
    parser.add_argument("--markdown", type=Path, help="Also write the results page here.")
    parser.add_argument("--bare-server", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--load-client", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        run_bare_server(args.bare_server)
        return
    if args.load_client:
        load_client()
        return
    if args.build:
        data_dir = build_store(Path(tempfile.mkdtemp(prefix="reelrank-bench-")))
    else:
        from reelrank.config import get_settings

        data_dir = (args.data_dir or get_settings().data_dir).resolve()
        if not (data_dir / "lake" / "events.parquet").exists():
            raise SystemExit(
                f"{data_dir} holds no pipeline run: run `make run` first (or `reelrank run "
                "--dataset synthetic`), pass --data-dir DIR of such a run, or use --build."
            )

    env = {**os.environ, "REELRANK_DATA_DIR": str(data_dir)}
    service_port, bare_port, stored_port = free_port(), free_port(), free_port()
    if args.precomputed:
        print(f"precomputing the top-{args.k} of every active user ...", flush=True)
        subprocess.run(
            [sys.executable, "-m", "cli", "batch-recommend", "--k", str(args.k)],
            cwd=ROOT,
            env=env,
            check=True,
        )
    processes = [
        _service(service_port, env),
        subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--bare-server", str(bare_port)],
            cwd=ROOT,
            env=env,
        ),
    ]
    if args.precomputed:
        processes.append(_service(stored_port, {**env, "REELRANK_SERVE_PRECOMPUTED": "true"}))
    rounds: dict[tuple[str, int], list[dict]] = {}
    try:
        wait_ready(f"http://127.0.0.1:{service_port}/ready")
        wait_ready(f"http://127.0.0.1:{bare_port}/ping")
        ids = known_users(data_dir)
        targets = {
            "service": (service_port, [f"/recommendations/{u}?k={args.k}" for u in ids]),
            "bare": (bare_port, [f"/ping?u={u}" for u in ids]),
            "service /health": (service_port, ["/health"]),
        }
        if args.precomputed:
            wait_ready(f"http://127.0.0.1:{stored_port}/ready")
            paths = [f"/recommendations/{u}?k={args.k}" for u in ids]
            targets[PRECOMPUTED] = (stored_port, paths)
        # Rounds alternate the apps, so drift on the machine hits both alike; the ratio of
        # each round compares runs made seconds apart.
        for _ in range(args.rounds):
            for concurrency in args.concurrency:
                for name, (port, paths) in targets.items():
                    rounds.setdefault((name, concurrency), []).append(
                        measure(port, paths, concurrency, args.requests, args.warmup)
                    )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()

    summary = summarise(rounds, args.concurrency)
    setup = (
        f"k={args.k}; {args.rounds} rounds x {args.requests} requests per app and concurrency "
        f"after {args.warmup} warm-up each; {len(ids)} users in turn; asyncio closed-loop "
        f"client pinned to CPU {CLIENT_CPU}, servers (one uvicorn worker each) to CPU {SERVER_CPU}"
    )
    text = report(summary, args.concurrency, setup)
    print()
    print(text)
    if args.out:
        args.out.write_text(json.dumps({"setup": setup, "results": summary}, indent=2))
    if args.markdown:
        args.markdown.write_text(markdown_page(text, args))


def summarise(rounds: dict[tuple[str, int], list[dict]], concurrencies: list[int]) -> dict:
    """Pooled latency percentiles, median throughput, per-round ratios, mean stage times."""
    import numpy as np

    out: dict[str, dict[str, dict]] = {}
    for (name, concurrency), runs in rounds.items():
        pooled = np.concatenate([np.asarray(r["latencies_ms"]) for r in runs])
        stages: dict[str, float] = {}
        for run in runs:
            for stage, ms in run["stage_ms"].items():
                stages[stage] = stages.get(stage, 0.0) + ms / len(runs)
        out.setdefault(name, {})[str(concurrency)] = {
            "requests": len(pooled),
            "p50_ms": float(np.percentile(pooled, 50)),
            "p95_ms": float(np.percentile(pooled, 95)),
            "p99_ms": float(np.percentile(pooled, 99)),
            "throughput_rps": float(np.median([r["throughput_rps"] for r in runs])),
            "throughput_rps_rounds": [round(r["throughput_rps"], 1) for r in runs],
            "non_2xx": int(sum(r["non_2xx"] for r in runs)),
            "from_table": int(sum(r.get("from_table", 0) for r in runs)),
            "stage_ms": stages,
        }
    for concurrency in map(str, concurrencies):
        service = rounds[("service", int(concurrency))]
        bare = rounds[("bare", int(concurrency))]
        ratios = [
            s["throughput_rps"] / b["throughput_rps"] for s, b in zip(service, bare, strict=True)
        ]
        out["service"][concurrency]["throughput_ratio_rounds"] = [round(r, 4) for r in ratios]
        out["service"][concurrency]["throughput_ratio"] = float(np.median(ratios))
    return out


def report(summary: dict, concurrencies: list[int], setup: str) -> str:
    """The printed table, ratios, stage split and target verdicts."""
    lines = [setup, ""]
    header = "| app | concurrency | p50 ms | p95 ms | p99 ms | throughput req/s | non-2xx |"
    lines += [header, "|" + "---|" * (header.count("|") - 1)]
    names = ["service", "bare", "service /health"] + [PRECOMPUTED] * (PRECOMPUTED in summary)
    for concurrency in map(str, concurrencies):
        for name in names:
            r = summary[name][concurrency]
            lines.append(
                f"| {name} | {concurrency} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | "
                f"{r['p99_ms']:.2f} | {r['throughput_rps']:,.0f} | {r['non_2xx']} |"
            )
    lines.append("")
    lines.append("Throughput is the median over rounds; p50/p95/p99 pool every round's requests.")
    lines.append("")
    for concurrency in map(str, concurrencies):
        s, b = summary["service"][concurrency], summary["bare"][concurrency]
        rounds = ", ".join(f"{r:.1%}" for r in s["throughput_ratio_rounds"])
        lines.append(
            f"- concurrency {concurrency}: service/bare throughput {s['throughput_ratio']:.1%} "
            f"(rounds: {rounds}); p99 ratio {s['p99_ms'] / max(b['p99_ms'], 1e-9):.1f}x"
        )
    if PRECOMPUTED in summary:
        lines.append("")
        for concurrency in map(str, concurrencies):
            online, stored = summary["service"][concurrency], summary[PRECOMPUTED][concurrency]
            lines.append(
                f"- precomputed vs online, concurrency {concurrency}: p50 "
                f"{stored['p50_ms']:.2f} vs {online['p50_ms']:.2f} ms, p99 "
                f"{stored['p99_ms']:.2f} vs {online['p99_ms']:.2f} ms, throughput "
                f"{stored['throughput_rps']:,.0f} vs {online['throughput_rps']:,.0f} req/s "
                f"({stored['throughput_rps'] / online['throughput_rps']:.2f}x); "
                f"{stored['from_table']:,} of {stored['requests']:,} answers from the table"
            )
    top = str(max(concurrencies))
    s = summary["service"][top]
    per_request = 1000.0 / s["throughput_rps"]
    compute = sum(s["stage_ms"].values())
    stages = ", ".join(f"{k} {v:.3f}" for k, v in s["stage_ms"].items())
    lines += [
        "",
        f"Where a saturated service request's time goes (concurrency {top}): "
        f"{per_request:.3f} ms per request (1 / throughput) = {compute:.3f} ms inside the "
        f"recommendation ({stages}; `Server-Timing`) + {per_request - compute:.3f} ms of "
        "server, framework, routing, validation and metrics. With the recommendation free, "
        f"this route would top out near {1000.0 / max(per_request - compute, 1e-9):,.0f} req/s "
        f"({1000.0 / max(per_request - compute, 1e-9) / summary['bare'][top]['throughput_rps']:.0%}"
        " of the bare route).",
        "",
    ]
    if "1" in summary["service"]:
        p99 = summary["service"]["1"]["p99_ms"]
        lines.append(
            f"Target p99 <= 5 ms at concurrency 1: {p99:.2f} ms -> "
            f"{'met' if p99 <= 5 else 'MISSED'}"
        )
    if "16" in summary["service"]:
        ratio = summary["service"]["16"]["throughput_ratio"]
        lines.append(
            f"Target throughput >= 25% of bare at concurrency 16: {ratio:.1%} -> "
            f"{'met' if ratio >= 0.25 else 'MISSED'}"
        )
    return "\n".join(lines)


def markdown_page(text: str, args: argparse.Namespace) -> str:
    """``design_docs/results/serving.md``: the printed report and the command."""
    command = (
        f".venv/bin/python benchmarks/serving.py --data-dir {args.data_dir or 'DATA_DIR'} "
        f"--requests {args.requests} --warmup {args.warmup} --rounds {args.rounds} "
        f"{'--precomputed ' if args.precomputed else ''}"
        "--out design_docs/results/serving.json --markdown design_docs/results/serving.md"
    )
    return (
        "# Results: serving latency benchmark\n\n"
        "Written by `benchmarks/serving.py --markdown` (raw figures in "
        "`design_docs/results/serving.json`, from `--out`); not typed by hand. "
        "Command, on a data dir built by `make run` (default synthetic world: 2,000 users, "
        "1,500 items, 200,000 events):\n\n"
        f"```bash\n{command}\n```\n\n{text}\n"
    )


if __name__ == "__main__":
    main()

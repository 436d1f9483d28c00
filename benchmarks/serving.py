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
    issued = 0
    non_2xx = 0

    async def connection() -> None:
        nonlocal issued, non_2xx
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
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = await reader.readexactly(length)
                latencies.append(time.perf_counter_ns() - started)
                if not head.startswith(b"HTTP/1.1 2"):
                    non_2xx += 1
                del body
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started, non_2xx


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
    latencies, seconds, non_2xx = asyncio.run(
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
        [sys.executable, "-m", "reelrank.cli", "run", *args.split(), "--no-diagnostics"],
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
    parser.add_argument("--data-dir", type=Path, help="REELRANK_DATA_DIR with a champion.")
    parser.add_argument("--build", action="store_true", help="Build a small store first.")
    parser.add_argument("--requests", type=int, default=5000, help="Measured requests per run.")
    parser.add_argument("--warmup", type=int, default=1000, help="Warm-up requests per run.")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--out", type=Path, help="Also write the results as JSON here.")
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
    elif args.data_dir is not None:
        data_dir = args.data_dir.resolve()
    else:
        raise SystemExit("give --data-dir (a store built by `reelrank run`) or --build")

    env = {**os.environ, "REELRANK_DATA_DIR": str(data_dir)}
    service_port, bare_port = free_port(), free_port()
    processes = [
        subprocess.Popen(
            [
                *_taskset(SERVER_CPU),
                sys.executable,
                "-m",
                "reelrank.cli",
                "serve",
                "--port",
                str(service_port),
            ],
            cwd=ROOT,
            env=env,
        ),
        subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--bare-server", str(bare_port)],
            cwd=ROOT,
            env=env,
        ),
    ]
    results: dict[str, dict[int, dict]] = {"service": {}, "bare": {}}
    try:
        wait_ready(f"http://127.0.0.1:{service_port}/ready")
        wait_ready(f"http://127.0.0.1:{bare_port}/ping")
        ids = known_users(data_dir)
        targets = {
            "service": (service_port, [f"/recommendations/{u}?k={args.k}" for u in ids]),
            "bare": (bare_port, [f"/ping?u={u}" for u in ids]),
        }
        for concurrency in args.concurrency:
            for name, (port, paths) in targets.items():
                results[name][concurrency] = measure(
                    port, paths, concurrency, args.requests, args.warmup
                )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()

    print()
    print(
        f"k={args.k}; {args.requests} requests per run after {args.warmup} warm-up; "
        f"{len(ids)} users in turn; asyncio closed-loop client pinned to CPU {CLIENT_CPU}, "
        f"servers to CPU {SERVER_CPU}"
    )
    header = "| app | concurrency | p50 ms | p95 ms | p99 ms | throughput req/s | non-2xx |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for concurrency in args.concurrency:
        for name in ("service", "bare"):
            r = results[name][concurrency]
            print(
                f"| {name} | {concurrency} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | "
                f"{r['p99_ms']:.2f} | {r['throughput_rps']:,.0f} | {r['non_2xx']} |"
            )
    print()
    for concurrency in args.concurrency:
        s, b = results["service"][concurrency], results["bare"][concurrency]
        print(
            f"concurrency {concurrency}: service/bare throughput = "
            f"{s['throughput_rps'] / b['throughput_rps']:.1%}, p99 ratio = "
            f"{s['p99_ms'] / max(b['p99_ms'], 1e-9):.1f}x"
        )
    if 1 in results["service"]:
        p99 = results["service"][1]["p99_ms"]
        verdict = "met" if p99 <= 5 else "MISSED"
        print(f"target p99 <= 5 ms at concurrency 1: {p99:.2f} ms -> {verdict}")
    if 16 in results["service"]:
        ratio = results["service"][16]["throughput_rps"] / results["bare"][16]["throughput_rps"]
        verdict = "met" if ratio >= 0.25 else "MISSED"
        print(f"target throughput >= 25% of bare at 16: {ratio:.1%} -> {verdict}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""Scale benchmark of the synthetic world: wall time and peak memory to stream N events to parquet.

Each size runs in its own Python process, so the peak RSS reported is that run's alone.
Events are generated chunk by chunk and appended to one parquet file with
``pyarrow.parquet.ParquetWriter`` in a temporary directory (deleted afterwards).

Usage (from the repository root):
    .venv/bin/python benchmarks/synthetic_scale.py                       # 1M and 10M events
    .venv/bin/python benchmarks/synthetic_scale.py --events 1000000 --items 5000
    .venv/bin/python benchmarks/synthetic_scale.py --blas-threads 1   # steadier on a busy machine
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_SIZES = (1_000_000, 10_000_000)
EVENTS_PER_USER = 100
DEFAULT_ITEMS = 10_000
DEFAULT_CHUNK = 500_000


def peak_rss_mib() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (wall time suffers on a busy machine)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_one(n_events: int, n_users: int, n_items: int, chunk_size: int, seed: int) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from reelrank.data.synthetic import SyntheticConfig, generate_world

    started = time.perf_counter()
    config = SyntheticConfig(n_users=n_users, n_items=n_items, n_events=n_events, seed=seed)
    world = generate_world(config)
    world_seconds = time.perf_counter() - started
    rows = 0
    generate_seconds = 0.0
    with tempfile.TemporaryDirectory(prefix="reelrank-synthetic-") as tmp:
        path = Path(tmp) / "events.parquet"
        writer: pq.ParquetWriter | None = None
        chunks = world.iter_events(chunk_size=chunk_size)
        while True:
            tick = time.perf_counter()
            chunk = next(chunks, None)
            generate_seconds += time.perf_counter() - tick
            if chunk is None:
                break
            table = pa.Table.from_pandas(chunk, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
            rows += len(chunk)
        if writer is not None:
            writer.close()
        size_mib = path.stat().st_size / 2**20 if path.exists() else 0.0
        written_rows = pq.ParquetFile(path).metadata.num_rows if path.exists() else 0
    wall = time.perf_counter() - started
    return {
        "events": rows,
        "parquet_rows": written_rows,
        "users": n_users,
        "items": n_items,
        "chunk_size": chunk_size,
        "world_s": round(world_seconds, 2),
        "generate_s": round(generate_seconds, 2),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu_seconds(), 2),
        "events_per_s": round(rows / wall),
        "parquet_mib": round(size_mib, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--items", type=int, default=DEFAULT_ITEMS)
    parser.add_argument("--events-per-user", type=int, default=EVENTS_PER_USER)
    parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--blas-threads",
        type=int,
        default=None,
        help="Set OPENBLAS/OMP/MKL_NUM_THREADS for the runs (default: inherit the environment).",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        n_events = args.events[0]
        result = run_one(
            n_events=n_events,
            n_users=max(1, n_events // args.events_per_user),
            n_items=args.items,
            chunk_size=args.chunk_size,
            seed=args.seed,
        )
        print(json.dumps(result))
        return

    header = (
        f"{'events':>12} {'users':>8} {'items':>7} {'world s':>8} {'gen s':>7} {'wall s':>7} "
        f"{'cpu s':>6} {'events/s':>10} {'parquet MiB':>12} {'peak RSS MiB':>13}"
    )
    print(header)
    print(f"(load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    for n_events in args.events:
        command = [
            sys.executable, __file__, "--child", "--events", str(n_events),
            "--items", str(args.items), "--events-per-user", str(args.events_per_user),
            "--chunk-size", str(args.chunk_size), "--seed", str(args.seed),
        ]  # fmt: skip
        env = dict(os.environ)
        if args.blas_threads is not None:
            for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                env[name] = str(args.blas_threads)
        completed = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
        r = json.loads(completed.stdout.strip().splitlines()[-1])
        assert r["events"] == r["parquet_rows"] == n_events, r
        print(
            f"{r['events']:>12,} {r['users']:>8,} {r['items']:>7,} {r['world_s']:>8} "
            f"{r['generate_s']:>7} {r['wall_s']:>7} {r['cpu_s']:>6} {r['events_per_s']:>10,} "
            f"{r['parquet_mib']:>12} {r['peak_rss_mib']:>13}"
        )


if __name__ == "__main__":
    main()

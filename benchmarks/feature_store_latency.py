"""Online feature read latency: one user's features and 200 items' features.

Builds features for a synthetic MovieLens-100K-sized world (or uses an existing data
directory with --data-dir), applies and materializes the SQLite online store, then times
warm, in-process reads through FeastOnlineProvider (what the API uses).

    .venv/bin/python benchmarks/feature_store_latency.py --repeats 300
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from reelrank.config import Settings
from reelrank.features import build_item_features, build_user_features
from reelrank.features.feast.providers import FeastOnlineProvider
from reelrank.features.feast.store import apply_definitions, materialize, write_offline_features
from reelrank.schema import GENRE_VOCAB, ITEM_ID, USER_ID


def synthetic_world(
    n_users: int = 943, n_items: int = 1682, n_events: int = 100_000, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("1997-09-20", tz="UTC")
    events = pd.DataFrame(
        {
            USER_ID: rng.integers(0, n_users, n_events),
            ITEM_ID: rng.zipf(1.3, n_events) % n_items,
            "rating": rng.integers(1, 6, n_events).astype("float64"),
            "timestamp": start + pd.to_timedelta(rng.uniform(0, 215, n_events), unit="D"),
        }
    )
    users = pd.DataFrame(
        {
            USER_ID: np.arange(n_users),
            "age": rng.integers(18, 70, n_users),
            "gender": rng.choice(["M", "F"], n_users),
            "occupation": rng.choice(["a", "b", "c"], n_users),
        }
    )
    items = pd.DataFrame(
        {
            ITEM_ID: np.arange(n_items),
            "title": pd.array([f"t{i}" for i in range(n_items)], dtype="string"),
            "genres": [list(rng.choice(GENRE_VOCAB, 2, replace=False)) for _ in range(n_items)],
            "release_date": pd.Timestamp("1990-01-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 2500, n_items), unit="D"),
        }
    )
    return events, users, items


def percentiles(samples_s: list[float]) -> str:
    ms = np.array(samples_s) * 1000.0
    return f"p50 {np.percentile(ms, 50):6.2f} ms  p99 {np.percentile(ms, 99):6.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="existing materialized REELRANK_DATA_DIR"
    )
    args = parser.parse_args()

    if args.data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="reelrank-bench-")) / "data"
        settings = Settings(data_dir=data_dir, online_store="sqlite")
        events, users, items = synthetic_world()
        write_offline_features(
            build_user_features(events, users, items), build_item_features(events, items), settings
        )
        store = apply_definitions(settings)
        materialize(settings)
    else:
        settings = Settings(data_dir=args.data_dir)
        from reelrank.features.feast.store import get_feature_store

        store = get_feature_store(settings)
    provider = FeastOnlineProvider(store)
    rng = np.random.default_rng(1)
    user_ids = pd.read_parquet(settings.features_path / "user_features.parquet", columns=[USER_ID])
    item_ids = pd.read_parquet(settings.features_path / "item_features.parquet", columns=[ITEM_ID])
    users_pool = user_ids[USER_ID].unique()
    items_pool = item_ids[ITEM_ID].unique()
    now = pd.Timestamp.now(tz="UTC")

    timings: dict[str, list[float]] = {"user (1)": [], f"items ({args.items})": []}
    for i in range(args.warmup + args.repeats):
        user = [int(rng.choice(users_pool))]
        chosen = rng.choice(items_pool, size=min(args.items, len(items_pool)), replace=False)
        t0 = time.perf_counter()
        provider.user_features(user, now)
        t1 = time.perf_counter()
        provider.item_features(chosen.tolist(), now)
        t2 = time.perf_counter()
        if i >= args.warmup:
            timings["user (1)"].append(t1 - t0)
            timings[f"items ({args.items})"].append(t2 - t1)
    print(f"online store: {store.config.online_store.type}, {args.repeats} warm reads, in process")
    for name, samples in timings.items():
        print(f"  {name:<12} {percentiles(samples)}")


if __name__ == "__main__":
    main()

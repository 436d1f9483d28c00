"""Model quality on MovieLens-100K: each retrieval source, popularity and the two-stage model.

Splits:
  * temporal: the newest 20% of events (by time) are the test set; scored on warm users
    (users with training events, the evaluation default) and on all test users;
  * random 75/25 (seeded), every test rating relevant: the protocol of recommenders-team's
    public benchmark (nDCG@10 0.475 BiVAE, 0.442 BPR, 0.382 SAR). The ranker is trained
    with ``ranker_holdout="random"`` here (it learns the task it is judged on).

Reports nDCG@10 and recall@10 per model, candidate recall@50/100/200 per source and for the
union, fit wall time and single-user recommend latency.

    .venv/bin/python benchmarks/model_quality.py [--zip /work/ml/ml-100k.zip] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from reelrank import Recommender
from reelrank.data.movielens import read_movielens
from reelrank.data.validation import validate_tables
from reelrank.evaluation.candidates import candidate_recall
from reelrank.evaluation.metrics import ndcg_at_k, recall_at_k
from reelrank.evaluation.splits import build_relevant, temporal_holdout
from reelrank.schema import USER_ID, Dataset

K = 10
CUTOFFS = (50, 100, 200)


def load_ml100k(path: Path) -> Dataset:
    tables = read_movielens(path, "ml-100k")
    return validate_tables(tables.events, tables.users, tables.items, name="ml-100k").dataset


def random_split(events: pd.DataFrame, test_fraction: float = 0.25, seed: int = 42):
    rng = np.random.default_rng(seed)
    mask = rng.random(len(events)) < test_fraction
    return events[~mask], events[mask]


def score(recs: pd.DataFrame, relevant: pd.DataFrame) -> dict[str, float]:
    return {
        f"ndcg@{K}": ndcg_at_k(recs, relevant, K),
        f"recall@{K}": recall_at_k(recs, relevant, K),
    }


def latency_ms(model: Recommender, users: np.ndarray, repeats: int = 300) -> dict[str, float]:
    """Single-user recommend(k=10) wall time, including the model's in-memory feature lookup."""
    model.recommend(users[:5], k=K)  # warm-up
    times = []
    for user in np.resize(users, repeats):
        started = time.perf_counter()
        model.recommend([int(user)], k=K)
        times.append((time.perf_counter() - started) * 1000)
    arr = np.asarray(times)
    return {"p50_ms": float(np.percentile(arr, 50)), "p95_ms": float(np.percentile(arr, 95))}


def evaluate_split(
    name: str,
    train: pd.DataFrame,
    test: pd.DataFrame,
    data: Dataset,
    params: dict,
    all_users_too: bool,
) -> dict:
    started = time.perf_counter()
    model = Recommender().set_params(**params).fit(train, data.users, data.items)
    fit_seconds = time.perf_counter() - started

    warm = build_relevant(train, test)
    targets = {"warm": warm}
    if all_users_too:
        targets["all"] = build_relevant(train, test, include_cold_users=True)
    users = np.unique(np.concatenate([t[USER_ID].to_numpy() for t in targets.values()]))

    rows: dict[str, dict[str, float]] = {}
    two_stage = model.recommend(users, k=K)
    rrf = Recommender().set_params(**{**params, "ranker": "rrf"}).fit(train, data.users, data.items)
    models = {
        "two-stage (LambdaRank)": two_stage,
        "rrf fusion (no ranker)": rrf.recommend(users, k=K),
    }
    for source_name, source in model.sources_.items():
        models[f"source: {source_name}"] = source.candidates(users, K)
    for model_name, recs in models.items():
        rows[model_name] = {}
        for target_name, relevant in targets.items():
            for metric, value in score(recs, relevant).items():
                rows[model_name][f"{metric} {target_name}"] = value

    candidates = model.candidates(warm[USER_ID].unique(), n=max(CUTOFFS))
    recall_table = candidate_recall(candidates, warm, list(model.sources_), CUTOFFS)
    return {
        "split": name,
        "n_train": len(train),
        "n_test": len(test),
        "n_warm_users": int(warm[USER_ID].nunique()),
        "fit_seconds": fit_seconds,
        "ranker_rows": getattr(model, "n_ranker_rows_", 0),
        "ranker_groups": getattr(model, "n_ranker_groups_", 0),
        "metrics": pd.DataFrame(rows).T,
        "candidate_recall": recall_table,
        "latency": latency_ms(model, warm[USER_ID].unique()),
        "top_features": model.feature_importances_.head(10),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--zip", type=Path, default=Path("/work/ml/ml-100k.zip"))
    parser.add_argument("--out", type=Path, default=None, help="write results as JSON")
    parser.add_argument("--params", type=json.loads, default={}, help="Recommender kwargs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    data = load_ml100k(args.zip)
    fold = temporal_holdout(data.events, test_fraction=0.2)
    splits = {
        "temporal 80/20 (by time)": (fold.train, fold.test, True, {}),
        "random 75/25": (*random_split(data.events), False, {"ranker_holdout": "random"}),
    }
    results = []
    for name, (train, test, all_users, split_params) in splits.items():
        params = {**args.params, **split_params}
        result = evaluate_split(name, train, test, data, params, all_users)
        results.append(result)
        print(
            f"\n## {name}: {result['n_train']} train / {result['n_test']} test events, "
            f"{result['n_warm_users']} warm test users"
        )
        print(
            f"fit {result['fit_seconds']:.1f} s; ranker trained on {result['ranker_rows']} rows "
            f"/ {result['ranker_groups']} groups; recommend 1 user k=10: "
            f"p50 {result['latency']['p50_ms']:.2f} ms, p95 {result['latency']['p95_ms']:.2f} ms"
        )
        print(result["metrics"].round(4).to_markdown())
        print("\ncandidate recall (warm users):")
        print(result["candidate_recall"].round(4).to_markdown())
        print("\nranker top features (gain):")
        print(result["top_features"].round(0).to_markdown())
    if args.out:
        serialisable = [
            {
                **{k: v for k, v in r.items() if not isinstance(v, pd.DataFrame | pd.Series)},
                "metrics": r["metrics"].to_dict(orient="index"),
                "candidate_recall": r["candidate_recall"].to_dict(orient="index"),
            }
            for r in results
        ]
        args.out.write_text(json.dumps(serialisable, indent=2, default=str))


if __name__ == "__main__":
    main()

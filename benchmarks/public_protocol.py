"""recommenders-team's public MovieLens-100K protocol: ReelRank beside the usual baselines.

The split and the metrics are ``reelrank/evaluation/public_protocol.py`` (ported from their
code); the models are fitted on the 75 % train part and asked for 10 unseen items per test
user. Their published best row, BiVAE, is nDCG@10 0.475, P@10 0.412 (MAP 0.146).

    .venv/bin/python benchmarks/public_protocol.py --source /path/to/ml-100k.zip \\
        --out design_docs/results/public_protocol.json \\
        --markdown design_docs/results/public_protocol.md

``ReelRank (default)`` is ``Recommender().fit(events)``: no arguments, events only, its ranker
trained on six time windows ("what next") and two randomly held-out windows ("what else",
this protocol's task); the other ReelRank rows are the same model with the time windows only
(the default before the random windows were added), with 6 or 12 random windows (the curve
the default was chosen from), with random windows only, and the best "what else"
configuration we found for this split. The default is also fitted with seeds 1 and 2, so
the page says how much of a difference to EASE the seed alone makes.

Two more tables make the trade-off measurable in the same run:

* **both protocols**: every ReelRank variant also on the gate's protocol, the three
  rolling-origin time folds of ml-100k (fitted with the side tables, as ``reelrank run``
  does), with the paired-bootstrap interval of its difference to EASE (l2 300);
* **by recency**: the default's and the "what else" variant's nDCG@10 on this split per
  bucket of the user's idle time at the end of training, which says whether any rule
  "this user is asked what next, that one what else" could serve both protocols.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reelrank import Recommender
from reelrank.data.movielens import read_movielens
from reelrank.data.validation import validate_tables
from reelrank.evaluation import public_protocol
from reelrank.evaluation.metrics import NDCG, metric_key
from reelrank.evaluation.splits import rolling_origin_folds
from reelrank.models.baselines import (
    ItemKNNBaseline,
    PopularityBaseline,
    als_baseline,
    bpr_baseline,
    ease_baseline,
)
from reelrank.models.recommender import default_sources
from reelrank.models.retrieval import make_source
from reelrank.schema import TIMESTAMP, USER_ID, Dataset
from reelrank.training.crossval import FOLD, MODEL, cross_validate

ROOT = Path(__file__).resolve().parents[1]
EASE = "EASE (l2 300)"
PUBLISHED = {"BiVAE (their best, published)": {"ndcg@10": 0.475, "precision@10": 0.412}}
MODELS: dict[str, tuple[Callable[[], Any], bool]] = {
    # name: (factory, whether fit gets the users/items side tables)
    "popularity": (PopularityBaseline, False),
    "item-kNN (100 neighbours)": (ItemKNNBaseline, False),
    EASE: (lambda: ease_baseline(l2=300.0), False),
    "ALS (32 factors, L2 20, alpha 4)": (
        lambda: als_baseline(factors=32, regularization=20.0, alpha=4.0, random_state=0),
        False,
    ),
    "BPR (64 factors, lr 0.005, L2 0.01, 100 iterations)": (
        lambda: bpr_baseline(
            factors=64, learning_rate=0.005, regularization=0.01, iterations=100, random_state=0
        ),
        False,
    ),
}


def _what_else() -> Recommender:
    """The best "what else" ranker we found for the random split: random hold-outs only,
    retrieval features only (the user/item features cost 0.005 here), an item-kNN source
    added, ten windows of 20 %, smaller leaves (the best of a dozen variants tried here)."""
    sources = [*default_sources(), ("itemknn", make_source("itemknn"))]
    return Recommender(
        sources=sources,
        ranker_holdout="random",
        use_features=False,
        ranker_label_fraction=0.2,
        ranker_windows=10,
    ).set_params(ranker__min_child_samples=50)


DEFAULT = "ReelRank (default: Recommender().fit(events); 6 time + 2 random windows)"
TIME_ONLY = 'ReelRank (ranker_holdout="time": the 6 time windows only)'
WHAT_ELSE = (
    'ReelRank ("what else": ranker_holdout="random", retrieval features only, + item-kNN, '
    "10 windows of 20 %, min_child_samples 50)"
)
VARIANTS: dict[str, Callable[[], Recommender]] = {
    DEFAULT: Recommender,
    TIME_ONLY: lambda: Recommender(ranker_holdout="time"),
    "ReelRank (6 time + 6 random windows)": lambda: Recommender(ranker_random_windows=6),
    "ReelRank (6 time + 12 random windows)": lambda: Recommender(ranker_random_windows=12),
    'ReelRank (ranker_holdout="random": 6 random windows only)': lambda: Recommender(
        ranker_holdout="random"
    ),
    WHAT_ELSE: _what_else,
}
SEEDS = (1, 2)
"""The default is refitted with these ``random_state`` values too (its spread on the page)."""
RECENCY_MODELS = (TIME_ONLY, DEFAULT, WHAT_ELSE, EASE)
"""The columns of the by-recency tables."""
IDLE_BUCKETS = (0, 7, 30, 90)
"""Lower edges (days) of the idle-time buckets of the by-recency table."""


def run(source: Path) -> dict[str, Any]:
    tables = read_movielens(source, "ml-100k")
    data = validate_tables(tables.events, tables.users, tables.items, name="ml-100k").dataset
    train, test = public_protocol.stratified_split(data.events)
    users = np.sort(test[USER_ID].unique())
    rows: dict[str, dict[str, float]] = {}
    per_user: dict[str, pd.Series] = {}
    factories = {
        **MODELS,
        **{name: (factory, False) for name, factory in VARIANTS.items()},
    }
    for name, (factory, side) in factories.items():
        started = time.perf_counter()
        model = factory()
        model.fit(train, data.users, data.items) if side else model.fit(train)
        recs = model.recommend(users, k=public_protocol.K, exclude_seen=True)
        rows[name] = {
            **public_protocol.metrics(test, recs),
            "fit_seconds": time.perf_counter() - started,
        }
        per_user[name] = public_protocol.per_user_ndcg(test, recs)
        print(f"{name:55s} " + "  ".join(f"{k} {v:.4f}" for k, v in rows[name].items()), flush=True)
    return {
        "split": {"train": len(train), "test": len(test), "test_users": len(users)},
        "rows": rows,
        "seeds": seed_spread(train, test, users),
        "by_recency": by_recency(idle_days(train), {n: per_user[n] for n in RECENCY_MODELS}),
        **time_folds(data),
        "published": PUBLISHED,
        "machine": platform.platform(),
        "commit": _commit(),
    }


def seed_spread(train: pd.DataFrame, test: pd.DataFrame, users: np.ndarray) -> dict[str, float]:
    """The default's nDCG@10 here with each of :data:`SEEDS` as ``random_state`` (seed 0 is
    its row): which random events its random windows hold out, and its trees, move it."""
    out = {}
    for seed in SEEDS:
        model = Recommender(random_state=seed).fit(train)
        recs = model.recommend(users, k=public_protocol.K, exclude_seen=True)
        out[str(seed)] = public_protocol.metrics(test, recs)["ndcg@10"]
        print(f"default, seed {seed}: ndcg@10 {out[str(seed)]:.4f}", flush=True)
    return out


def idle_days(train: pd.DataFrame) -> pd.Series:
    """Days from each user's last training event to the end of training."""
    last = train.groupby(USER_ID)[TIMESTAMP].max()
    return (pd.Timestamp(train[TIMESTAMP].max()) - last).dt.days


def by_recency(idle: pd.Series, per_user: dict[str, pd.Series]) -> list[dict[str, Any]]:
    """Mean per-user nDCG@10 of each model per bucket of ``idle`` days (users judged by
    every model; ``per_user`` indexed by user), with the bucket's number of users."""
    edges = [*IDLE_BUCKETS, np.inf]
    out = []
    for low, high in itertools.pairwise(edges):
        judged = next(iter(per_user.values())).index
        days = idle.reindex(judged)
        chosen = judged[(days >= low) & (days < high)]
        label = f"{low}-{int(high) - 1} days" if np.isfinite(high) else f"{low}+ days"
        row: dict[str, Any] = {"idle": label, "users": len(chosen)}
        for name, scores in per_user.items():
            row[name] = float(scores.reindex(chosen).mean()) if len(chosen) else float("nan")
        out.append(row)
    return out


def time_folds(data: Dataset) -> dict[str, list[dict[str, Any]]]:
    """Every ReelRank variant on the gate's protocol (the three rolling-origin folds of
    ``reelrank run``), with its paired-bootstrap difference to EASE (l2 300); and the
    nDCG@10 of the :data:`RECENCY_MODELS` by the test user's idle time at the fold's cutoff
    (every (fold, user) pair)."""
    folds = rolling_origin_folds(data.events, n_folds=3)
    cv = cross_validate({EASE: MODELS[EASE][0], **VARIANTS}, data, folds)
    key = metric_key(NDCG, cv.k)
    table = cv.per_fold.pivot(index=MODEL, columns=FOLD, values=key)
    rows = []
    for name in VARIANTS:
        diff = cv.difference(name, EASE)
        scores = table.loc[name].to_numpy(dtype=float)
        rows.append(
            {
                "model": name,
                "folds": scores.tolist(),
                "mean": float(scores.mean()),
                "vs_ease": diff.mean_diff,
                "low": diff.low,
                "high": diff.high,
            }
        )
        print(f"time folds {name:50s} {rows[-1]['mean']:.4f} vs EASE {diff.mean_diff:+.4f}")
    ease = table.loc[EASE].to_numpy(dtype=float)
    rows.append({"model": EASE, "folds": ease.tolist(), "mean": float(ease.mean())})
    # (fold, user) pairs flattened to one index: idle days at each fold's own cutoff
    idle = pd.concat({fold.fold: idle_days(fold.train) for fold in folds})
    per_user = {name: cv.per_user[name][NDCG] for name in RECENCY_MODELS}
    return {"time_folds": rows, "time_fold_recency": by_recency(idle, per_user)}


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def render(result: dict[str, Any]) -> str:
    table = pd.DataFrame(result["rows"]).T
    lines = [
        "# Public protocol: MovieLens-100K as recommenders-team benchmarks it",
        "",
        "Generated by `benchmarks/public_protocol.py --source ml-100k.zip --out "
        "design_docs/results/public_protocol.json --markdown "
        "design_docs/results/public_protocol.md` (commit "
        f"`{result['commit']}`); do not edit by hand. Split "
        '`python_stratified_split(ratio=0.75, filter_by="item", seed=42)` ported from their '
        f"code: {result['split']['train']:,} train and {result['split']['test']:,} test ratings, "
        f"{result['split']['test_users']} test users; every held-out rating relevant, seen "
        "items removed, k = 10; their metric definitions (`map` is their published MAP "
        "column; `map@10` divides by min(relevant, 10)). Their published best row is BiVAE, "
        "nDCG@10 0.475, P@10 0.412.",
        "",
        "| model | " + " | ".join(table.columns) + " |",
        "|---|" + "---|" * len(table.columns),
    ]
    for name, row in table.iterrows():
        cells = [f"{row[c]:.1f}" if c == "fit_seconds" else f"{row[c]:.4f}" for c in table.columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", *_seed_lines(result), "", *_time_fold_lines(result), ""]
    lines += [*_recency_lines(result), "", *READING]
    return "\n".join(lines) + "\n"


def _seed_lines(result: dict[str, Any]) -> list[str]:
    """One generated sentence: the default beside EASE, with its spread over seeds."""
    seeds = result.get("seeds", {})
    default = result["rows"].get(DEFAULT, {}).get("ndcg@10")
    ease = result["rows"].get(EASE, {}).get("ndcg@10")
    if not seeds or default is None or ease is None:
        return []
    scores = [default, *seeds.values()]
    listed = ", ".join(f"{v:.4f} (seed {k})" for k, v in seeds.items())
    return [
        f"The default's nDCG@10 here is {default:.4f} with seed 0 and {listed} with the "
        f"others: mean {np.mean(scores):.4f}, against EASE's {ease:.4f} "
        f"({np.mean(scores) - ease:+.4f}). The target of nDCG@10 0.50 is "
        + ("met." if min(scores) >= 0.50 else "not met.")
    ]


def _time_fold_lines(result: dict[str, Any]) -> list[str]:
    rows = result.get("time_folds", [])
    if not rows:
        return []
    public = result["rows"]
    lines = [
        "## Both protocols",
        "",
        "Each ReelRank variant on this split and on the gate's protocol (the three "
        "rolling-origin time folds of ml-100k, fitted with the side tables as `reelrank run` "
        "does), against EASE (l2 300) on the same folds; the interval is the 95 % paired "
        "bootstrap of the per-user difference over every (fold, user).",
        "",
        "| model | public nDCG@10 | time folds nDCG@10 (0 / 1 / 2) | mean | vs EASE [95 % CI] |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        folds = " / ".join(f"{v:.4f}" for v in row["folds"])
        versus = (
            f"{row['vs_ease']:+.4f} [{row['low']:+.4f}, {row['high']:+.4f}]"
            if "vs_ease" in row
            else "-"
        )
        score = public.get(row["model"], {}).get("ndcg@10", float("nan"))
        lines.append(f"| {row['model']} | {score:.4f} | {folds} | {row['mean']:.4f} | {versus} |")
    return lines


def _recency_lines(result: dict[str, Any]) -> list[str]:
    lines = [
        "## By recency",
        "",
        "Mean per-user nDCG@10 by the user's idle time at the end of training (days since "
        "their last training rating): on this split, and on the time folds (each fold's "
        "judged users, idle time at that fold's cutoff).",
    ]
    for key, title in (("by_recency", "This split"), ("time_fold_recency", "Time folds")):
        rows = result.get(key, [])
        if not rows:
            continue
        models = [c for c in rows[0] if c not in ("idle", "users")]
        lines += [
            "",
            f"{title}:",
            "",
            "| idle | users | " + " | ".join(models) + " |",
            "|---|---|" + "---|" * len(models),
        ]
        for row in rows:
            cells = " | ".join(f"{row[m]:.4f}" for m in models)
            lines.append(f"| {row['idle']} | {row['users']} | {cells} |")
    return lines


READING: list[str] = [
    "## Reading",
    "",
    "A ranker trained on time windows alone learns that what users watch next is what came "
    "out since they were last here: true forward in time (the gate's folds), false for a "
    "random hold-out of a user's past (this split), where it falls below popularity. The "
    "by-recency tables say where: its lead on the time folds comes from users returning "
    "after weeks or months away, and those idle users are the ones this split asks about "
    "titles they rated back then. The default therefore learns both questions: beside its "
    "six time windows (what next) it holds out two random ones (what else fits this "
    "user's taste). The both-protocols table is the curve it was chosen from (0, 2, 6 "
    "and 12 random windows beside the 6 time windows): the first random windows cost most of the "
    "time-only model's lead on the time folds, more of them lift this split a little "
    "(about as much as the seed moves it) and each one adds fit time (the fit_seconds "
    "column; every random window holds every user, a time window only the users active "
    "in it), so the default takes two. It gives up part "
    "of the time-only model's lead on the time folds and keeps the interval of its "
    "difference to EASE above zero there; on this split it comes close to EASE. A "
    "returning user looks the same to a model in both protocols, so one ranking answers "
    "both only as a compromise; the analysis is in `design_docs/03-model.md`.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, help="GroupLens' ml-100k.zip")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    parser.add_argument("--markdown", type=Path, help="write the results page here")
    parser.add_argument("--render", type=Path, help="re-render --markdown from this JSON only")
    args = parser.parse_args()
    result = json.loads(args.render.read_text()) if args.render else run(args.source)
    if args.out and not args.render:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(render(result))


if __name__ == "__main__":
    main()

"""The ladder of baselines the candidate must beat, each tuned without looking at a test fold.

The ladder is what a senior interviewer would try first, simplest to strongest:
popularity, item-kNN, EASE, ALS and BPR (the last three are retrieval sources judged alone,
:class:`~reelrank.models.baselines.SourceBaseline`). Each rung's hyperparameters are chosen
on an inner split of the *training part of the first fold only* (its newest 20 % of events
by time as validation, warm users, nDCG@k): no test fold is ever seen by the choice. The
chosen values are then used on every fold, logged with the run and shown on the results
page; the gate compares the candidate against the best rung.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

from reelrank.evaluation.metrics import NDCG, metric_key, ndcg_at_k
from reelrank.evaluation.splits import TimeFold, build_relevant, temporal_holdout
from reelrank.models.baselines import (
    ItemKNNBaseline,
    PopularityBaseline,
    als_baseline,
    bpr_baseline,
    ease_baseline,
)
from reelrank.models.training_set import sample_users
from reelrank.schema import USER_ID, Dataset
from reelrank.training.config import ALS, BPR, EASE, ITEM_KNN, POPULARITY, ModelLabel
from reelrank.training.crossval import RecommenderLike

logger = logging.getLogger(__name__)

INNER_VALIDATION_FRACTION: Final = 0.2
TUNING_MAX_USERS: Final = 2_000
"""At scale the grid (some thirty fits) is tuned on the whole histories of this many users of
the first fold's training part, drawn at random with the run's seed (at 5,000 the tuning took
130 s of the 10M-event run, `benchmarks/pipeline_scale.py`); with fewer users
(MovieLens-100K, the default synthetic world) every user is used."""
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Rung:
    """One baseline: how to build it and the hyperparameters tried on the inner split.

    Attributes:
        label: its name in the tables.
        build: ``build(**params) -> recommender``.
        grid: values tried per hyperparameter (every combination; empty: none to tune).
        seeded: whether ``build`` takes a ``random_state``.
    """

    label: ModelLabel
    build: Callable[..., RecommenderLike]
    grid: Mapping[str, Sequence[Any]]
    seeded: bool = False

    def candidates(self) -> list[dict[str, Any]]:
        keys = list(self.grid)
        return [
            dict(zip(keys, values, strict=True))
            for values in itertools.product(*self.grid.values())
        ]

    def make(self, params: Mapping[str, Any], seed: int) -> RecommenderLike:
        extra = {"random_state": seed} if self.seeded else {}
        return self.build(**params, **extra)


LADDER: Final[tuple[Rung, ...]] = (
    Rung(POPULARITY, PopularityBaseline, {}),
    Rung(ITEM_KNN, ItemKNNBaseline, {"neighbours": (50, 100, 200, 400)}),
    Rung(EASE, ease_baseline, {"l2": (50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0)}),
    Rung(
        ALS,
        als_baseline,
        {"factors": (32, 64, 128), "regularization": (0.01, 0.1), "alpha": (1.0, 4.0)},
        seeded=True,
    ),
    Rung(
        BPR,
        bpr_baseline,
        {"factors": (32, 64, 128), "learning_rate": (0.01, 0.05), "regularization": (0.001, 0.01)},
        seeded=True,
    ),
)
LADDER_LABELS: Final = tuple(rung.label for rung in LADDER)


@dataclass(frozen=True)
class Tuning:
    """The ladder's chosen hyperparameters and every trial behind them.

    Attributes:
        chosen: ``{label: params}`` (empty params for rungs with nothing to tune).
        trials: one row per (model, params): ``model, params`` (JSON text) and the inner
            validation nDCG@k; the chosen row of each model is flagged ``chosen``.
    """

    chosen: dict[str, dict[str, Any]]
    trials: pd.DataFrame


def tune_ladder(
    dataset: Dataset,
    first_fold: TimeFold,
    k: int = 10,
    seed: int = 0,
    rungs: Sequence[Rung] = LADDER,
    progress: Progress | None = None,
) -> Tuning:
    """Choose every rung's hyperparameters on the inner split of ``first_fold.train`` (of
    at most ``TUNING_MAX_USERS`` users' histories)."""
    train = sample_users(first_fold.train, TUNING_MAX_USERS, seed)
    inner = temporal_holdout(train, test_fraction=INNER_VALIDATION_FRACTION)
    relevant = build_relevant(inner.train, inner.test)
    users = np.sort(relevant[USER_ID].unique())
    key = metric_key(NDCG, k)
    rows: list[dict[str, Any]] = []
    chosen: dict[str, dict[str, Any]] = {}
    for rung in rungs:
        if progress:
            progress(f"tuning {rung.label} on the first fold's inner split")
        scored = []
        for params in rung.candidates() or [{}]:
            model = rung.make(params, seed).fit(inner.train, dataset.users, dataset.items)
            score = ndcg_at_k(model.recommend(users, k=k), relevant, k)
            scored.append((score, params))
            rows.append({"model": rung.label, "params": _text(params), key: score})
        best_score, best = max(scored, key=lambda pair: pair[0])  # first of equals wins
        chosen[rung.label] = best
        logger.info("tuned %s: %s (inner nDCG@%d %.4f)", rung.label, best, k, best_score)
    trials = pd.DataFrame(rows)
    trials["chosen"] = [
        _text(chosen[row["model"]]) == row["params"] for _, row in trials.iterrows()
    ]
    return Tuning(chosen, trials)


def ladder_factories(
    tuning: Tuning, seed: int, rungs: Sequence[Rung] = LADDER
) -> dict[str, Callable[[], RecommenderLike]]:
    """One factory per rung, with its chosen hyperparameters."""
    return {rung.label: _factory(rung, tuning.chosen.get(rung.label, {}), seed) for rung in rungs}


def _factory(rung: Rung, params: Mapping[str, Any], seed: int) -> Callable[[], RecommenderLike]:
    return lambda: rung.make(params, seed)


def _text(params: Mapping[str, Any]) -> str:
    import json

    return json.dumps(dict(params), sort_keys=True)

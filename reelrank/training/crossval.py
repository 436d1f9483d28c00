"""Time-aware cross-validation of recommenders on identical folds.

Every model (ours and the baselines) is fitted on each fold's training events and asked
for the top-k of every warm user with a relevant test item; the per-user metrics are kept
so differences between models can be bootstrapped on the same users.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from reelrank.evaluation.metrics import (
    COVERAGE,
    NDCG,
    NOVELTY,
    RANKING_METRICS,
    RECALL,
    catalogue_coverage,
    item_popularity_probability,
    metric_key,
    novelty,
)
from reelrank.evaluation.oracle import oracle_comparison
from reelrank.evaluation.slices import slice_per_user_metrics
from reelrank.evaluation.splits import TimeFold, build_relevant
from reelrank.evaluation.stats import DiffResult, bootstrap_ci, paired_bootstrap_diff
from reelrank.schema import ITEM_ID, USER_ID, Dataset

if TYPE_CHECKING:
    from reelrank.data.synthetic import GroundTruth

logger = logging.getLogger(__name__)

MODEL = "model"
FOLD = "fold"
SLICE = "slice"
FIT_SECONDS = "fit_seconds"
GATE_METRIC = NDCG
CI_METRICS = (NDCG, RECALL)  # per-fold 95% bootstrap intervals over users


class RecommenderLike(Protocol):
    def fit(
        self,
        events: pd.DataFrame,
        users: pd.DataFrame | None = ...,
        items: pd.DataFrame | None = ...,
    ) -> Any: ...

    def recommend(self, user_ids: Any, k: int = ..., exclude_seen: bool = ...) -> pd.DataFrame: ...


ModelFactory = Callable[[], RecommenderLike]


@dataclass
class CVResult:
    """What cross-validation measured.

    Attributes:
        k: the cut-off of every ranking metric.
        folds: one description per fold (cutoff, sizes).
        per_fold: one row per (model, fold): every metric at k, coverage, novelty, fit time.
        per_user: model -> frame indexed by (fold, user_id), one column per base metric.
        slices: one row per (model, fold, slice): n_users and metric means.
        fitted: model -> the estimator fitted on the last fold (for curves and importances).
    """

    k: int
    folds: list[dict[str, Any]]
    per_fold: pd.DataFrame
    per_user: dict[str, pd.DataFrame]
    slices: pd.DataFrame
    fitted: dict[str, Any] = field(default_factory=dict)
    oracle: pd.DataFrame | None = None

    @property
    def models(self) -> list[str]:
        return list(self.per_user)

    def mean(self, model: str, metric: str = GATE_METRIC) -> float:
        return float(
            self.per_fold.loc[self.per_fold[MODEL] == model, metric_key(metric, self.k)].mean()
        )

    def summary(self) -> pd.DataFrame:
        """Mean and standard deviation over folds, one row per model."""
        metrics = [
            c
            for c in self.per_fold.columns
            if c not in (MODEL, FOLD) and not c.endswith(("_low", "_high"))
        ]
        grouped = self.per_fold.groupby(MODEL, sort=False)[metrics]
        mean = grouped.mean().add_suffix("_mean")
        std = grouped.std(ddof=1).add_suffix("_std")
        return pd.concat([mean, std], axis=1)

    def best_baseline(self, baselines: Sequence[str], metric: str = GATE_METRIC) -> str:
        return max(baselines, key=lambda name: self.mean(name, metric))

    def difference(
        self, model: str, reference: str, metric: str = GATE_METRIC, seed: int = 0
    ) -> DiffResult:
        """Paired bootstrap of ``model - reference`` over the (fold, user) pairs both judged."""
        return paired_bootstrap_diff(
            self.per_user[model][metric], self.per_user[reference][metric], seed=seed
        )


def cross_validate(
    factories: Mapping[str, ModelFactory],
    dataset: Dataset,
    folds: Sequence[TimeFold],
    k: int = 10,
    progress: Callable[[str], None] | None = None,
    truth: GroundTruth | None = None,
) -> CVResult:
    """Fit and score every model on every fold (the same folds and users for all).

    With the ``truth`` of a synthetic world, every fold is also scored against the oracle.
    """
    catalogue = dataset.items[ITEM_ID].to_numpy()
    rows: list[dict[str, Any]] = []
    per_user: dict[str, list[pd.DataFrame]] = {name: [] for name in factories}
    slice_rows: list[pd.DataFrame] = []
    fitted: dict[str, Any] = {}
    oracle_rows: list[dict[str, Any]] = []
    for fold in folds:
        judged = _JudgedFold(fold, catalogue, k)
        fold_recs: dict[str, pd.DataFrame] = {}
        for name, factory in factories.items():
            if progress:
                progress(f"fold {fold.fold + 1}/{len(folds)}: {name}")
            model, scored = judged.score(name, factory, dataset)
            rows.append(scored.row)
            per_user[name].append(scored.per_user)
            slice_rows.append(scored.slices)
            fold_recs[name], fitted[name] = scored.recommendations, model
        if truth is not None:
            oracle_rows.extend(oracle_comparison(truth, fold, fold_recs, k))
    return CVResult(
        k=k,
        folds=[fold.describe() for fold in folds],
        per_fold=pd.DataFrame(rows),
        per_user={
            name: pd.concat(frames).reorder_levels([FOLD, USER_ID]).sort_index()
            for name, frames in per_user.items()
        },
        slices=pd.concat(slice_rows, ignore_index=True),
        fitted=fitted,
        oracle=pd.DataFrame(oracle_rows) if oracle_rows else None,
    )


@dataclass(frozen=True)
class _Scored:
    """One model on one fold: its table row, per-user metrics, slices and top-k."""

    row: dict[str, Any]
    per_user: pd.DataFrame
    slices: pd.DataFrame
    recommendations: pd.DataFrame


class _JudgedFold:
    """A fold with what every model is judged on: its relevant items and judged users."""

    def __init__(self, fold: TimeFold, catalogue: np.ndarray, k: int) -> None:
        self.fold = fold
        self.catalogue = catalogue
        self.k = k
        self.relevant = build_relevant(fold.train, fold.test)
        self.users = np.sort(self.relevant[USER_ID].unique())
        self.popularity = item_popularity_probability(fold.train)

    def score(self, name: str, factory: ModelFactory, dataset: Dataset) -> tuple[Any, _Scored]:
        """Fit ``factory()`` on the fold's training events and judge its top-k."""
        fold, k = self.fold, self.k
        started = time.perf_counter()
        model = factory()
        model.fit(fold.train, dataset.users, dataset.items)
        fit_seconds = time.perf_counter() - started
        recs = model.recommend(self.users, k=k, exclude_seen=True)
        frames = slice_per_user_metrics(
            recs, self.relevant, fold.train, k, catalogue=self.catalogue
        )
        scores = frames["all"]
        row: dict[str, Any] = {MODEL: name, FOLD: fold.fold}
        row.update({metric_key(m, k): float(scores[m].mean()) for m in RANKING_METRICS})
        for m in CI_METRICS:
            interval = bootstrap_ci(scores[m].to_numpy(), seed=fold.fold)
            row[f"{metric_key(m, k)}_low"] = interval.low
            row[f"{metric_key(m, k)}_high"] = interval.high
        row[metric_key(COVERAGE, k)] = catalogue_coverage(recs, self.catalogue, k)
        row[metric_key(NOVELTY, k)] = novelty(recs, self.popularity, k)
        row[FIT_SECONDS] = fit_seconds
        table = pd.DataFrame(
            {s: {"n_users": len(f), **f.mean().to_dict()} for s, f in frames.items()}
        ).T
        slices = table.rename_axis(SLICE).reset_index().assign(model=name, fold=fold.fold)
        logger.info(
            "fold %d %s: ndcg@%d=%.4f recall@%d=%.4f (%.1fs)",
            fold.fold,
            name,
            k,
            row[metric_key(NDCG, k)],
            k,
            row[metric_key(RECALL, k)],
            fit_seconds,
        )
        per_user = scores.assign(**{FOLD: fold.fold}).set_index(FOLD, append=True)
        return model, _Scored(row, per_user, slices, recs)

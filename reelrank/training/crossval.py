"""Time-aware cross-validation of recommenders on identical folds.

Every model (ours and the baselines) is fitted on each fold's training events and asked
for the top-k of every warm user with a relevant test item; the per-user metrics are kept
so differences between models can be bootstrapped on the same users.
"""

from __future__ import annotations

import inspect
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
    per_user_metrics,
)
from reelrank.evaluation.oracle import oracle_comparison
from reelrank.evaluation.slices import NEW_USERS, slice_per_user_metrics
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
    The folds are independent: :func:`score_fold` is one, :func:`combine` joins them (an
    engine may run the folds in parallel and combine their results).
    """
    results = [
        score_fold(factories, dataset, fold, k, truth, progress, n_folds=len(folds))
        for fold in folds
    ]
    return combine(results, k)


@dataclass(frozen=True)
class FoldResult:
    """Every model scored on one fold (the unit a distributed engine runs)."""

    description: dict[str, Any]
    rows: list[dict[str, Any]]
    per_user: dict[str, pd.DataFrame]
    slices: list[pd.DataFrame]
    fitted: dict[str, Any]
    oracle: list[dict[str, Any]]


def score_fold(
    factories: Mapping[str, ModelFactory],
    dataset: Dataset,
    fold: TimeFold,
    k: int = 10,
    truth: GroundTruth | None = None,
    progress: Callable[[str], None] | None = None,
    n_folds: int | None = None,
) -> FoldResult:
    """Fit and score every model on ``fold``."""
    judged = _JudgedFold(fold, dataset.items[ITEM_ID].to_numpy(), k)
    rows, slices, per_user, fitted, recs = [], [], {}, {}, {}
    for name, factory in factories.items():
        if progress:
            progress(f"fold {fold.fold + 1}/{n_folds or '?'}: {name}")
        model, scored = judged.score(name, factory, dataset)
        rows.append(scored.row)
        per_user[name] = scored.per_user
        slices.append(scored.slices)
        recs[name], fitted[name] = scored.recommendations, model
    oracle = oracle_comparison(truth, fold, recs, k) if truth is not None else []
    return FoldResult(fold.describe(), rows, per_user, slices, fitted, oracle)


def combine(results: Sequence[FoldResult], k: int) -> CVResult:
    """One :class:`CVResult` from the folds' results (in fold order; ``fitted`` keeps the
    last fold's models, for the diagnostics)."""
    ordered = sorted(results, key=lambda r: int(r.description[FOLD]))
    names = list(ordered[0].per_user) if ordered else []
    oracle = [row for r in ordered for row in r.oracle]
    return CVResult(
        k=k,
        folds=[r.description for r in ordered],
        per_fold=pd.DataFrame([row for r in ordered for row in r.rows]),
        per_user={
            name: pd.concat([r.per_user[name] for r in ordered])
            .reorder_levels([FOLD, USER_ID])
            .sort_index()
            for name in names
        },
        slices=pd.concat([s for r in ordered for s in r.slices], ignore_index=True),
        fitted=dict(ordered[-1].fitted) if ordered else {},
        oracle=pd.DataFrame(oracle) if oracle else None,
    )


def _slates_for(model: Any, dataset: Dataset) -> dict[str, pd.DataFrame]:
    """``slates=`` for a model whose ``fit`` reads served slates, when the dataset has some
    (the model keeps to those shown before the fold's last training event, and labels
    them from the fold's training events only, so no fold learns from its test window)."""
    if dataset.slates is None or "slates" not in inspect.signature(model.fit).parameters:
        return {}
    return {"slates": dataset.slates}


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
        every = build_relevant(fold.train, fold.test, include_cold_users=True)
        self.new_relevant = every[~every[USER_ID].isin(fold.train[USER_ID].unique())]
        self.new_users = np.sort(self.new_relevant[USER_ID].unique())
        self.popularity = item_popularity_probability(fold.train)

    def new_user_scores(self, model: Any) -> pd.DataFrame:
        """Per-user metrics of the users whose first event is in the test window, on the
        ranking the model gives a user it has never seen (the service's cold start)."""
        if len(self.new_users) == 0:
            return pd.DataFrame(columns=list(RANKING_METRICS), dtype=float)
        recs = model.recommend(self.new_users, k=self.k, exclude_seen=True)
        return per_user_metrics(recs, self.new_relevant, self.k)

    def score(self, name: str, factory: ModelFactory, dataset: Dataset) -> tuple[Any, _Scored]:
        """Fit ``factory()`` on the fold's training events and judge its top-k."""
        fold, k = self.fold, self.k
        started = time.perf_counter()
        model = factory()
        model.fit(fold.train, dataset.users, dataset.items, **_slates_for(model, dataset))
        fit_seconds = time.perf_counter() - started
        recs = model.recommend(self.users, k=k, exclude_seen=True)
        frames = slice_per_user_metrics(
            recs, self.relevant, fold.train, k, catalogue=self.catalogue
        )
        frames[NEW_USERS] = self.new_user_scores(model)
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

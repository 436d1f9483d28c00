"""Diagnostics of the candidate on the last fold: what the ranker sees and how it learns.

* :func:`candidate_recall_table`: recall@N of each retrieval source and of their union;
* :func:`ranker_view`: labels and scores of every candidate (the pointwise view: AUC, ROC);
* :func:`learning_curve`: validation nDCG@k against the training-set size;
* :func:`regularisation_sweep`: nDCG@k of the LightGBM ranker for L1/L2 strengths.

All run on folds cross-validation already cut; none looks at any other data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd
from sklearn.base import clone

from reelrank.evaluation.candidates import candidate_recall
from reelrank.evaluation.metrics import NDCG, auc, metric_key, ndcg_at_k
from reelrank.evaluation.splits import TimeFold, build_relevant
from reelrank.features.columns import CATEGORICAL_FEATURES
from reelrank.models.baselines import PopularityBaseline
from reelrank.models.rankers import LGBMRanker
from reelrank.models.recommender import Recommender, library_feature_provider
from reelrank.models.training_set import feature_snapshot_end
from reelrank.schema import ITEM_ID, SCORE, TIMESTAMP, USER_ID, Dataset
from reelrank.training.config import CANDIDATE, POPULARITY, TrainConfig

logger = logging.getLogger(__name__)

RECALL_CUTOFFS: Final = (50, 100, 200)
LEARNING_FRACTIONS: Final = (0.25, 0.5, 1.0)
REGULARISATION_STRENGTHS: Final = (0.0, 10.0, 100.0)
SWEEP_MAX_GROUPS: Final = 1000  # label users sampled for the sweep's ranker fits
FIT_CHECK_SHARE: Final = 0.9  # the training score ranks the last 10% of a model's own window


@dataclass(frozen=True)
class Diagnostics:
    """What the diagnostics measured (``None`` where they did not run).

    Attributes:
        candidate_recall: recall@N per source and for the union (rows), N in columns.
        labels, scores: the ranker's pointwise view of the last fold's candidates.
        auc: ROC AUC of that view (``None`` when only one class is present).
        importances: the ranker's feature importances, when it exposes them.
        learning_curve: one row per (model, training fraction).
        regularisation: one row per (penalty, strength).
    """

    candidate_recall: pd.DataFrame
    labels: np.ndarray
    scores: np.ndarray
    auc: float | None
    importances: pd.Series | None
    learning_curve: pd.DataFrame | None = None
    regularisation: pd.DataFrame | None = None


def run_diagnostics(
    config: TrainConfig,
    dataset: Dataset,
    fold: TimeFold,
    fitted: Recommender,
    progress: Callable[[str], None] | None = None,
) -> Diagnostics:
    """Every diagnostic of ``fitted`` (the candidate fitted on ``fold`` by cross-validation)."""
    relevant = build_relevant(fold.train, fold.test)
    labels, scores = ranker_view(fitted, relevant)
    curve = sweep = None
    if config.diagnostics:
        if progress:
            progress("learning curve")
        curve = learning_curve(config, dataset, fold, fitted)
        if isinstance(fitted.ranker_, LGBMRanker):
            if progress:
                progress("regularisation sweep")
            sweep = regularisation_sweep(config, dataset, fold, fitted)
    return Diagnostics(
        candidate_recall=candidate_recall_table(fitted, relevant),
        labels=labels,
        scores=scores,
        auc=auc(labels, scores) if labels.min() != labels.max() else None,
        importances=fitted.feature_importances(),
        learning_curve=curve,
        regularisation=sweep,
    )


def _judged_users(relevant: pd.DataFrame) -> np.ndarray:
    return np.sort(relevant[USER_ID].unique())


def candidate_recall_table(model: Recommender, relevant: pd.DataFrame) -> pd.DataFrame:
    """Recall@N of every source and of the union, on the fold's judged users."""
    candidates = model.candidates(_judged_users(relevant), n=max(RECALL_CUTOFFS))
    return candidate_recall(candidates, relevant, list(model.sources_), RECALL_CUTOFFS)


def ranker_view(model: Recommender, relevant: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Labels (relevant or not) and ranker scores of every candidate of the judged users."""
    ranked = model.rank(model.candidates(_judged_users(relevant)))
    positives = pd.MultiIndex.from_frame(relevant[[USER_ID, ITEM_ID]])
    labels = pd.MultiIndex.from_frame(ranked[[USER_ID, ITEM_ID]]).isin(positives)
    return labels.astype(np.int64), ranked[SCORE].to_numpy(dtype=np.float64)


def _fit_score(model: Any, subset: pd.DataFrame, k: int) -> float:
    """How well ``model`` ranks the last 10% of its own training window (seen kept)."""
    cutoff = subset[TIMESTAMP].quantile(FIT_CHECK_SHARE)
    inner = build_relevant(subset[subset[TIMESTAMP] < cutoff], subset[subset[TIMESTAMP] >= cutoff])
    users = _judged_users(inner)
    return ndcg_at_k(model.recommend(users, k=k, exclude_seen=False), inner, k)


def learning_curve(
    config: TrainConfig, dataset: Dataset, fold: TimeFold, fitted: Recommender
) -> pd.DataFrame:
    """Validation nDCG@k vs training-set size (most recent fraction of the fold's train)."""
    train = fold.train.sort_values(TIMESTAMP, kind="stable")
    relevant = build_relevant(fold.train, fold.test)
    users = _judged_users(relevant)
    key = metric_key(NDCG, config.k)
    rows = []
    for fraction in LEARNING_FRACTIONS:
        subset = train.iloc[int(len(train) * (1 - fraction)) :]
        for name, factory in ((CANDIDATE, config.recommender), (POPULARITY, PopularityBaseline)):
            try:
                if name == CANDIDATE and fraction == 1.0:
                    model: Any = fitted  # already fitted on the whole fold
                else:
                    model = factory().fit(subset, dataset.users, dataset.items)
            except Exception as error:  # a tiny subset may not support every stage
                logger.warning("learning curve: %s at %.2f failed: %s", name, fraction, error)
                continue
            rows.append(
                {
                    "model": name,
                    "fraction": fraction,
                    "n_events": len(subset),
                    f"valid_{key}": ndcg_at_k(
                        model.recommend(users, k=config.k), relevant, config.k
                    ),
                    f"train_{key}": _fit_score(model, subset, config.k),
                }
            )
    return pd.DataFrame(rows)


def regularisation_sweep(
    config: TrainConfig, dataset: Dataset, fold: TimeFold, fitted: Recommender
) -> pd.DataFrame:
    """nDCG@k of the LightGBM ranker for L1 and L2 strengths on the fold.

    The candidates and features do not depend on the penalty, so the ranker's training set
    is built once and only the ranker is refitted for each strength, on at most
    ``SWEEP_MAX_GROUPS`` label users (the sweep shows a trend; it does not pick the model).
    """
    relevant = build_relevant(fold.train, fold.test)
    users = _judged_users(relevant)
    end = feature_snapshot_end(fold.train)
    provider = library_feature_provider(fold.train, dataset.users, dataset.items, end=end)
    train = fitted.training_set(fold.train, dataset.users, dataset.items, feature_provider=provider)
    sample = train.sample_groups(SWEEP_MAX_GROUPS, config.seed)
    categorical = [c for c in CATEGORICAL_FEATURES if c in sample.feature_names]
    key = metric_key(NDCG, config.k)
    rows = []
    for penalty, param in (("l1", "reg_alpha"), ("l2", "reg_lambda")):
        for strength in REGULARISATION_STRENGTHS:
            ranker = clone(fitted.ranker_).set_params(**{param: strength})
            ranker.fit(sample.X, sample.y, sample.group_sizes, sample.feature_names, categorical)
            variant = fitted.with_ranker(ranker)
            score = ndcg_at_k(variant.recommend(users, k=config.k), relevant, config.k)
            rows.append({"penalty": penalty, "strength": strength, key: score})
    return pd.DataFrame(rows)

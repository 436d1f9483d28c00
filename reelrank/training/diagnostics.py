"""Diagnostics of the candidate on the last fold: what the ranker sees and how it learns.

* :func:`candidate_recall_table`: recall@N of each retrieval source and of their union;
* :func:`run_diagnostics` keeps the labels and scores of every candidate (the pointwise
  view: AUC, ROC);
* :func:`learning_curve`: the ranker's training and validation nDCG@k against the
  training-set size;
* :func:`regularisation_sweep`: the complexity curve: nDCG@k of the LightGBM ranker for
  L1/L2 strengths.

All run on folds cross-validation already cut; none looks at any other data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd
from sklearn.base import clone

from reelrank.evaluation.candidates import candidate_recall
from reelrank.evaluation.metrics import (
    COVERAGE,
    NDCG,
    NOVELTY,
    auc,
    catalogue_coverage,
    grouped_ndcg,
    intra_list_diversity,
    item_popularity_probability,
    metric_key,
    ndcg_at_k,
    novelty,
)
from reelrank.evaluation.splits import TimeFold, build_relevant
from reelrank.features.columns import CATEGORICAL_FEATURES
from reelrank.models.rankers import LGBMRanker
from reelrank.models.recommender import Recommender, library_feature_provider
from reelrank.models.reranking import DEFAULT_RERANK, RerankConfig
from reelrank.models.training_set import feature_snapshot_end
from reelrank.schema import GENRES, ITEM_ID, SCORE, TIMESTAMP, USER_ID, Dataset
from reelrank.training.config import TrainConfig

logger = logging.getLogger(__name__)

RECALL_CUTOFFS: Final = (50, 100, 200)
LEARNING_FRACTIONS: Final = (0.25, 0.5, 1.0)
REGULARISATION_STRENGTHS: Final = (0.0, 10.0, 100.0)
SWEEP_MAX_GROUPS: Final = 500  # label users sampled for the sweep's ranker fits


@dataclass(frozen=True)
class Diagnostics:
    """What the diagnostics measured (``None`` where they did not run).

    Attributes:
        candidate_recall: recall@N per source and for the union (rows), N in columns.
        labels, scores: the ranker's pointwise view of the last fold's candidates.
        auc: ROC AUC of that view (``None`` when only one class is present).
        importances: the ranker's feature importances, when it exposes them.
        learning_curve: one row per (model, training fraction).
        regularisation: one row per (penalty, strength): the complexity curve.
        reranking: one row per re-ranker setting (the accuracy/diversity trade-off).
    """

    candidate_recall: pd.DataFrame
    labels: np.ndarray
    scores: np.ndarray
    auc: float | None
    importances: pd.Series | None
    learning_curve: pd.DataFrame | None = None
    regularisation: pd.DataFrame | None = None
    reranking: pd.DataFrame | None = None


def run_diagnostics(
    config: TrainConfig,
    dataset: Dataset,
    fold: TimeFold,
    fitted: Recommender,
    progress: Callable[[str], None] | None = None,
    end_to_end: float | None = None,
) -> Diagnostics:
    """Every diagnostic of ``fitted`` (the candidate fitted on ``fold`` by cross-validation;
    ``end_to_end``: its cross-validation nDCG@k there, reused by the learning curve)."""
    relevant = build_relevant(fold.train, fold.test)
    ranked = fitted.rank(fitted.candidates(_judged_users(relevant)))
    labels = _candidate_labels(ranked, relevant)
    scores = ranked[SCORE].to_numpy(dtype=np.float64)
    curve = sweep = None
    if progress:
        progress("re-ranking trade-off")
    tradeoff = rerank_tradeoff(config, dataset, fold, fitted)
    if config.diagnostics:
        if progress:
            progress("learning curve")
        full = None if end_to_end is None else (_ranked_ndcg(ranked, labels, config.k), end_to_end)
        curve = learning_curve(config, dataset, fold, fitted, full)
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
        reranking=tradeoff,
    )


def _judged_users(relevant: pd.DataFrame) -> np.ndarray:
    return np.sort(relevant[USER_ID].unique())


def candidate_recall_table(model: Recommender, relevant: pd.DataFrame) -> pd.DataFrame:
    """Recall@N of every source and of the union, on the fold's judged users."""
    candidates = model.candidates(_judged_users(relevant), n=max(RECALL_CUTOFFS))
    return candidate_recall(candidates, relevant, list(model.sources_), RECALL_CUTOFFS)


def _candidate_labels(ranked: pd.DataFrame, relevant: pd.DataFrame) -> np.ndarray:
    positives = pd.MultiIndex.from_frame(relevant[[USER_ID, ITEM_ID]])
    labels = pd.MultiIndex.from_frame(ranked[[USER_ID, ITEM_ID]]).isin(positives)
    return labels.astype(np.int64)


def _ranked_ndcg(ranked: pd.DataFrame, labels: np.ndarray, k: int) -> float:
    sizes = ranked.groupby(USER_ID, sort=False).size().to_numpy()
    return grouped_ndcg(ranked[SCORE].to_numpy(), labels, sizes, k)


def candidate_set_ndcg(model: Recommender, relevant: pd.DataFrame, k: int) -> float:
    """nDCG@k of the ranker inside the candidate sets of the judged users (what it can
    order), the same metric as its training score (``ranker_train_ndcg_``)."""
    ranked = model.rank(model.candidates(_judged_users(relevant)))
    return _ranked_ndcg(ranked, _candidate_labels(ranked, relevant), k)


def learning_curve(
    config: TrainConfig,
    dataset: Dataset,
    fold: TimeFold,
    fitted: Recommender,
    full: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """The ranker's training and validation scores against the training-set size.

    The candidate is refitted on the most recent 25 %, 50 % and 100 % of the fold's
    training events. Both scores are nDCG@k of the ranker inside candidate sets against
    "what came next": **training** on its own training groups (the label windows it was
    fitted on), **validation** on the fold's test window. Both low and close: high bias;
    training well above a validation that closes the gap as data grows: high variance.
    ``end_to_end_`` is the cross-validation metric (the whole catalogue, recall included).
    ``full``: the validation and end-to-end scores of ``fitted`` itself when the caller
    has them (the diagnostics' ranked candidates, the cross-validation table), instead of
    ranking every judged user's candidates twice more.
    """
    train = fold.train.sort_values(TIMESTAMP, kind="stable")
    relevant = build_relevant(fold.train, fold.test)
    key = metric_key(NDCG, config.k)
    rows = []
    for fraction in LEARNING_FRACTIONS:
        subset = train.iloc[int(len(train) * (1 - fraction)) :]
        try:
            model = (
                fitted
                if fraction == 1.0
                else config.recommender().fit(subset, dataset.users, dataset.items)
            )
        except Exception as error:  # a tiny subset may not support every stage
            logger.warning("learning curve at %.2f failed: %s", fraction, error)
            continue
        users = _judged_users(relevant)
        if fraction == 1.0 and full is not None:
            valid, end_to_end = full
        else:
            valid = candidate_set_ndcg(model, relevant, config.k)
            end_to_end = ndcg_at_k(model.recommend(users, k=config.k), relevant, config.k)
        rows.append(
            {
                "fraction": fraction,
                "n_events": len(subset),
                "n_training_groups": model.n_ranker_groups_,
                f"train_{key}": model.ranker_train_ndcg_,
                f"valid_{key}": valid,
                f"end_to_end_{key}": end_to_end,
            }
        )
    return pd.DataFrame(rows)


RERANK_GRID: Final[tuple[tuple[str, RerankConfig], ...]] = (
    ("ranker order", RerankConfig()),
    *((f"diversity {s}", RerankConfig(diversity=s)) for s in (0.1, 0.2, 0.3, 0.5, 0.7)),
    *((f"freshness {s}", RerankConfig(freshness=s)) for s in (0.1, 0.3, 0.5)),
    *((f"long_tail {s}", RerankConfig(long_tail=s)) for s in (0.1, 0.3, 0.5)),
    ("default", DEFAULT_RERANK),
)
"""The re-ranker settings measured: each strength alone, and the service's default."""


def rerank_tradeoff(
    config: TrainConfig, dataset: Dataset, fold: TimeFold, fitted: Recommender
) -> pd.DataFrame:
    """nDCG@k against intra-list diversity, catalogue coverage and novelty for each
    re-ranker setting of :data:`RERANK_GRID`, on the fold's judged users as of its cutoff
    (the candidates are scored once; only the third stage varies)."""
    relevant = build_relevant(fold.train, fold.test)
    ranked = fitted.rank(fitted.candidates(_judged_users(relevant)), as_of=fold.cutoff)
    catalogue = dataset.items[ITEM_ID].to_numpy()
    popularity = item_popularity_probability(fold.train)
    genres = _genre_flags(dataset)
    k = config.k
    rows = []
    for name, setting in RERANK_GRID:
        recs = fitted.rerank(ranked, setting, k=k, now=fold.cutoff)
        rows.append(
            {
                "setting": name,
                "diversity": setting.diversity,
                "freshness": setting.freshness,
                "long_tail": setting.long_tail,
                metric_key(NDCG, k): ndcg_at_k(recs, relevant, k),
                f"ild_at_{k}": intra_list_diversity(recs, genres, k),
                metric_key(COVERAGE, k): catalogue_coverage(recs, catalogue, k),
                metric_key(NOVELTY, k): novelty(recs, popularity, k),
            }
        )
    return pd.DataFrame(rows)


def _genre_flags(dataset: Dataset) -> pd.DataFrame:
    """Bool genre flags indexed by item id (the input of intra-list diversity)."""
    items = dataset.items.drop_duplicates(ITEM_ID).set_index(ITEM_ID)
    names = sorted({g for genres in items[GENRES].dropna() for g in genres})
    return pd.DataFrame(
        {
            name: [
                name in (g if isinstance(g, list | tuple | np.ndarray) else ())
                for g in items[GENRES]
            ]
            for name in names
        },
        index=items.index,
    )


def regularisation_sweep(
    config: TrainConfig, dataset: Dataset, fold: TimeFold, fitted: Recommender
) -> pd.DataFrame:
    """nDCG@k of the LightGBM ranker for L1 and L2 strengths on the fold.

    The candidates and features do not depend on the penalty, so the ranker's training set
    is built once, of about ``SWEEP_MAX_GROUPS`` label users (the same share of every label
    window), and only the ranker is refitted for each strength (the sweep shows a trend; it
    does not pick the model). Building only the sampled users' groups, rather than every
    window's ``ranker_max_users`` and then sampling, skips most of the retrieval and
    feature work of the build.
    """
    relevant = build_relevant(fold.train, fold.test)
    users = _judged_users(relevant)
    end = feature_snapshot_end(fold.train)
    provider = library_feature_provider(fold.train, dataset.users, dataset.items, end=end)
    per_window = -(-SWEEP_MAX_GROUPS // max(1, len(fitted.ranker_cutoffs_)))
    cap = min(per_window, fitted.ranker_max_users or per_window)
    builder = clone(fitted).set_params(ranker_max_users=cap)
    train = builder.training_set(
        fold.train, dataset.users, dataset.items, feature_provider=provider, layout=fitted.layout_
    )
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

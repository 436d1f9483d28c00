"""Ranking metrics with one signature, plus the classification view of the ranker.

Every ranking metric is called the same way (in the style of recommenders-team/recommenders)::

    metric(recommendations, relevant, k=10, *, user_col=USER_ID, item_col=ITEM_ID,
           rank_col=RANK, relevance_col=None) -> float

``recommendations``
    One row per recommended (user, item), with ``rank_col`` (1 = best). When ``rank_col`` is
    absent a ``score`` column is used instead (higher = better). Ranks need not be dense: each
    user's rows are ordered by rank (or score descending), ties broken by item id, and the first
    ``k`` distinct items are that user's top-k. Rows with a missing rank/score are ignored;
    a duplicated (user, item) keeps its best position.
``relevant``
    One row per relevant (user, item). With ``relevance_col`` the column holds a graded relevance:
    rows with relevance <= 0 are not relevant, binary metrics count relevance > 0 as a hit and
    nDCG uses the relevance itself as the (linear) gain, as scikit-learn's ``ndcg_score`` does.
    A duplicated (user, item) keeps its highest relevance.

Averaging: every metric is the mean over the users of ``relevant`` who have at least one
relevant item. Such users missing from ``recommendations`` score 0; recommendations for users
absent from ``relevant`` are ignored (there is nothing to judge them by). With no user to
average over the scalar metrics raise :class:`EvaluationError` (an empty test window is a bug
upstream, not a score of 0); :func:`per_user_metrics` returns an empty frame.

Definitions per user u with relevant set R_u, top-k list L_u and hits H_u = L_u ∩ R_u
(all metrics lie in [0, 1]):

* ``precision``: |H_u| / k. Divides by k even when fewer than k items were recommended.
* ``recall``: |H_u| / |R_u|.
* ``hit_rate``: 1 if |H_u| > 0 else 0.
* ``mrr``: 1 / position of the first hit in L_u, 0 without a hit (MRR truncated at k).
* ``map``: sum over hits at position p of precision@p, divided by min(|R_u|, k).
* ``ndcg``: DCG / ideal DCG with DCG = sum gain / log2(position + 1); gain 1 for binary,
  the relevance when ``relevance_col`` is given; the ideal ranks R_u by gain, truncated at k.

Catalogue metrics (``catalogue_coverage``, ``novelty``) look at all recommended rows in the
top-k, for every user in ``recommendations``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.stats import rankdata

from reelrank.evaluation.errors import EvaluationError
from reelrank.schema import ITEM_ID, RANK, SCORE, USER_ID

DEFAULT_K: Final = 10

PRECISION: Final = "precision"
RECALL: Final = "recall"
MAP: Final = "map"
NDCG: Final = "ndcg"
HIT_RATE: Final = "hit_rate"
MRR: Final = "mrr"
COVERAGE: Final = "coverage"
NOVELTY: Final = "novelty"
AUC: Final = "auc"

RANKING_METRICS: Final[tuple[str, ...]] = (PRECISION, RECALL, MAP, NDCG, HIT_RATE, MRR)

POSITION: Final = "position"
_GAIN: Final = "_gain"
_ORDER: Final = "_order"


def metric_key(name: str, k: int) -> str:
    """The name a metric is logged under, e.g. ``metric_key("ndcg", 10) == "ndcg_at_10"``.

    MLflow metric names may not contain ``@``, hence ``_at_``.
    """
    return f"{name}_at_{k}"


# --------------------------------------------------------------------------- input handling


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise EvaluationError(f"k must be a positive integer, got {k!r}.")


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise EvaluationError(
            f"{what} is missing column(s) {missing}; it has {list(frame.columns)}. "
            "Pass the right names through user_col / item_col / rank_col / relevance_col."
        )


def top_k_items(
    recommendations: pd.DataFrame,
    k: int = DEFAULT_K,
    *,
    user_col: str = USER_ID,
    item_col: str = ITEM_ID,
    rank_col: str = RANK,
) -> pd.DataFrame:
    """Each user's first ``k`` distinct items, as ``[user_col, item_col, position]``.

    Orders by ``rank_col`` ascending, or by ``score`` descending when there is no rank column;
    ties go to the smaller item id. ``position`` runs 1..k without gaps. Sorted by user, position.
    """
    _check_k(k)
    _require_columns(recommendations, [user_col, item_col], "recommendations")
    if rank_col in recommendations.columns:
        order = recommendations[rank_col].to_numpy(dtype=float)
    elif SCORE in recommendations.columns:
        order = -recommendations[SCORE].to_numpy(dtype=float)
    else:
        raise EvaluationError(
            f"recommendations needs a {rank_col!r} column (1 = best) or a {SCORE!r} column "
            f"(higher = better); it has {list(recommendations.columns)}."
        )
    frame = pd.DataFrame(
        {
            user_col: recommendations[user_col].to_numpy(),
            item_col: recommendations[item_col].to_numpy(),
            _ORDER: order,
        }
    )
    frame = frame[~np.isnan(order)]
    frame = frame.sort_values([user_col, _ORDER, item_col], kind="stable")
    frame = frame.drop_duplicates([user_col, item_col], keep="first")
    position = frame.groupby(user_col, sort=False).cumcount().to_numpy() + 1
    frame = frame.drop(columns=_ORDER).assign(**{POSITION: position})
    return frame[frame[POSITION] <= k].reset_index(drop=True)


def _relevant_items(
    relevant: pd.DataFrame, *, user_col: str, item_col: str, relevance_col: str | None
) -> pd.DataFrame:
    """``[user_col, item_col, _gain]`` with gain > 0, one row per (user, item)."""
    columns = [user_col, item_col] + ([relevance_col] if relevance_col else [])
    _require_columns(relevant, columns, "relevant")
    gain = (
        relevant[relevance_col].to_numpy(dtype=float)
        if relevance_col
        else np.ones(len(relevant), dtype=float)
    )
    frame = pd.DataFrame(
        {user_col: relevant[user_col].to_numpy(), item_col: relevant[item_col].to_numpy()}
    ).assign(**{_GAIN: gain})
    frame = frame[frame[_GAIN] > 0]
    frame = frame.sort_values([user_col, _GAIN], ascending=[True, False], kind="stable")
    return frame.drop_duplicates([user_col, item_col], keep="first").reset_index(drop=True)


@dataclass(frozen=True)
class _Judged:
    """The top-k lists judged against the relevant items, in array form."""

    users: pd.Index  # users with at least one relevant item, sorted
    k: int
    n_relevant: NDArray[np.float64]  # per user
    ideal_dcg: NDArray[np.float64]  # per user
    hit_user: NDArray[np.intp]  # user code of each hit, sorted by (user, position)
    hit_position: NDArray[np.float64]
    hit_gain: NDArray[np.float64]


def _judge(
    recommendations: pd.DataFrame,
    relevant: pd.DataFrame,
    k: int,
    *,
    user_col: str,
    item_col: str,
    rank_col: str,
    relevance_col: str | None,
) -> _Judged:
    _check_k(k)
    rel = _relevant_items(
        relevant, user_col=user_col, item_col=item_col, relevance_col=relevance_col
    )
    users = pd.Index(np.unique(rel[user_col].to_numpy()), name=user_col)
    user_codes = users.get_indexer(rel[user_col])
    n_users = len(users)
    n_relevant = np.bincount(user_codes, minlength=n_users).astype(float)

    # Ideal DCG: the user's relevant items by gain (rel is sorted by user, gain desc), top k.
    ideal_position = rel.groupby(user_col, sort=False).cumcount().to_numpy() + 1
    in_ideal = ideal_position <= k
    ideal_dcg = np.bincount(
        user_codes[in_ideal],
        weights=rel[_GAIN].to_numpy()[in_ideal] / np.log2(ideal_position[in_ideal] + 1),
        minlength=n_users,
    ).astype(float)

    _require_columns(recommendations, [user_col, item_col], "recommendations")
    judged_recs = recommendations[recommendations[user_col].isin(users)]
    top = top_k_items(judged_recs, k, user_col=user_col, item_col=item_col, rank_col=rank_col)
    hits = top.merge(rel, on=[user_col, item_col], how="inner", sort=False)
    hit_user = users.get_indexer(hits[user_col])
    hit_position = hits[POSITION].to_numpy(dtype=float)
    order = np.lexsort((hit_position, hit_user))
    return _Judged(
        users=users,
        k=int(k),
        n_relevant=n_relevant,
        ideal_dcg=ideal_dcg,
        hit_user=hit_user[order],
        hit_position=hit_position[order],
        hit_gain=hits[_GAIN].to_numpy(dtype=float)[order],
    )


# --------------------------------------------------------------------------- per-user kernels


def _hits(j: _Judged) -> NDArray[np.float64]:
    return np.bincount(j.hit_user, minlength=len(j.users)).astype(float)


def _precision(j: _Judged) -> NDArray[np.float64]:
    return _hits(j) / j.k


def _recall(j: _Judged) -> NDArray[np.float64]:
    return _hits(j) / j.n_relevant


def _hit_rate(j: _Judged) -> NDArray[np.float64]:
    return (_hits(j) > 0).astype(float)


def _mrr(j: _Judged) -> NDArray[np.float64]:
    first = np.full(len(j.users), np.inf)
    np.minimum.at(first, j.hit_user, j.hit_position)
    return 1.0 / first  # 1 / inf == 0 for users without a hit


def _map(j: _Judged) -> NDArray[np.float64]:
    index = np.arange(len(j.hit_user))
    first_of_user = np.searchsorted(j.hit_user, j.hit_user, side="left")
    hits_so_far = index - first_of_user + 1
    precision_at_hit = hits_so_far / j.hit_position
    total = np.bincount(j.hit_user, weights=precision_at_hit, minlength=len(j.users))
    return total / np.minimum(j.n_relevant, j.k)


def _ndcg(j: _Judged) -> NDArray[np.float64]:
    dcg = np.bincount(
        j.hit_user, weights=j.hit_gain / np.log2(j.hit_position + 1), minlength=len(j.users)
    )
    return dcg / j.ideal_dcg


_KERNELS: Final[Mapping[str, Callable[[_Judged], NDArray[np.float64]]]] = {
    PRECISION: _precision,
    RECALL: _recall,
    MAP: _map,
    NDCG: _ndcg,
    HIT_RATE: _hit_rate,
    MRR: _mrr,
}


def _check_metrics(metrics: Sequence[str]) -> None:
    unknown = [m for m in metrics if m not in _KERNELS]
    if unknown:
        raise EvaluationError(f"Unknown ranking metric(s) {unknown}; choose from {list(_KERNELS)}.")


def per_user_metrics(
    recommendations: pd.DataFrame,
    relevant: pd.DataFrame,
    k: int = DEFAULT_K,
    *,
    metrics: Sequence[str] = RANKING_METRICS,
    user_col: str = USER_ID,
    item_col: str = ITEM_ID,
    rank_col: str = RANK,
    relevance_col: str | None = None,
) -> pd.DataFrame:
    """Each metric for each judged user: the input to bootstrap intervals and slices.

    Returns:
        A frame indexed by ``user_col`` (every user of ``relevant`` with a relevant item,
        sorted), one float column per name in ``metrics`` (base names such as ``"ndcg"``).
        Its column means are exactly the scalar metrics.
    """
    _check_metrics(metrics)
    judged = _judge(
        recommendations,
        relevant,
        k,
        user_col=user_col,
        item_col=item_col,
        rank_col=rank_col,
        relevance_col=relevance_col,
    )
    return pd.DataFrame({m: _KERNELS[m](judged) for m in metrics}, index=judged.users)


def _mean_metric(
    name: str,
    recommendations: pd.DataFrame,
    relevant: pd.DataFrame,
    k: int,
    *,
    user_col: str,
    item_col: str,
    rank_col: str,
    relevance_col: str | None,
) -> float:
    judged = _judge(
        recommendations,
        relevant,
        k,
        user_col=user_col,
        item_col=item_col,
        rank_col=rank_col,
        relevance_col=relevance_col,
    )
    if len(judged.users) == 0:
        raise EvaluationError(
            f"Cannot compute {name}: `relevant` has no user with a relevant item. "
            "Check the test window and the positive threshold used to build it."
        )
    return float(_KERNELS[name](judged).mean())


def precision_at_k(
    recommendations: pd.DataFrame,
    relevant: pd.DataFrame,
    k: int = DEFAULT_K,
    *,
    user_col: str = USER_ID,
    item_col: str = ITEM_ID,
    rank_col: str = RANK,
    relevance_col: str | None = None,
) -> float:
    """Mean over judged users of hits in the top-k / k. Range [0, 1]."""
    return _mean_metric(
        PRECISION,
        recommendations,
        relevant,
        k,
        user_col=user_col,
        item_col=item_col,
        rank_col=rank_col,
        relevance_col=relevance_col,
    )


def recall_at_k(
    recommendations: pd.DataFrame,
    relevant: pd.DataFrame,
    k: int = DEFAULT_K,
    *,
    user_col: str = USER_ID,
    item_col: str = ITEM_ID,
    rank_col: str = RANK,
    relevance_col: str | None = None,
) -> float:
    """Mean over judged users of hits in the top-k / number of relevant items. Range [0, 1]."""
    return _mean_metric(
        RECALL,
        recommendations,
        relevant,
        k,
        user_col=user_col,
        item_col=item_col,
        rank_col=rank_col,
        relevance_col=relevance_col,
    )


def map_at_k(
    recommendations: pd.DataFrame,
    relevant: pd.DataFrame,
    k: int = DEFAULT_K,
    *,
    user_col: str = USER_ID,
    item_col: str = ITEM_ID,
    rank_col: str = RANK,
    relevance_col: str | None = None,
) -> float:
    """Mean average precision at k, normalised by min(|relevant|, k). Range [0, 1]."""
    return _mean_metric(
        MAP,
        recommendations,
        relevant,
        k,
        user_col=user_col,
        item_col=item_col,
        rank_col=rank_col,
        relevance_col=relevance_col,
    )


def ndcg_at_k(
    recommendations: pd.DataFrame,
    relevant: pd.DataFrame,
    k: int = DEFAULT_K,
    *,
    user_col: str = USER_ID,
    item_col: str = ITEM_ID,
    rank_col: str = RANK,
    relevance_col: str | None = None,
) -> float:
    """Normalised DCG at k; binary gains, or graded (linear) gains from ``relevance_col``.

    Agrees with ``sklearn.metrics.ndcg_score(y_true, y_score, k=k)`` when every user has a
    relevant item and scores have no ties. Range [0, 1].
    """
    return _mean_metric(
        NDCG,
        recommendations,
        relevant,
        k,
        user_col=user_col,
        item_col=item_col,
        rank_col=rank_col,
        relevance_col=relevance_col,
    )


def hit_rate_at_k(
    recommendations: pd.DataFrame,
    relevant: pd.DataFrame,
    k: int = DEFAULT_K,
    *,
    user_col: str = USER_ID,
    item_col: str = ITEM_ID,
    rank_col: str = RANK,
    relevance_col: str | None = None,
) -> float:
    """Share of judged users with at least one relevant item in their top-k. Range [0, 1]."""
    return _mean_metric(
        HIT_RATE,
        recommendations,
        relevant,
        k,
        user_col=user_col,
        item_col=item_col,
        rank_col=rank_col,
        relevance_col=relevance_col,
    )


def mrr(
    recommendations: pd.DataFrame,
    relevant: pd.DataFrame,
    k: int = DEFAULT_K,
    *,
    user_col: str = USER_ID,
    item_col: str = ITEM_ID,
    rank_col: str = RANK,
    relevance_col: str | None = None,
) -> float:
    """Mean reciprocal rank of the first hit within the top-k (0 without one). Range [0, 1]."""
    return _mean_metric(
        MRR,
        recommendations,
        relevant,
        k,
        user_col=user_col,
        item_col=item_col,
        rank_col=rank_col,
        relevance_col=relevance_col,
    )


# --------------------------------------------------------------------------- catalogue metrics


def catalogue_coverage(
    recommendations: pd.DataFrame,
    catalogue: int | Collection[int] | pd.Index | pd.Series,
    k: int = DEFAULT_K,
    *,
    user_col: str = USER_ID,
    item_col: str = ITEM_ID,
    rank_col: str = RANK,
) -> float:
    """Share of the catalogue that appears in at least one user's top-k. Range [0, 1].

    Args:
        catalogue: the catalogue size, or the catalogue's item ids (then recommended items
            outside it are not counted).
    """
    top = top_k_items(recommendations, k, user_col=user_col, item_col=item_col, rank_col=rank_col)
    recommended = pd.unique(top[item_col].to_numpy())
    if isinstance(catalogue, int | np.integer) and not isinstance(catalogue, bool):
        size = int(catalogue)
        covered = len(recommended)
    else:
        items = pd.unique(np.asarray(list(catalogue) if isinstance(catalogue, set) else catalogue))
        size = len(items)
        covered = int(np.isin(recommended, items).sum())
    if size <= 0:
        raise EvaluationError(
            f"catalogue must be a positive size or a non-empty set of items, got {catalogue!r}."
        )
    return min(covered / size, 1.0)


def item_popularity_probability(
    events: pd.DataFrame, *, user_col: str = USER_ID, item_col: str = ITEM_ID
) -> pd.Series:
    """p(i): the share of users who interacted with item i, in (0, 1], indexed by item.

    The input :func:`novelty` expects; compute it on the training events.
    """
    _require_columns(events, [user_col, item_col], "events")
    n_users = events[user_col].nunique()
    if n_users == 0:
        raise EvaluationError("events is empty; item popularity needs at least one interaction.")
    users_per_item = events.groupby(item_col)[user_col].nunique()
    return (users_per_item / n_users).rename("p")


def novelty(
    recommendations: pd.DataFrame,
    item_popularity: pd.Series,
    k: int = DEFAULT_K,
    *,
    user_col: str = USER_ID,
    item_col: str = ITEM_ID,
    rank_col: str = RANK,
) -> float:
    """Mean self-information -log2 p(i) of the recommended items (all top-k rows, all users).

    Args:
        item_popularity: p(i) in (0, 1] indexed by item id, e.g. from
            :func:`item_popularity_probability` on the training events. Items it lacks are
            treated as the rarest item it has.

    Returns:
        A value in [0, -log2 min p]; higher means less popular, more novel recommendations.
    """
    probabilities = item_popularity.to_numpy(dtype=float)
    if len(probabilities) == 0 or not np.all((probabilities > 0) & (probabilities <= 1)):
        raise EvaluationError(
            "item_popularity must be a non-empty Series of probabilities in (0, 1] indexed by "
            "item; build it with item_popularity_probability(train_events)."
        )
    top = top_k_items(recommendations, k, user_col=user_col, item_col=item_col, rank_col=rank_col)
    if top.empty:
        raise EvaluationError("Cannot compute novelty: recommendations is empty.")
    p = item_popularity.reindex(top[item_col]).to_numpy(dtype=float)
    p = np.where(np.isnan(p), probabilities.min(), p)
    return float(np.mean(-np.log2(p)))


# --------------------------------------------------------------------------- all at once


def evaluate_ranking(
    recommendations: pd.DataFrame,
    relevant: pd.DataFrame,
    k: int = DEFAULT_K,
    catalogue: int | Collection[int] | pd.Index | pd.Series | None = None,
    item_popularity: pd.Series | None = None,
    *,
    user_col: str = USER_ID,
    item_col: str = ITEM_ID,
    rank_col: str = RANK,
    relevance_col: str | None = None,
) -> dict[str, float]:
    """Every ranking metric (plus coverage / novelty when their inputs are given).

    Returns:
        ``{metric_key(name, k): value}``, e.g. ``{"ndcg_at_10": 0.41, ..., "coverage_at_10": ...}``.
    """
    per_user = per_user_metrics(
        recommendations,
        relevant,
        k,
        user_col=user_col,
        item_col=item_col,
        rank_col=rank_col,
        relevance_col=relevance_col,
    )
    if per_user.empty:
        raise EvaluationError(
            "Cannot evaluate: `relevant` has no user with a relevant item. "
            "Check the test window and the positive threshold used to build it."
        )
    result = {metric_key(str(name), k): float(per_user[name].mean()) for name in per_user.columns}
    columns = {"user_col": user_col, "item_col": item_col, "rank_col": rank_col}
    if catalogue is not None:
        result[metric_key(COVERAGE, k)] = catalogue_coverage(
            recommendations, catalogue, k, **columns
        )
    if item_popularity is not None:
        result[metric_key(NOVELTY, k)] = novelty(recommendations, item_popularity, k, **columns)
    return result


# --------------------------------------------------------------------------- classification view


def _binary_inputs(
    y_true: ArrayLike, y_score: ArrayLike
) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    truth = np.asarray(y_true)
    score = np.asarray(y_score, dtype=float)
    if truth.ndim != 1 or score.shape != truth.shape:
        raise EvaluationError(
            f"y_true and y_score must be 1-D and the same length, got shapes "
            f"{truth.shape} and {score.shape}."
        )
    if not np.isin(truth, (0, 1)).all():
        raise EvaluationError("y_true must hold binary labels (0/1 or bool).")
    if np.isnan(score).any():
        raise EvaluationError("y_score contains NaN; impute or drop those rows first.")
    return truth.astype(bool), score


def auc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Area under the ROC curve: P(score of a random positive > a random negative), ties 1/2.

    Equals ``sklearn.metrics.roc_auc_score``. Range [0, 1]; 0.5 is chance. Raises
    :class:`EvaluationError` unless both classes are present.
    """
    truth, score = _binary_inputs(y_true, y_score)
    n_pos = int(truth.sum())
    n_neg = truth.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise EvaluationError(
            f"AUC needs both classes; got {n_pos} positives and {n_neg} negatives."
        )
    ranks = rankdata(score)  # average ranks for ties
    return float((ranks[truth].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@dataclass(frozen=True)
class ConfusionMatrix:
    """Counts at one threshold (predicted positive iff score >= threshold) and their ratios.

    Ratios with an empty denominator are 0 (scikit-learn's ``zero_division=0``).
    """

    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int

    @staticmethod
    def _ratio(numerator: int, denominator: int) -> float:
        return numerator / denominator if denominator else 0.0

    @property
    def precision(self) -> float:
        return self._ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return self._ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        return self._ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def accuracy(self) -> float:
        return self._ratio(self.tp + self.tn, self.tp + self.fp + self.tn + self.fn)

    def as_dict(self) -> dict[str, float]:
        return {
            "threshold": self.threshold,
            "tp": self.tp,
            "fp": self.fp,
            "tn": self.tn,
            "fn": self.fn,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "accuracy": self.accuracy,
        }


def confusion_matrix_at(
    y_true: ArrayLike, y_score: ArrayLike, threshold: float = 0.5
) -> ConfusionMatrix:
    """The confusion matrix when scores >= ``threshold`` are predicted positive."""
    truth, score = _binary_inputs(y_true, y_score)
    predicted = score >= threshold
    return ConfusionMatrix(
        threshold=float(threshold),
        tp=int((predicted & truth).sum()),
        fp=int((predicted & ~truth).sum()),
        tn=int((~predicted & ~truth).sum()),
        fn=int((~predicted & truth).sum()),
    )


def intra_list_diversity(
    recommendations: pd.DataFrame,
    item_genres: pd.DataFrame,
    k: int = DEFAULT_K,
    *,
    user_col: str = USER_ID,
    item_col: str = ITEM_ID,
    rank_col: str = RANK,
) -> float:
    """Mean over users of the mean pairwise genre distance in their top-k (1 - Jaccard of
    the two items' genre sets). Range [0, 1]: 0 = every item of a row shares its genres.

    Args:
        item_genres: bool genre flags indexed by item id (one column per genre); items it
            lacks count as having no genre (distance 1 to everything, 0 to each other).
    """
    top = top_k_items(recommendations, k, user_col=user_col, item_col=item_col, rank_col=rank_col)
    if top.empty:
        return float("nan")
    flags = item_genres.reindex(top[item_col].to_numpy()).fillna(False).to_numpy(dtype=float)
    users = top[user_col].to_numpy()
    bounds = np.flatnonzero(np.r_[True, users[1:] != users[:-1], True])
    values = []
    for lo, hi in itertools.pairwise(bounds):
        block = flags[lo:hi]
        n = len(block)
        if n < 2:
            continue
        inter = block @ block.T
        sizes = block.sum(axis=1)
        union = sizes[:, None] + sizes[None, :] - inter
        with np.errstate(invalid="ignore", divide="ignore"):
            distance = np.where(union > 0, 1.0 - inter / union, 0.0)
        values.append(distance[np.triu_indices(n, 1)].mean())
    return float(np.mean(values)) if values else float("nan")


def grouped_ndcg(
    scores: np.ndarray, labels: np.ndarray, group_sizes: np.ndarray, k: int = DEFAULT_K
) -> float:
    """Mean nDCG@k over query groups of candidates: each group (consecutive rows) ranked by
    ``scores``, relevance ``labels > 0`` (binary gains); groups without a relevant row are
    skipped. The ranker's own view: how well it orders the candidate sets it is given."""
    scores = np.asarray(scores, dtype=np.float64)
    relevant = np.asarray(labels) > 0
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    values = []
    start = 0
    for size in np.asarray(group_sizes, dtype=np.int64):
        hits = relevant[start : start + size]
        if hits.any():
            order = np.argsort(-scores[start : start + size], kind="stable")[:k]
            dcg = float(discounts[: len(order)][hits[order]].sum())
            ideal = float(discounts[: min(int(hits.sum()), k)].sum())
            values.append(dcg / ideal)
        start += size
    return float(np.mean(values)) if values else float("nan")

"""Slices: where the model is weak or strong, not just how good it is on average.

* light users: few training events (<= ``light_max_events``; users absent from training,
  if the target includes them, count as 0 events);
* new users: no training event at all, their first event in the test window (cold start,
  judged on the ranking the service serves an unknown user; added by cross-validation,
  which asks the model for them separately: :data:`NEW_USERS`);
* heavy users: the most active ``heavy_fraction`` of training users (top decile by default);
* long-tail items: items outside the popularity head that makes up ``head_share`` of the
  training interactions (80 % by default), plus catalogue items never interacted with.

User slices average the per-user metrics of their users. The long-tail slice re-scores with
the relevant items restricted to tail items (recommendations unchanged): "of what users went
on to watch in the tail, how much did we find?".
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Final

import numpy as np
import pandas as pd

from reelrank.evaluation.errors import EvaluationError
from reelrank.evaluation.metrics import DEFAULT_K, RANKING_METRICS, per_user_metrics
from reelrank.schema import ITEM_ID, RANK, USER_ID

ALL_USERS: Final = "all"
LIGHT_USERS: Final = "light_users"
NEW_USERS: Final = "new_users"
HEAVY_USERS: Final = "heavy_users"
LONG_TAIL_ITEMS: Final = "long_tail_items"
N_USERS: Final = "n_users"

DEFAULT_LIGHT_MAX_EVENTS: Final = 10
DEFAULT_HEAVY_FRACTION: Final = 0.1
DEFAULT_HEAD_SHARE: Final = 0.8


def user_activity(
    train_events: pd.DataFrame, users: Collection[int] | None = None, *, user_col: str = USER_ID
) -> pd.Series:
    """Training events per user; ``users`` (if given) are added with 0 when absent."""
    if user_col not in train_events.columns:
        raise EvaluationError(f"train_events has no {user_col!r} column.")
    counts = train_events.groupby(user_col).size()
    if users is not None:
        counts = counts.reindex(counts.index.union(pd.Index(list(users))), fill_value=0)
    return counts.rename("n_events")


def light_users(
    train_events: pd.DataFrame,
    max_events: int = DEFAULT_LIGHT_MAX_EVENTS,
    users: Collection[int] | None = None,
    *,
    user_col: str = USER_ID,
) -> pd.Index:
    """Users with at most ``max_events`` training events (``users`` adds unseen ones at 0)."""
    if max_events < 0:
        raise EvaluationError(f"max_events must be >= 0, got {max_events}.")
    activity = user_activity(train_events, users, user_col=user_col)
    return activity.index[activity.to_numpy() <= max_events]


def heavy_users(
    train_events: pd.DataFrame,
    top_fraction: float = DEFAULT_HEAVY_FRACTION,
    *,
    user_col: str = USER_ID,
) -> pd.Index:
    """The ``ceil(top_fraction * n_users)`` most active training users (ties: smaller id first)."""
    if not 0 < top_fraction <= 1:
        raise EvaluationError(f"top_fraction must be in (0, 1], got {top_fraction}.")
    activity = user_activity(train_events, user_col=user_col)
    n_heavy = math.ceil(top_fraction * len(activity))
    order = np.lexsort((activity.index.to_numpy(), -activity.to_numpy()))
    return activity.index[np.sort(order[:n_heavy])]


def long_tail_items(
    train_events: pd.DataFrame,
    head_share: float = DEFAULT_HEAD_SHARE,
    catalogue: Collection[int] | None = None,
    *,
    item_col: str = ITEM_ID,
) -> pd.Index:
    """Items outside the head: the most popular items that together hold ``head_share`` of
    training interactions (the item crossing the share is in the head). Catalogue items with
    no training interaction are tail items."""
    if not 0 < head_share <= 1:
        raise EvaluationError(f"head_share must be in (0, 1], got {head_share}.")
    if item_col not in train_events.columns:
        raise EvaluationError(f"train_events has no {item_col!r} column.")
    counts = train_events.groupby(item_col).size()
    order = np.lexsort((counts.index.to_numpy(), -counts.to_numpy()))
    ranked = counts.iloc[order]
    share_before = (ranked.cumsum() - ranked).to_numpy() / max(int(ranked.sum()), 1)
    tail = ranked.index[share_before >= head_share]
    if catalogue is not None:
        tail = tail.union(pd.Index(list(catalogue)).difference(counts.index))
    return tail.sort_values()


def user_slice_metrics(
    per_user: pd.DataFrame, slices: Mapping[str, Collection[int]]
) -> pd.DataFrame:
    """Mean per-user metrics for all users and for each user slice.

    Returns:
        Indexed by slice name (``"all"`` first): ``n_users`` and the mean of each metric
        (NaN for an empty slice).
    """
    frames = {ALL_USERS: per_user}
    for name, users in slices.items():
        frames[name] = per_user[per_user.index.isin(list(users))]
    return _summarise(frames)


def _summarise(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    table = pd.DataFrame({name: frame.mean() for name, frame in frames.items()}).T
    table.insert(0, N_USERS, [len(frame) for frame in frames.values()])
    return table


def slice_per_user_metrics(
    recommendations: pd.DataFrame,
    relevant: pd.DataFrame,
    train_events: pd.DataFrame,
    k: int = DEFAULT_K,
    *,
    light_max_events: int = DEFAULT_LIGHT_MAX_EVENTS,
    heavy_fraction: float = DEFAULT_HEAVY_FRACTION,
    head_share: float = DEFAULT_HEAD_SHARE,
    catalogue: Collection[int] | None = None,
    metrics: Sequence[str] = RANKING_METRICS,
    user_col: str = USER_ID,
    item_col: str = ITEM_ID,
    rank_col: str = RANK,
    relevance_col: str | None = None,
) -> dict[str, pd.DataFrame]:
    """Per-user metrics for ``all`` and each slice (for bootstrap intervals per slice)."""

    def score(judged_relevant: pd.DataFrame) -> pd.DataFrame:
        return per_user_metrics(
            recommendations,
            judged_relevant,
            k,
            metrics=metrics,
            user_col=user_col,
            item_col=item_col,
            rank_col=rank_col,
            relevance_col=relevance_col,
        )

    per_user = score(relevant)
    light = light_users(train_events, light_max_events, per_user.index, user_col=user_col)
    heavy = heavy_users(train_events, heavy_fraction, user_col=user_col)
    tail = long_tail_items(train_events, head_share, catalogue, item_col=item_col)
    tail_relevant = relevant[relevant[item_col].isin(tail)]
    return {
        ALL_USERS: per_user,
        LIGHT_USERS: per_user[per_user.index.isin(light)],
        HEAVY_USERS: per_user[per_user.index.isin(heavy)],
        LONG_TAIL_ITEMS: score(tail_relevant),
    }


def evaluate_slices(
    recommendations: pd.DataFrame,
    relevant: pd.DataFrame,
    train_events: pd.DataFrame,
    k: int = DEFAULT_K,
    *,
    light_max_events: int = DEFAULT_LIGHT_MAX_EVENTS,
    heavy_fraction: float = DEFAULT_HEAVY_FRACTION,
    head_share: float = DEFAULT_HEAD_SHARE,
    catalogue: Collection[int] | None = None,
    metrics: Sequence[str] = RANKING_METRICS,
    user_col: str = USER_ID,
    item_col: str = ITEM_ID,
    rank_col: str = RANK,
    relevance_col: str | None = None,
) -> pd.DataFrame:
    """The slice table: rows ``all, light_users, heavy_users, long_tail_items``;
    columns ``n_users`` and the mean of each metric (NaN where a slice is empty)."""
    frames = slice_per_user_metrics(
        recommendations,
        relevant,
        train_events,
        k,
        light_max_events=light_max_events,
        heavy_fraction=heavy_fraction,
        head_share=head_share,
        catalogue=catalogue,
        metrics=metrics,
        user_col=user_col,
        item_col=item_col,
        rank_col=rank_col,
        relevance_col=relevance_col,
    )
    return _summarise(frames)

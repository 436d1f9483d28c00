"""How the ranker's training data is cut from the events without leakage.

Per label window (see :func:`label_windows`):

1. ``cutoff`` = the ``1 - label_fraction * w`` time quantile of the events, floored to a
   UTC midnight (features are daily snapshots), for windows ``w = 1..n_windows``;
2. the retrieval sources are fitted on events before ``cutoff`` only;
3. candidates are generated for the users active in the window (unseen items only);
4. labels are their interactions in the window (graded by rating, or binary);
5. user/item features are taken as of ``cutoff`` (point-in-time);
6. only users with at least one positive candidate form a query group.

``holdout="random"`` instead holds out a random ``label_fraction`` of all events per
window ("what else" rather than "what next", as random-split protocols ask), with features
as of the end of the data built from the events the window keeps (a point-in-time provider
over all events would know the held-out ones: a leak). ``holdout="mixed"``, the default,
stacks both kinds of window. Why both: trained on time windows alone, the ranker learns
that what a user watches next is what came out since they were last here, and ranks their
own taste below that; on a random split of MovieLens-100K, where most users are asked
about titles they rated months before the snapshot, it then falls below popularity.
The random windows teach it the user's taste as well, which costs part of
its lead on the time folds and keeps it ahead of every baseline there
(``design_docs/03-model.md``, ``design_docs/results/public_protocol.md``).

**Slate windows** (the service's own logs, when ``fit`` is given the served slates): the
slates shown in the last ``days`` before the end of the events are query groups of their
own, the candidates being the items the user was *shown*, labelled by what the user then
did (an event on the item after it was shown, graded like any label; none: an explicit
negative). The sources are fitted on the events before the first such slate's day and the
features are taken as of each slate's day, so a slate sees what the service knew when it
was served. What these groups teach is what time windows cannot: which of the items the
service showed users passed over, now (a title or a genre falling out of favour shows
there days before it shows in anyone's history). Newer slates count more: each group is
repeated ``round(weight * 0.5 ** (age_days / half_life_days))`` times (repetition rather
than sample weights, so every ranker learns from it), and older ones fall away.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

from reelrank.exceptions import ValidationError
from reelrank.models.ranking import group_sizes, relevance_labels
from reelrank.schema import ITEM_ID, LABEL, RATING, TIMESTAMP, USER_ID

DAY: Final = pd.Timedelta(days=1)
CUTOFF: Final = "cutoff"
GROUP: Final = "group"
"""Pairs column of a query group's id, when groups are not one per user (slate windows)."""
SLATE_ID: Final = "request_id"
SLATE_COLUMNS: Final = (SLATE_ID, USER_ID, ITEM_ID, TIMESTAMP)
"""What ``fit(slates=...)`` reads: one row per shown item (``timestamp``: when shown)."""
TIME_HOLDOUT: Final = "time"
RANDOM_HOLDOUT: Final = "random"
MIXED_HOLDOUT: Final = "mixed"
HOLDOUTS: Final = (TIME_HOLDOUT, RANDOM_HOLDOUT, MIXED_HOLDOUT)


def feature_snapshot_end(events: pd.DataFrame) -> pd.Timestamp:
    """The first snapshot day that knows every event: the midnight after the last one."""
    return pd.Timestamp(events[TIMESTAMP].max()).floor("D") + DAY


@dataclass(frozen=True)
class LabelWindow:
    """One label window: the feature time, what the sources may see, the label events, and
    whether the labels were held out at random (then features must be built from
    ``history`` alone)."""

    cutoff: pd.Timestamp
    history: pd.DataFrame
    labels: pd.DataFrame
    held_out: bool = False


def window_cutoffs(
    events: pd.DataFrame, label_fraction: float, n_windows: int
) -> list[pd.Timestamp]:
    """Label-window starts, newest first, floored to midnight; empty if data is too short."""
    timestamps = events[TIMESTAMP]
    first = timestamps.min()
    cutoffs: list[pd.Timestamp] = []
    for window in range(1, n_windows + 1):
        quantile = 1.0 - label_fraction * window
        cutoff: pd.Timestamp = pd.Timestamp(timestamps.quantile(quantile)).floor("D")  # type: ignore[arg-type]
        if cutoff <= first or (cutoffs and cutoff >= cutoffs[-1]):
            break
        cutoffs.append(cutoff)
    return cutoffs


def label_windows(
    events: pd.DataFrame,
    holdout: str,
    label_fraction: float,
    n_windows: int,
    rng: np.random.Generator,
    random_windows: int = 2,
    random_fraction: float = 0.1,
) -> Iterator[LabelWindow]:
    """The windows of the module docstring (``events`` sorted by time): ``n_windows`` time
    windows, newest first; for ``random``, ``n_windows`` random ones of ``label_fraction``;
    for ``mixed``, the time windows then ``random_windows`` random ones of
    ``random_fraction``, drawn from ``rng``."""
    if holdout not in HOLDOUTS:
        raise ValidationError(f"unknown ranker_holdout {holdout!r}; use one of {HOLDOUTS}.")
    if holdout in (TIME_HOLDOUT, MIXED_HOLDOUT):
        cutoffs = window_cutoffs(events, label_fraction, n_windows)
        for window, cutoff in enumerate(cutoffs):
            after = events[events[TIMESTAMP] >= cutoff]
            if window > 0:
                after = after[after[TIMESTAMP] < cutoffs[window - 1]]
            yield LabelWindow(cutoff, events[events[TIMESTAMP] < cutoff], after)
    if holdout in (RANDOM_HOLDOUT, MIXED_HOLDOUT):
        end = feature_snapshot_end(events)
        only_random = holdout == RANDOM_HOLDOUT
        count = n_windows if only_random else random_windows
        fraction = label_fraction if only_random else random_fraction
        for _ in range(count):
            held = rng.random(len(events)) < fraction
            yield LabelWindow(end, events[~held], events[held], held_out=True)


def sample_users(events: pd.DataFrame, max_users: int | None, seed: int | None) -> pd.DataFrame:
    """The events of at most ``max_users`` users drawn at random with ``seed`` (whole
    histories, in their order); all events when there are not more users than that."""
    if max_users is None:
        return events
    users = np.unique(events[USER_ID].to_numpy(dtype=np.int64))
    if len(users) <= max_users:
        return events
    chosen = np.random.default_rng(seed).choice(users, max_users, replace=False)
    return events[events[USER_ID].isin(chosen)]


def sample_label_users(
    labels: pd.DataFrame, max_users: int | None, rng: np.random.Generator
) -> np.ndarray:
    """The window's label users, at most ``max_users`` of them drawn at random (sorted)."""
    users = np.unique(labels[USER_ID].to_numpy(dtype=np.int64))
    if max_users is not None and len(users) > max_users:
        users = np.sort(rng.choice(users, max_users, replace=False))
    return users


def pair_labels(
    pairs: pd.DataFrame, ratings: pd.Series, scheme: str, threshold: float
) -> np.ndarray:
    """The label of each (user, candidate) pair: 0 without a later interaction, else graded.

    Args:
        pairs: ``user_id, item_id`` of the candidates.
        ratings: the window's best rating per ``(user_id, item_id)``.
    """
    rating = ratings.reindex(pd.MultiIndex.from_frame(pairs[[USER_ID, ITEM_ID]]))
    y = np.zeros(len(pairs), dtype=np.int32)
    hit = rating.notna().to_numpy()
    y[hit] = relevance_labels(rating[hit], scheme, threshold)
    return y


@dataclass(frozen=True)
class RankerTrainingSet:
    """The ranker's training data: one row per (window, user, candidate item).

    Attributes:
        pairs: ``user_id, item_id, label, cutoff`` of every row.
        X: the feature matrix (the fitted layout's columns).
        y: the labels.
        group_sizes: rows per query group (one group per window and user), in order.
        feature_names: the columns of ``X``.
        cutoffs: the feature time of every window used.
    """

    pairs: pd.DataFrame
    X: np.ndarray
    y: np.ndarray
    group_sizes: np.ndarray
    feature_names: list[str]
    cutoffs: list[pd.Timestamp]

    @property
    def n_groups(self) -> int:
        return len(self.group_sizes)

    @classmethod
    def empty(cls, feature_names: list[str], cutoffs: list[pd.Timestamp]) -> RankerTrainingSet:
        return cls(
            pairs=pd.DataFrame(columns=[USER_ID, ITEM_ID, LABEL]),
            X=np.empty((0, len(feature_names)), dtype=np.float32),
            y=np.empty(0, dtype=np.int32),
            group_sizes=np.empty(0, dtype=np.int64),
            feature_names=feature_names,
            cutoffs=cutoffs,
        )

    @classmethod
    def concat(
        cls,
        parts: list[tuple[pd.DataFrame, np.ndarray]],
        names: list[str],
        cutoffs: list[pd.Timestamp],
    ) -> RankerTrainingSet:
        """Stack ``(pairs with labels, X)`` chunks; empty when no chunk has a row."""
        parts = [(pairs, X) for pairs, X in parts if len(pairs)]
        if not parts:
            return cls.empty(names, cutoffs)
        pairs = pd.concat([p for p, _ in parts], ignore_index=True)
        return cls(
            pairs=pairs,
            X=np.vstack([X for _, X in parts]),
            y=pairs[LABEL].to_numpy(dtype=np.int32),
            group_sizes=np.concatenate([_group_sizes(p) for p, _ in parts]),
            feature_names=names,
            cutoffs=cutoffs,
        )

    def sample_groups(self, max_groups: int, seed: int) -> RankerTrainingSet:
        """At most ``max_groups`` whole query groups, chosen at random (order kept)."""
        if self.n_groups <= max_groups:
            return self
        chosen = np.sort(
            np.random.default_rng(seed).choice(self.n_groups, max_groups, replace=False)
        )
        starts = np.concatenate([[0], np.cumsum(self.group_sizes)[:-1]])
        rows = np.concatenate(
            [np.arange(starts[g], starts[g] + self.group_sizes[g]) for g in chosen]
        )
        return RankerTrainingSet(
            pairs=self.pairs.iloc[rows].reset_index(drop=True),
            X=self.X[rows],
            y=self.y[rows],
            group_sizes=self.group_sizes[chosen],
            feature_names=self.feature_names,
            cutoffs=self.cutoffs,
        )


def keep_groups_with_positives(
    pairs: pd.DataFrame, y: np.ndarray, X: np.ndarray, cutoff: pd.Timestamp
) -> tuple[pd.DataFrame, np.ndarray]:
    """Drop the candidates of users with no positive (a group without one teaches nothing)."""
    has_positive = pd.Series(y > 0).groupby(pairs[USER_ID].to_numpy()).transform("any")
    keep = has_positive.to_numpy()
    kept = pairs[keep].assign(**{LABEL: y[keep], CUTOFF: cutoff})
    return kept, X[keep]


def best_ratings(labels: pd.DataFrame) -> pd.Series:
    """The best rating of every (user, item) pair of a window's label events."""
    return labels.groupby([USER_ID, ITEM_ID], sort=False)[RATING].max()


def _group_sizes(pairs: pd.DataFrame) -> np.ndarray:
    """Rows per query group: runs of ``group`` when the chunk has one, else of users."""
    key = pairs[GROUP] if GROUP in pairs.columns else pairs[USER_ID]
    return group_sizes(key.to_numpy())


@dataclass(frozen=True)
class SlateWindow:
    """The served slates of the last days as query groups (see the module docstring).

    Attributes:
        cutoff: midnight of the first slate's day; the sources see the events before it.
        history: those events.
        slots: one row per shown item that counts: ``request_id, user_id, item_id,
            timestamp`` (when shown), ``day`` (its midnight: the features' time),
            ``label`` and ``repeats`` (of its slate's group), grouped by slate in time order.
    """

    cutoff: pd.Timestamp
    history: pd.DataFrame
    slots: pd.DataFrame


def slate_window(
    slates: pd.DataFrame,
    events: pd.DataFrame,
    days: float,
    half_life_days: float,
    weight: float,
    scheme: str,
    threshold: float,
) -> SlateWindow | None:
    """The slate window of ``events`` (sorted by time), or ``None`` when no slate counts.

    Only slates shown in the ``days`` before the events' last timestamp are read, and a
    label is an event *in* ``events`` after the item was shown: a model fitted on the
    events up to some time (a fold's training part) learns nothing from later slates or
    later actions. Dropped: items the user already had before the cutoff (the service
    would not show them again after a retrain), groups whose repeats round to zero, and
    groups without a positive (they teach a ranking nothing).
    """
    missing = [c for c in SLATE_COLUMNS if c not in slates.columns]
    if missing:
        raise ValidationError(
            f"slates lack columns {missing}; expected one row per shown item with "
            f"{', '.join(SLATE_COLUMNS)} (reelrank.loop.feedback.read_slates)."
        )
    if slates.empty or events.empty:
        return None
    end = pd.Timestamp(events[TIMESTAMP].max())
    shown = pd.to_datetime(slates[TIMESTAMP], utc=True)
    kept = (shown <= end) & (shown > end - pd.Timedelta(days=days))
    recent = slates.loc[kept, list(SLATE_COLUMNS)].assign(**{TIMESTAMP: shown[kept]})
    if recent.empty:
        return None
    cutoff = pd.Timestamp(recent[TIMESTAMP].min()).floor("D")
    history = events[events[TIMESTAMP] < cutoff]
    had = history[[USER_ID, ITEM_ID]].drop_duplicates().assign(_had=True)
    recent = recent.merge(had, on=[USER_ID, ITEM_ID], how="left")
    recent = recent[recent["_had"].isna()].drop(columns="_had").reset_index(drop=True)
    later = events.loc[events[TIMESTAMP] >= cutoff, [USER_ID, ITEM_ID, RATING, TIMESTAMP]]
    acted = recent.reset_index(names="_slot").merge(
        later, on=[USER_ID, ITEM_ID], suffixes=("", "_event")
    )
    acted = acted[acted[f"{TIMESTAMP}_event"] >= acted[TIMESTAMP]]
    best = acted.groupby("_slot")[RATING].max()
    label = np.zeros(len(recent), dtype=np.int32)
    if len(best):
        label[best.index.to_numpy()] = relevance_labels(best, scheme, threshold)
    age_days = (end - recent[TIMESTAMP]).dt.total_seconds().to_numpy() / 86_400.0
    repeats = np.rint(weight * 0.5 ** (age_days / half_life_days)).astype(np.int64)
    slots = recent.assign(day=recent[TIMESTAMP].dt.floor("D"), **{LABEL: label}, repeats=repeats)
    useful = slots.groupby(SLATE_ID)[LABEL].transform("max").gt(0) & slots["repeats"].gt(0)
    slots = slots[useful.to_numpy()]
    if slots.empty:
        return None
    order = slots.groupby(SLATE_ID)[TIMESTAMP].transform("min")
    slots = slots.assign(_first=order).sort_values(
        ["_first", SLATE_ID], kind="stable", ignore_index=True
    )
    return SlateWindow(cutoff, history, slots.drop(columns="_first"))

"""Time-aware splits: rolling-origin folds, a temporal hold-out, and the test target.

Every split is by time and half-open: a fold's training events are those strictly before its
``cutoff``; its test events are those in ``[cutoff, test_end)``. Features for a fold must be
computed as of ``cutoff`` (from training events only). The folds depend on the events alone,
never on a model or a seed, so every model is scored on identical folds.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from reelrank.evaluation.errors import EvaluationError
from reelrank.schema import ITEM_ID, RATING, TIMESTAMP, USER_ID

logger = logging.getLogger(__name__)

FOLD: Final = "fold"
DEFAULT_N_FOLDS: Final = 3
DEFAULT_MIN_TRAIN_FRACTION: Final = 0.5
DEFAULT_TEST_FRACTION: Final = 0.2
# Relevant = every test interaction (no rating threshold): "Top picks" predicts what a user
# watches next, and this is the protocol of the public ML-100K benchmarks we compare against.
DEFAULT_POSITIVE_THRESHOLD: Final[float | None] = None


@dataclass(frozen=True, eq=False)
class TimeFold:
    """One time split. ``train`` = events before ``cutoff``; ``test`` = ``[cutoff, test_end)``.

    Attributes:
        fold: 0-based fold number, in time order.
        cutoff: the origin: first instant of the test window, end (exclusive) of training.
        test_end: end (exclusive) of the test window.
        train_index: positions (``iloc``) of the training events in the frame that was split.
        test_index: positions of the test events.
        train: the training events (rows of the input, original index kept).
        test: the test events.
    """

    fold: int
    cutoff: pd.Timestamp
    test_end: pd.Timestamp
    train_index: NDArray[np.intp]
    test_index: NDArray[np.intp]
    train: pd.DataFrame
    test: pd.DataFrame

    @property
    def train_end(self) -> pd.Timestamp:
        """Alias of :attr:`cutoff` (exclusive end of training)."""
        return self.cutoff

    def describe(self, *, user_col: str = USER_ID) -> dict[str, Any]:
        """Sizes and bounds, for logs and reports."""
        return {
            FOLD: self.fold,
            "cutoff": self.cutoff,
            "test_end": self.test_end,
            "n_train": len(self.train_index),
            "n_test": len(self.test_index),
            "n_train_users": int(self.train[user_col].nunique()),
            "n_test_users": int(self.test[user_col].nunique()),
        }


def _timestamps(events: pd.DataFrame, timestamp_col: str) -> pd.DatetimeIndex:
    if timestamp_col not in events.columns:
        raise EvaluationError(
            f"events has no {timestamp_col!r} column (it has {list(events.columns)}); "
            "pass timestamp_col."
        )
    if events.empty:
        raise EvaluationError("events is empty; nothing to split.")
    column = events[timestamp_col]
    if not pd.api.types.is_datetime64_any_dtype(column):
        raise EvaluationError(
            f"{timestamp_col!r} must be a datetime column, got {column.dtype}; "
            "convert it with pd.to_datetime(..., utc=True)."
        )
    if column.isna().any():
        raise EvaluationError(f"{timestamp_col!r} has missing values; drop or fix those events.")
    return pd.DatetimeIndex(column)


def _make_fold(
    events: pd.DataFrame,
    times: pd.DatetimeIndex,
    fold: int,
    cutoff: pd.Timestamp,
    test_end: pd.Timestamp,
) -> TimeFold:
    train_index = np.flatnonzero(times < cutoff)
    test_index = np.flatnonzero((times >= cutoff) & (times < test_end))
    return TimeFold(
        fold=fold,
        cutoff=cutoff,
        test_end=test_end,
        train_index=train_index,
        test_index=test_index,
        train=events.iloc[train_index],
        test=events.iloc[test_index],
    )


def _quantile_time(sorted_ns: NDArray[np.int64], fraction: float) -> int:
    position = min(math.ceil(fraction * len(sorted_ns)), len(sorted_ns) - 1)
    return int(sorted_ns[position])


def rolling_origin_folds(
    events: pd.DataFrame,
    n_folds: int = DEFAULT_N_FOLDS,
    test_days: float | None = None,
    min_train_fraction: float = DEFAULT_MIN_TRAIN_FRACTION,
    timestamp_col: str = TIMESTAMP,
) -> list[TimeFold]:
    """Rolling-origin (expanding-window) folds, oldest first, with adjacent test windows.

    Fold i trains on everything before ``cutoff_i`` and tests on ``[cutoff_i, cutoff_{i+1})``;
    the last window ends just after the newest event. Test windows do not overlap and together
    cover the events after the first cutoff.

    Args:
        events: frame with a datetime ``timestamp_col`` (any other columns are carried along).
        n_folds: number of folds (>= 1).
        test_days: length of each test window in days. ``None`` (default) splits the events
            after the ``min_train_fraction`` quantile of time into ``n_folds`` windows holding
            equal numbers of events, which suits bursty logs such as MovieLens.
        min_train_fraction: share of events the first fold must train on (in (0, 1)). With
            ``None`` test_days it places the first cutoff; with ``test_days`` it is a check.
        timestamp_col: the time column.

    Raises:
        EvaluationError: bad arguments, too few distinct timestamps for the folds, an empty
            test window, or (with ``test_days``) a first fold with too little training data.
    """
    if isinstance(n_folds, bool) or not isinstance(n_folds, int) or n_folds < 1:
        raise EvaluationError(f"n_folds must be a positive integer, got {n_folds!r}.")
    if not 0 < min_train_fraction < 1:
        raise EvaluationError(f"min_train_fraction must be in (0, 1), got {min_train_fraction!r}.")
    if test_days is not None and not test_days > 0:
        raise EvaluationError(f"test_days must be positive or None, got {test_days!r}.")
    times = _timestamps(events, timestamp_col)
    sorted_ns = np.sort(times.asi8)
    end_ns = int(sorted_ns[-1]) + 1

    if test_days is None:
        step = (1 - min_train_fraction) / n_folds
        cutoffs_ns = [
            _quantile_time(sorted_ns, min_train_fraction + i * step) for i in range(n_folds)
        ]
    else:
        window_ns = pd.Timedelta(days=test_days).value
        cutoffs_ns = [end_ns - (n_folds - i) * window_ns for i in range(n_folds)]
    bounds = [*cutoffs_ns, end_ns]

    if any(a >= b for a, b in itertools.pairwise(bounds)):
        raise EvaluationError(
            f"Cannot cut {n_folds} non-empty test windows: the events have too few distinct "
            "timestamps after the first cutoff. Use fewer folds or a smaller min_train_fraction."
        )
    first_train_share = float(np.searchsorted(sorted_ns, cutoffs_ns[0], side="left")) / len(
        sorted_ns
    )
    if first_train_share < min_train_fraction - 1e-12 and test_days is not None:
        raise EvaluationError(
            f"The first fold trains on {first_train_share:.1%} of events, below "
            f"min_train_fraction={min_train_fraction}. Use fewer folds or shorter test_days."
        )

    tz = times.tz
    folds = [
        _make_fold(
            events,
            times,
            fold=i,
            cutoff=pd.Timestamp(bounds[i], tz=tz),
            test_end=pd.Timestamp(bounds[i + 1], tz=tz),
        )
        for i in range(n_folds)
    ]
    for fold in folds:
        if len(fold.test_index) == 0:
            raise EvaluationError(
                f"Fold {fold.fold} has no test events in [{fold.cutoff}, {fold.test_end}); "
                "use longer test_days or fewer folds."
            )
        logger.debug(
            "fold %d: cutoff %s, test_end %s, %d train / %d test events",
            fold.fold,
            fold.cutoff,
            fold.test_end,
            len(fold.train_index),
            len(fold.test_index),
        )
    return folds


def temporal_holdout(
    events: pd.DataFrame,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    timestamp_col: str = TIMESTAMP,
) -> TimeFold:
    """One split: the newest ``test_fraction`` of events (by time) are the test set.

    Events sharing the cutoff instant all go to test, so the test share can be slightly larger.
    """
    if not 0 < test_fraction < 1:
        raise EvaluationError(f"test_fraction must be in (0, 1), got {test_fraction!r}.")
    times = _timestamps(events, timestamp_col)
    sorted_ns = np.sort(times.asi8)
    cutoff_ns = _quantile_time(sorted_ns, 1 - test_fraction)
    if cutoff_ns <= sorted_ns[0]:
        raise EvaluationError(
            "Cannot hold out by time: every event would be in the test set (too few distinct "
            "timestamps). Use a smaller test_fraction."
        )
    tz = times.tz
    return _make_fold(
        events,
        times,
        fold=0,
        cutoff=pd.Timestamp(cutoff_ns, tz=tz),
        test_end=pd.Timestamp(int(sorted_ns[-1]) + 1, tz=tz),
    )


def build_relevant(
    train: pd.DataFrame,
    test: pd.DataFrame,
    *,
    positive_threshold: float | None = DEFAULT_POSITIVE_THRESHOLD,
    include_cold_users: bool = False,
    include_cold_items: bool = True,
    user_col: str = USER_ID,
    item_col: str = ITEM_ID,
    rating_col: str = RATING,
) -> pd.DataFrame:
    """The evaluation target of a test window: what each user went on to interact with.

    Relevant items of user u = items u interacted with in ``test`` (with rating >=
    ``positive_threshold`` when one is given) that u had not interacted with in ``train``
    (the model is asked for new items: ``recommend(..., exclude_seen=True)``).

    Args:
        train: the fold's training events.
        test: the fold's test events.
        positive_threshold: ``None`` (default) counts every test interaction as relevant;
            e.g. ``4.0`` keeps ratings >= 4 only.
        include_cold_users: keep users with no training events (default: warm users only,
            the users a personalised model can be judged on).
        include_cold_items: keep items with no training events (default True: the honest
            target; a model cannot recommend them, so they lower recall).

    Returns:
        ``[user_col, item_col, rating_col]`` (rating = the highest test rating of the pair,
        usable as ``relevance_col`` for graded nDCG), one row per pair, sorted.
        ``rating_col`` is omitted when ``test`` has none and no threshold is set.
    """
    for name, frame in (("train", train), ("test", test)):
        missing = [c for c in (user_col, item_col) if c not in frame.columns]
        if missing:
            raise EvaluationError(f"{name} is missing column(s) {missing}.")
    has_rating = rating_col in test.columns
    if positive_threshold is not None and not has_rating:
        raise EvaluationError(
            f"positive_threshold={positive_threshold} needs a {rating_col!r} column in test; "
            "pass rating_col or positive_threshold=None."
        )
    columns = [user_col, item_col] + ([rating_col] if has_rating else [])
    target = test[columns]
    if positive_threshold is not None:
        target = target[target[rating_col] >= positive_threshold]
    if has_rating:
        target = target.groupby([user_col, item_col], as_index=False, sort=True).agg(
            {rating_col: "max"}
        )
    else:
        target = target.drop_duplicates().sort_values([user_col, item_col])

    seen = pd.MultiIndex.from_frame(train[[user_col, item_col]].drop_duplicates())
    pairs = pd.MultiIndex.from_frame(target[[user_col, item_col]])
    target = target[~pairs.isin(seen)]
    if not include_cold_users:
        target = target[target[user_col].isin(train[user_col].unique())]
    if not include_cold_items:
        target = target[target[item_col].isin(train[item_col].unique())]
    return target.reset_index(drop=True)

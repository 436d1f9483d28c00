"""Uncertainty: bootstrap intervals for a mean and for a paired difference; fold summaries.

Intervals are percentile bootstraps over users (the unit the metrics are averaged over).
Everything is deterministic given ``seed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from reelrank.evaluation.errors import EvaluationError
from reelrank.evaluation.splits import FOLD

MODEL: Final = "model"
METRIC: Final = "metric"
DEFAULT_RESAMPLES: Final = 1000
DEFAULT_CONFIDENCE: Final = 0.95
SUMMARY_COLUMNS: Final[tuple[str, ...]] = ("mean", "std", "min", "max", "n_folds")

_MAX_BLOCK: Final = 4_000_000  # resampled values held in memory at once


@dataclass(frozen=True)
class ConfidenceInterval:
    """A mean and its bootstrap interval ``[low, high]`` at ``confidence``, over ``n`` values."""

    mean: float
    low: float
    high: float
    confidence: float
    n: int


@dataclass(frozen=True)
class DiffResult:
    """Mean of the paired differences a - b, its bootstrap interval and a bootstrap p-value.

    ``p_value`` is two-sided: twice the share of bootstrap means on the far side of zero
    (capped at 1). It is approximate; prefer the interval for decisions.
    """

    mean_diff: float
    low: float
    high: float
    p_value: float
    confidence: float
    n: int

    @property
    def a_better(self) -> bool:
        """True when the whole interval is above zero (a beats b)."""
        return self.low > 0

    @property
    def significant(self) -> bool:
        """True when the interval excludes zero, in either direction."""
        return self.low > 0 or self.high < 0


def _as_values(values: ArrayLike | pd.Series, name: str) -> NDArray[np.float64]:
    array = np.asarray(values, dtype=float).ravel()
    if array.size == 0:
        raise EvaluationError(f"{name} is empty; a bootstrap needs at least one value.")
    if np.isnan(array).any():
        raise EvaluationError(f"{name} contains NaN; drop or fill those entries first.")
    return array


def _check_settings(n_resamples: int, confidence: float) -> None:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise EvaluationError(f"n_resamples must be a positive integer, got {n_resamples!r}.")
    if not 0 < confidence < 1:
        raise EvaluationError(f"confidence must be in (0, 1), got {confidence!r}.")


def bootstrap_means(
    values: ArrayLike | pd.Series, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> NDArray[np.float64]:
    """Means of ``n_resamples`` resamples (with replacement, same size) of ``values``."""
    array = _as_values(values, "values")
    _check_settings(n_resamples, DEFAULT_CONFIDENCE)
    rng = np.random.default_rng(seed)
    n = array.size
    block = max(1, _MAX_BLOCK // n)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, block):
        stop = min(start + block, n_resamples)
        draws = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = array[draws].mean(axis=1)
    return means


def _interval(means: NDArray[np.float64], confidence: float) -> tuple[float, float]:
    alpha = 1 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def bootstrap_ci(
    values: ArrayLike | pd.Series,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> ConfidenceInterval:
    """Percentile bootstrap interval for the mean of ``values`` (e.g. per-user nDCG)."""
    _check_settings(n_resamples, confidence)
    array = _as_values(values, "values")
    low, high = _interval(bootstrap_means(array, n_resamples, seed), confidence)
    return ConfidenceInterval(
        mean=float(array.mean()), low=low, high=high, confidence=confidence, n=array.size
    )


def _paired(
    a: ArrayLike | pd.Series, b: ArrayLike | pd.Series
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    if isinstance(a, pd.Series) and isinstance(b, pd.Series):
        if not a.index.is_unique or not b.index.is_unique:
            raise EvaluationError("Per-user series must have a unique index (user, or fold+user).")
        if len(a) != len(b) or not a.index.isin(b.index).all():
            raise EvaluationError(
                f"A paired comparison needs the same users on both sides; got {len(a)} and "
                f"{len(b)} entries with {len(a.index.difference(b.index))} + "
                f"{len(b.index.difference(a.index))} unmatched. Score both models against the "
                "same `relevant` frame."
            )
        b = b.reindex(a.index)
    a_values, b_values = _as_values(a, "a_per_user"), _as_values(b, "b_per_user")
    if a_values.shape != b_values.shape:
        raise EvaluationError(
            f"a_per_user and b_per_user differ in length ({a_values.size} vs {b_values.size})."
        )
    return a_values, b_values


def paired_bootstrap_diff(
    a_per_user: ArrayLike | pd.Series,
    b_per_user: ArrayLike | pd.Series,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> DiffResult:
    """Bootstrap the mean per-user difference a - b of two models scored on the same users.

    Users are resampled as pairs, so the interval reflects the spread of the difference, not
    of each model. Two Series are aligned on their index (which may be ``(fold, user)`` to pool
    folds); arrays must already be aligned.
    """
    _check_settings(n_resamples, confidence)
    a_values, b_values = _paired(a_per_user, b_per_user)
    diffs = a_values - b_values
    means = bootstrap_means(diffs, n_resamples, seed)
    low, high = _interval(means, confidence)
    p_value = min(1.0, 2 * min(float(np.mean(means <= 0)), float(np.mean(means >= 0))))
    return DiffResult(
        mean_diff=float(diffs.mean()),
        low=low,
        high=high,
        p_value=p_value,
        confidence=confidence,
        n=diffs.size,
    )


def summarise_folds(
    per_fold_metrics: pd.DataFrame,
    *,
    fold_col: str = FOLD,
    group_cols: Sequence[str] = (MODEL,),
) -> pd.DataFrame:
    """Mean, sample std (ddof=1; NaN with one fold), min, max and fold count of each metric.

    Args:
        per_fold_metrics: one row per fold (per model when a ``model`` column is present);
            every numeric column other than ``fold_col`` and ``group_cols`` is a metric.
        fold_col: the fold column (ignored as a metric if present).
        group_cols: columns to summarise separately (those present are used).

    Returns:
        A frame indexed by ``(*group_cols present, "metric")`` with columns
        ``mean, std, min, max, n_folds``.
    """
    groups = [c for c in group_cols if c in per_fold_metrics.columns]
    metric_cols = [
        c
        for c in per_fold_metrics.columns
        if c != fold_col
        and c not in groups
        and pd.api.types.is_numeric_dtype(per_fold_metrics[c])
        and not pd.api.types.is_bool_dtype(per_fold_metrics[c])
    ]
    if not metric_cols:
        raise EvaluationError(
            f"per_fold_metrics has no numeric metric column (columns: "
            f"{list(per_fold_metrics.columns)})."
        )
    long = per_fold_metrics.melt(id_vars=groups, value_vars=metric_cols, var_name=METRIC)
    summary = long.groupby([*groups, METRIC], sort=False)["value"].agg(
        ["mean", "std", "min", "max", "count"]
    )
    return summary.rename(columns={"count": "n_folds"})[list(SUMMARY_COLUMNS)]

"""Stage 2 machinery: what a ranker is, how one is chosen by name, and its labels.

A ranker is anything with ``fit(X, y, group_sizes, feature_names, categorical)`` and
``predict(X) -> scores`` (:class:`Ranker`). :data:`RANKERS` maps a name to a factory, so
``reelrank train --ranker NAME`` (and ``Recommender(ranker=NAME)``) picks one; the
implementations live in :mod:`reelrank.models.rankers`. A new ranker is one class plus
:func:`register_ranker`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd

from reelrank.exceptions import ValidationError
from reelrank.models.registry import Registry

logger = logging.getLogger(__name__)


class Ranker(Protocol):
    """What the recommender needs from a stage-2 model."""

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        group_sizes: np.ndarray,
        feature_names: Sequence[str],
        categorical: Sequence[str] = (),
    ) -> Any: ...

    def predict(self, X: np.ndarray) -> np.ndarray: ...


RankerFactory = Callable[..., Ranker]
RANKERS: Registry[RankerFactory] = Registry("ranker", builtins="reelrank.models.rankers")
"""Ranker factories by name (the built-in rankers register themselves on first use)."""


def register_ranker(name: str, factory: RankerFactory) -> None:
    """Make ``Recommender(ranker=name)`` and ``reelrank train --ranker name`` build
    rankers with ``factory(**params)``."""
    RANKERS.register(name, factory)


def make_ranker(name: str, **params: Any) -> Ranker:
    """Build the ranker registered as ``name`` with ``params``."""
    ranker: Ranker = RANKERS.make(name, **params)
    return ranker


def uses_features(ranker: object) -> bool:
    """Whether ``ranker`` reads the feature store's columns (rank fusion does not)."""
    return bool(getattr(ranker, "uses_features", True))


def relevance_labels(ratings: pd.Series, scheme: str, threshold: float) -> np.ndarray:
    """Labels from post-cutoff ratings: ``binary`` (1 for any interaction) or ``graded``
    (1 for an interaction, 2 when the rating is at least ``threshold``)."""
    values = ratings.to_numpy(dtype=np.float64)
    if scheme == "binary":
        return np.ones(len(values), dtype=np.int32)
    if scheme == "graded":
        return (1 + (values >= threshold)).astype(np.int32)
    raise ValidationError(f"unknown label scheme {scheme!r}; use 'graded' or 'binary'.")


def group_sizes(user_ids: np.ndarray) -> np.ndarray:
    """Sizes of consecutive runs of equal ``user_ids`` (rows must be grouped by user)."""
    if len(user_ids) == 0:
        return np.empty(0, dtype=np.int64)
    change = np.flatnonzero(np.diff(user_ids)) + 1
    bounds = np.concatenate([[0], change, [len(user_ids)]])
    return np.diff(bounds)


def numeric_columns(frame: pd.DataFrame) -> list[str]:
    """Columns a model can read as numbers (numeric or boolean); others are skipped."""
    cols = []
    for name in frame.columns:
        dtype = frame[name].dtype
        if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
            cols.append(str(name))
        else:
            logger.debug("feature column %s (%s) is not numeric; skipped", name, dtype)
    return cols


def to_float_matrix(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """``frame[columns]`` as float32, absent columns as NaN (unknown ids, missing features)."""
    if not columns:
        return np.empty((len(frame), 0), dtype=np.float32)
    columns = list(columns)
    block = frame if list(frame.columns) == columns else frame.reindex(columns=columns)
    return block.to_numpy(dtype=np.float32, na_value=np.nan)

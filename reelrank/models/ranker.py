"""Stage 2: learning to rank the retrieved candidates.

A ranker is anything with ``fit(X, y, group_sizes, feature_names, categorical)`` and
``predict(X) -> scores``; :data:`RANKERS` maps a name to a factory so the recommender's
``ranker`` hyperparameter picks one (LightGBM LambdaRank by default; pointwise classifiers,
including the from-scratch ones in :mod:`reelrank.scratch`, through :class:`PointwiseRanker`).
New rankers are added with :func:`register_ranker`.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol, Self

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone

from reelrank.exceptions import NotFittedError, ValidationError

logger = logging.getLogger(__name__)

LABEL: Final = "label"
LAMBDARANK: Final = "lgbm-lambdarank"
LGBM_BINARY: Final = "lgbm-binary"
SCRATCH_LOGREG: Final = "scratch-logreg"
SCRATCH_MLP: Final = "scratch-mlp"
SKLEARN_LOGREG: Final = "sklearn-logreg"


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


class LGBMRanker(BaseEstimator):
    """LightGBM over candidate groups: ``lambdarank`` (listwise, graded labels) or ``binary``.

    Deterministic for a given ``random_state`` and ``n_jobs`` (``deterministic=True``).
    ``reg_alpha``/``reg_lambda`` are the L1/L2 leaf-weight penalties.
    """

    def __init__(
        self,
        objective: str = "lambdarank",
        n_estimators: int = 100,
        learning_rate: float = 0.05,
        num_leaves: int = 7,
        min_child_samples: int = 200,
        colsample_bytree: float = 0.8,
        reg_alpha: float = 0.0,
        reg_lambda: float = 1.0,
        lambdarank_truncation_level: int = 20,
        random_state: int | None = 0,
        n_jobs: int = 1,
    ) -> None:
        self.objective = objective
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.colsample_bytree = colsample_bytree
        self.reg_alpha = reg_alpha
        self.reg_lambda = reg_lambda
        self.lambdarank_truncation_level = lambdarank_truncation_level
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        group_sizes: np.ndarray,
        feature_names: Sequence[str],
        categorical: Sequence[str] = (),
    ) -> Self:
        import lightgbm as lgb

        params: dict[str, Any] = {
            "n_estimators": self.n_estimators,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "colsample_bytree": self.colsample_bytree,
            "reg_alpha": self.reg_alpha,
            "reg_lambda": self.reg_lambda,
            "random_state": self.random_state,
            "n_jobs": self.n_jobs,
            "deterministic": True,
            "force_row_wise": True,
            "verbose": -1,
        }
        names = [_lgbm_safe(name) for name in feature_names]
        cats = [_lgbm_safe(name) for name in categorical if name in feature_names] or "auto"
        if self.objective == "lambdarank":
            model: Any = lgb.LGBMRanker(
                objective="lambdarank",
                lambdarank_truncation_level=self.lambdarank_truncation_level,
                **params,
            )
            model.fit(X, y, group=group_sizes, feature_name=names, categorical_feature=cats)
        elif self.objective == "binary":
            model = lgb.LGBMClassifier(objective="binary", **params)
            model.fit(X, (y > 0).astype(int), feature_name=names, categorical_feature=cats)
        else:
            raise ValidationError(
                f"unknown LightGBM ranking objective {self.objective!r}; "
                "use 'lambdarank' or 'binary'."
            )
        self.booster_ = model.booster_
        self.feature_names_ = list(feature_names)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "booster_"):
            raise NotFittedError("LGBMRanker is not fitted; call fit first.")
        raw = self.booster_.predict(X, raw_score=True, num_threads=1)
        return np.asarray(raw, dtype=np.float64)

    @property
    def feature_importances_(self) -> pd.Series:
        """Total gain per feature, highest first."""
        gain = self.booster_.feature_importance(importance_type="gain")
        return pd.Series(gain, index=self.feature_names_, name="gain").sort_values(ascending=False)


class PointwiseRanker(BaseEstimator):
    """Any binary classifier with ``predict_proba`` as a ranker: score = P(relevant).

    Missing values are imputed with the training medians (plus nothing else: the retrieval
    features carry NaN for unscorable users, which the median stands in for) and the
    features are standardised, so linear models and MLPs see well-scaled inputs.
    """

    def __init__(self, estimator: Any = None) -> None:
        self.estimator = estimator

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        group_sizes: np.ndarray,
        feature_names: Sequence[str],
        categorical: Sequence[str] = (),
    ) -> Self:
        if self.estimator is None:
            raise ValidationError("PointwiseRanker needs an estimator with predict_proba.")
        X = np.asarray(X, dtype=np.float64)
        medians = np.nanmedian(np.where(np.isfinite(X), X, np.nan), axis=0)
        self.medians_ = np.where(np.isfinite(medians), medians, 0.0)
        filled = self._impute(X)
        self.mean_ = filled.mean(axis=0)
        std = filled.std(axis=0)
        self.scale_ = np.where(std > 1e-12, std, 1.0)
        self.estimator_ = clone(self.estimator)
        self.estimator_.fit((filled - self.mean_) / self.scale_, (np.asarray(y) > 0).astype(int))
        self.feature_names_ = list(feature_names)
        return self

    def _impute(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        bad = ~np.isfinite(X)
        if bad.any():
            X = np.where(bad, self.medians_, X)
        return X

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "estimator_"):
            raise NotFittedError("PointwiseRanker is not fitted; call fit first.")
        filled = (self._impute(X) - self.mean_) / self.scale_
        proba = np.asarray(self.estimator_.predict_proba(filled))
        return proba[:, 1] if proba.ndim == 2 else proba


def _lgbm_safe(name: str) -> str:
    """LightGBM refuses some characters in feature names (JSON specials)."""
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)


def _scratch_estimator(class_name: str, **params: Any) -> Any:
    try:
        module = importlib.import_module("reelrank.scratch")
        cls = getattr(module, class_name)
    except (ImportError, AttributeError) as exc:
        raise ValidationError(
            f"reelrank.scratch.{class_name} is not available; use ranker={LAMBDARANK!r} "
            "or implement the from-scratch model first."
        ) from exc
    return cls(**params)


RankerFactory = Callable[[int | None, Mapping[str, Any]], Ranker]


def _lambdarank(seed: int | None, params: Mapping[str, Any]) -> Ranker:
    return LGBMRanker(objective="lambdarank", random_state=seed, **params)


def _lgbm_binary(seed: int | None, params: Mapping[str, Any]) -> Ranker:
    return LGBMRanker(objective="binary", random_state=seed, **params)


def _sklearn_logreg(seed: int | None, params: Mapping[str, Any]) -> Ranker:
    from sklearn.linear_model import LogisticRegression

    return PointwiseRanker(LogisticRegression(max_iter=1000, random_state=seed, **params))


def _scratch_logreg(seed: int | None, params: Mapping[str, Any]) -> Ranker:
    return PointwiseRanker(_scratch_estimator("LogisticRegression", **params))


def _scratch_mlp(seed: int | None, params: Mapping[str, Any]) -> Ranker:
    return PointwiseRanker(_scratch_estimator("MLPClassifier", random_state=seed, **params))


RANKERS: Final[dict[str, RankerFactory]] = {
    LAMBDARANK: _lambdarank,
    LGBM_BINARY: _lgbm_binary,
    SKLEARN_LOGREG: _sklearn_logreg,
    SCRATCH_LOGREG: _scratch_logreg,
    SCRATCH_MLP: _scratch_mlp,
}


def register_ranker(name: str, factory: RankerFactory) -> None:
    """Make ``Recommender(ranker=name)`` build rankers with ``factory(seed, params)``."""
    RANKERS[name] = factory


def make_ranker(name: str, random_state: int | None, params: Mapping[str, Any]) -> Ranker:
    """Build the ranker registered as ``name`` with extra ``params``."""
    if name not in RANKERS:
        raise ValidationError(f"unknown ranker {name!r}; choose from {sorted(RANKERS)}.")
    return RANKERS[name](random_state, params)


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

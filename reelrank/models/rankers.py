"""The built-in rankers: LightGBM (LambdaRank or binary), any classifier pointwise, and
reciprocal-rank fusion (no learning).

Each registers itself under its name at the bottom of this module
(:func:`~reelrank.models.ranking.register_ranker`); ``reelrank train --ranker NAME``
accepts every registered name.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any, Final, Self

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone

from reelrank.exceptions import NotFittedError, ValidationError
from reelrank.models.ranking import register_ranker

LAMBDARANK: Final = "lgbm-lambdarank"
LGBM_BINARY: Final = "lgbm-binary"
SKLEARN_LOGREG: Final = "sklearn-logreg"
SCRATCH_LOGREG: Final = "scratch-logreg"
SCRATCH_MLP: Final = "scratch-mlp"
RRF: Final = "rrf"
RRF_K: Final = 60.0


class LGBMRanker(BaseEstimator):
    """LightGBM over candidate groups: ``lambdarank`` (listwise, graded labels) or ``binary``.

    Deterministic for a given ``random_state`` whatever the thread count
    (``deterministic=True``; predictions with ``n_jobs`` 1 and 2 are bitwise equal,
    ``tests/model/test_ranker.py``). ``n_jobs=-1`` trains on every
    core: 1.6x faster than one thread on 2 cores, for the same model.
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
        random_state: int | None = None,
        n_jobs: int = -1,
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


class ReciprocalRankFusion(BaseEstimator):
    """No learning: ``score = sum over sources of 1 / (k + rank)`` (Cormack et al., 2009).

    The fallback when no label window has positives, and a baseline ranker of its own.
    It reads only the sources' rank columns (``<source>_rank``), so it needs no features.
    """

    uses_features: Final = False

    def __init__(self, k: float = RRF_K) -> None:
        self.k = k

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        group_sizes: np.ndarray,
        feature_names: Sequence[str],
        categorical: Sequence[str] = (),
    ) -> Self:
        self.rank_columns_ = np.array(
            [i for i, name in enumerate(feature_names) if name.endswith("_rank")], dtype=np.int64
        )
        self.feature_names_ = list(feature_names)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "rank_columns_"):
            raise NotFittedError("ReciprocalRankFusion is not fitted; call fit first.")
        ranks = X[:, self.rank_columns_]
        return np.asarray(np.nansum(1.0 / (self.k + ranks), axis=1), dtype=np.float64)


def _lgbm_safe(name: str) -> str:
    """LightGBM refuses some characters in feature names (JSON specials)."""
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)


def _scratch_estimator(class_name: str, **params: Any) -> Any:
    try:
        module = importlib.import_module("reelrank.scratch")
        cls = getattr(module, class_name)
    except (ImportError, AttributeError) as exc:
        raise ValidationError(
            f"reelrank.scratch.{class_name} is not available; use the 'lgbm-lambdarank' ranker "
            "or implement the from-scratch model first."
        ) from exc
    return cls(**params)


def _lambdarank(**params: Any) -> LGBMRanker:
    return LGBMRanker(**{"objective": "lambdarank", **params})


def _lgbm_binary(**params: Any) -> LGBMRanker:
    return LGBMRanker(**{"objective": "binary", **params})


def _sklearn_logreg(**params: Any) -> PointwiseRanker:
    from sklearn.linear_model import LogisticRegression

    return PointwiseRanker(LogisticRegression(**{"max_iter": 1000, **params}))


def _scratch_logreg(**params: Any) -> PointwiseRanker:
    return PointwiseRanker(_scratch_estimator("LogisticRegression", **params))


def _scratch_mlp(**params: Any) -> PointwiseRanker:
    return PointwiseRanker(_scratch_estimator("MLPClassifier", **params))


register_ranker(LAMBDARANK, _lambdarank)
register_ranker(LGBM_BINARY, _lgbm_binary)
register_ranker(SKLEARN_LOGREG, _sklearn_logreg)
register_ranker(SCRATCH_LOGREG, _scratch_logreg)
register_ranker(SCRATCH_MLP, _scratch_mlp)
register_ranker(RRF, ReciprocalRankFusion)

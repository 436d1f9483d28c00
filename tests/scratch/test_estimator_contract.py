"""Every scratch estimator honours the scikit-learn contract: clone, Pipeline, cross_val_score."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline

from reelrank.exceptions import NotFittedError
from reelrank.scratch.kmeans import KMeans
from reelrank.scratch.knn import KNeighborsClassifier, KNeighborsRegressor
from reelrank.scratch.linear_regression import LinearRegression
from reelrank.scratch.logistic_regression import LogisticRegression
from reelrank.scratch.mlp import MLPClassifier
from reelrank.scratch.model_selection import KFold, StratifiedKFold
from reelrank.scratch.preprocessing import MinMaxScaler, StandardScaler
from reelrank.scratch.tree import DecisionTreeClassifier, DecisionTreeRegressor

CLASSIFIERS = [
    LogisticRegression(C=0.5),
    KNeighborsClassifier(3),
    DecisionTreeClassifier(max_depth=3),
    MLPClassifier((8,), max_iter=50, learning_rate_init=0.01, random_state=0),
]
REGRESSORS = [
    LinearRegression("minibatch", learning_rate=0.05, max_iter=50, random_state=0),
    LinearRegression("normal"),
    KNeighborsRegressor(3),
    DecisionTreeRegressor(max_depth=3),
]
ALL_ESTIMATORS = [*CLASSIFIERS, *REGRESSORS, KMeans(3, n_init=2), MinMaxScaler(), StandardScaler()]


def _ids(estimators):
    return [type(e).__name__ for e in estimators]


@pytest.mark.parametrize("estimator", ALL_ESTIMATORS, ids=_ids(ALL_ESTIMATORS))
def test_clone_copies_hyperparameters_only(estimator, binary_data):
    X, y = binary_data
    fitted = clone(estimator).fit(X, y)
    copy = clone(fitted)
    assert copy.get_params() == estimator.get_params()
    assert not any(name.endswith("_") and not name.startswith("_") for name in vars(copy))
    assert fitted.fit(X, y) is fitted  # fit returns self


@pytest.mark.parametrize("estimator", ALL_ESTIMATORS, ids=_ids(ALL_ESTIMATORS))
def test_use_before_fit_raises_not_fitted(estimator, binary_data):
    X, _ = binary_data
    method = next(m for m in ("predict", "transform") if hasattr(estimator, m))
    with pytest.raises(NotFittedError, match="fit"):
        getattr(clone(estimator), method)(X)


@pytest.mark.parametrize("estimator", CLASSIFIERS, ids=_ids(CLASSIFIERS))
def test_classifier_in_pipeline_and_cross_val_score(estimator, binary_data):
    X, y = binary_data
    assert is_classifier(estimator)
    pipeline = Pipeline([("scale", StandardScaler()), ("model", clone(estimator))])
    for cv in (StratifiedKFold(4), 4):
        scores = cross_val_score(pipeline, X, y, cv=cv, scoring="roc_auc")
        assert scores.shape == (4,)
        assert scores.mean() > 0.7


@pytest.mark.parametrize("estimator", REGRESSORS, ids=_ids(REGRESSORS))
def test_regressor_in_pipeline_and_cross_val_score(estimator, regression_data):
    X, y = regression_data
    assert is_regressor(estimator)
    pipeline = Pipeline([("scale", MinMaxScaler()), ("model", clone(estimator))])
    scores = cross_val_score(pipeline, X, y, cv=KFold(4), scoring="r2")
    assert scores.shape == (4,)
    assert scores.mean() > 0.6


def test_kmeans_and_grid_search_work_with_sklearn_tools(blobs):
    X, _ = blobs
    pipeline = Pipeline([("scale", StandardScaler()), ("kmeans", KMeans(4, random_state=0))])
    assert pipeline.fit_predict(X).shape == (len(X),)
    search = GridSearchCV(DecisionTreeClassifier(), {"max_depth": [1, 3]}, cv=KFold(3))
    search.fit(*blobs)
    assert search.best_params_ == {"max_depth": 3}


@pytest.mark.parametrize(
    "estimator", [*CLASSIFIERS, *REGRESSORS], ids=_ids([*CLASSIFIERS, *REGRESSORS])
)
def test_bad_inputs_are_rejected_with_a_clear_message(estimator, binary_data):
    X, y = binary_data
    with_nan = X.copy()
    with_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clone(estimator).fit(with_nan, y)
    with pytest.raises(ValueError, match="rows"):
        clone(estimator).fit(X, y[:-1])
    fitted = clone(estimator).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        fitted.predict(X[:, :3])

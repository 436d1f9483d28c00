"""Stage-2 rankers: the registry, learning a planted signal, NaN handling."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from reelrank.exceptions import ValidationError
from reelrank.models.rankers import LGBMRanker, PointwiseRanker
from reelrank.models.ranking import (
    RANKERS,
    group_sizes,
    make_ranker,
    register_ranker,
    relevance_labels,
)


def planted(n_groups: int = 60, size: int = 20, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_groups * size, 3))
    y = (X[:, 0] + 0.3 * rng.normal(size=len(X)) > 1.0).astype(int)
    return X, y, np.full(n_groups, size)


@pytest.mark.parametrize("name", ["lgbm-lambdarank", "lgbm-binary", "sklearn-logreg"])
def test_rankers_learn_a_planted_signal(name):
    X, y, groups = planted()
    params = {"n_estimators": 30, "random_state": 0} if name.startswith("lgbm") else {}
    ranker = make_ranker(name, **params)
    ranker.fit(X, y, groups, ["signal", "noise_a", "noise_b"])
    Xt, yt, _ = planted(seed=1)
    scores = ranker.predict(Xt)
    assert scores.shape == (len(Xt),)
    assert scores[yt == 1].mean() > scores[yt == 0].mean()
    assert np.corrcoef(scores, Xt[:, 0])[0, 1] > 0.5


def test_lgbm_feature_importance_names_the_signal():
    X, y, groups = planted()
    ranker = LGBMRanker(n_estimators=30).fit(X, y, groups, ["signal", "noise_a", "noise_b"])
    assert ranker.feature_importances_.index[0] == "signal"


def test_pointwise_ranker_imputes_missing_values():
    X, y, groups = planted()
    X[::5, 1] = np.nan
    ranker = PointwiseRanker(LogisticRegression()).fit(X, y, groups, ["a", "b", "c"])
    assert np.isfinite(ranker.predict(np.full((2, 3), np.nan))).all()


def test_registry_rejects_unknown_names_and_accepts_new_ones():
    with pytest.raises(ValidationError, match="unknown ranker"):
        make_ranker("nope")
    register_ranker("test-logreg", lambda **params: PointwiseRanker(LogisticRegression(**params)))
    try:
        assert isinstance(make_ranker("test-logreg", C=0.5), PointwiseRanker)
        assert "test-logreg" in RANKERS
    finally:
        RANKERS.unregister("test-logreg")
    assert "test-logreg" not in RANKERS


def test_labels_and_groups():
    import pandas as pd

    ratings = pd.Series([1.0, 4.0, 5.0, 3.0])
    assert relevance_labels(ratings, "graded", 4.0).tolist() == [1, 2, 2, 1]
    assert relevance_labels(ratings, "binary", 4.0).tolist() == [1, 1, 1, 1]
    with pytest.raises(ValidationError):
        relevance_labels(ratings, "stars", 4.0)
    assert group_sizes(np.array([3, 3, 1, 1, 1, 7])).tolist() == [2, 3, 1]


def test_lgbm_ranker_gives_the_same_model_on_one_thread_and_on_two():
    """n_jobs=-1 is the default because deterministic=True makes the model independent of
    the thread count; this holds that claim (a LightGBM upgrade that broke it fails here)."""
    X, y, groups = planted(n_groups=200, size=30)
    Xt, _, _ = planted(seed=1)
    one = LGBMRanker(n_estimators=40, random_state=0, n_jobs=1).fit(X, y, groups, ["a", "b", "c"])
    two = LGBMRanker(n_estimators=40, random_state=0, n_jobs=2).fit(X, y, groups, ["a", "b", "c"])
    np.testing.assert_array_equal(one.predict(Xt), two.predict(Xt))

"""The scikit-learn estimator contract and the persistence the registry and the API rely on."""

from __future__ import annotations

import pickle

import pandas as pd
import pytest
from sklearn.base import clone

from reelrank import Recommender
from reelrank.exceptions import NotFittedError, ValidationError
from reelrank.models.retrieval import make_source
from reelrank.schema import ITEM_ID, USER_ID

OUTPUT_COLUMNS = [USER_ID, ITEM_ID, "score", "rank"]


def test_get_params_round_trips_through_set_params_and_clone():
    model = Recommender().set_params(sources__ease__l2=123.0, ranker__n_estimators=7)
    params = model.get_params()
    assert params["sources__ease__l2"] == 123.0
    assert params["ranker__n_estimators"] == 7

    model.set_params(n_candidates=33, sources__mf__factors=8)
    assert model.n_candidates == 33
    assert dict(model.sources)["mf"].factors == 8

    copy = clone(model)
    assert copy is not model
    assert copy.get_params(deep=True).keys() == model.get_params(deep=True).keys()
    assert copy.get_params()["sources__ease__l2"] == 123.0
    assert dict(copy.sources)["ease"] is not dict(model.sources)["ease"]  # cloned, not shared
    assert copy.ranker is not model.ranker


def test_default_components_are_never_shared_between_instances():
    first, second = Recommender(), Recommender()
    first.set_params(sources__ease__l2=1.0, ranker__n_estimators=3)
    assert second.get_params()["sources__ease__l2"] == 300.0
    assert second.get_params()["ranker__n_estimators"] == 100


def test_a_whole_source_can_be_replaced_by_name():
    from reelrank.models.sources import ItemKNNSource

    model = Recommender().set_params(sources__ease=ItemKNNSource(neighbours=5))
    assert [name for name, _ in model.sources] == ["popularity", "ease", "mf"]
    assert model.get_params()["sources__ease__neighbours"] == 5
    with pytest.raises(ValidationError, match="no source named 'nope'"):
        model.set_params(sources__nope__l2=1.0)


def test_clone_of_fitted_model_is_unfitted(fitted_genre_model):
    copy = clone(fitted_genre_model)
    assert not hasattr(copy, "sources_")
    with pytest.raises(NotFittedError):
        copy.recommend([1])


def test_learned_state_ends_with_underscore(fitted_genre_model):
    params = set(fitted_genre_model.get_params(deep=False))
    learned = set(vars(fitted_genre_model)) - params
    assert learned, "fit stored nothing"
    assert all(name.endswith("_") for name in learned), sorted(learned)
    assert {"sources_", "interactions_", "ranker_", "layout_", "catalogue_"} <= learned


def test_init_stores_hyperparameters_only():
    model = Recommender()
    assert set(vars(model)) == set(model.get_params(deep=False))


def test_fit_returns_self(genre_world, fast_params):
    events, _, _ = genre_world
    model = Recommender(use_features=False).set_params(**fast_params)
    assert model.fit(events) is model


def test_pickle_round_trip_gives_identical_recommendations(fitted_genre_model):
    restored = pickle.loads(pickle.dumps(fitted_genre_model))
    users = [1, 2, 3, 10_000]
    pd.testing.assert_frame_equal(
        restored.recommend(users, k=10), fitted_genre_model.recommend(users, k=10)
    )


def test_recommend_output_shape_and_ranks(fitted_genre_model):
    recs = fitted_genre_model.recommend([1, 2, 3], k=5)
    assert list(recs.columns) == OUTPUT_COLUMNS
    for _, group in recs.groupby(USER_ID):
        assert group["rank"].tolist() == [1, 2, 3, 4, 5]
        assert group["score"].is_monotonic_decreasing
        assert group[ITEM_ID].is_unique


def test_missing_columns_are_a_clear_error():
    with pytest.raises(ValidationError, match="lacks columns"):
        Recommender().fit(pd.DataFrame({USER_ID: [1], ITEM_ID: [2]}))


def test_bad_hyperparameter_is_a_clear_error(genre_world):
    with pytest.raises(ValidationError, match="unknown retrieval source"):
        Recommender(sources=[("popularity", make_source("popularity")), ("x", make_source("nope"))])
    with pytest.raises(ValidationError, match="unknown ranker"):
        Recommender(ranker="nope", use_features=False).fit(genre_world[0])


def test_recommend_before_fit_raises():
    with pytest.raises(NotFittedError, match="fit"):
        Recommender().recommend([1])

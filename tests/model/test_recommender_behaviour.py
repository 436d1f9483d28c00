"""Behaviour of the two-stage recommender on worlds whose structure is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reelrank import Recommender
from reelrank.evaluation.metrics import ndcg_at_k
from reelrank.models import recommender as recommender_module
from reelrank.models.rankers import ReciprocalRankFusion
from reelrank.models.sources import PopularitySource
from reelrank.schema import ITEM_ID, RATING, TIMESTAMP, USER_ID
from tests.model.worlds import START, make_genre_world


def test_one_genre_user_gets_mostly_that_genre(genre_world, item_genre, fast_params):
    events, users, items = genre_world
    horror = [i for i, g in item_genre.items() if g == "Horror"][:12]
    fan = pd.DataFrame(
        {
            USER_ID: 999,
            ITEM_ID: horror,
            RATING: 5.0,
            TIMESTAMP: START + pd.to_timedelta(np.arange(len(horror)), unit="h"),
        }
    )
    model = (
        Recommender(random_state=0)
        .set_params(**fast_params)
        .fit(
            pd.concat([events, fan], ignore_index=True),
            pd.concat([users, pd.DataFrame({USER_ID: [999]})], ignore_index=True),
            items,
        )
    )
    recs = model.recommend([999], k=10)
    share = np.mean([item_genre[i] == "Horror" for i in recs[ITEM_ID]])
    assert len(recs) == 10
    assert share >= 0.7, share


def test_recommendations_exclude_seen_items(fitted_genre_model, genre_world):
    events = genre_world[0]
    users = events[USER_ID].unique()[:20]
    recs = fitted_genre_model.recommend(users, k=20)
    seen = set(zip(events[USER_ID], events[ITEM_ID], strict=True))
    assert not any((u, i) in seen for u, i in zip(recs[USER_ID], recs[ITEM_ID], strict=True))


def test_exclude_seen_false_may_return_seen_items(fitted_genre_model):
    user = 1
    seen = set(fitted_genre_model.seen_items(user))
    recs = fitted_genre_model.recommend([user], k=60, exclude_seen=False)
    assert seen & set(recs[ITEM_ID])


def test_deterministic_with_a_seed(genre_world, fast_params):
    events, users, items = genre_world
    first = Recommender(random_state=7).set_params(**fast_params).fit(events, users, items)
    second = Recommender(random_state=7).set_params(**fast_params).fit(events, users, items)
    ids = events[USER_ID].unique()[:30]
    pd.testing.assert_frame_equal(first.recommend(ids), second.recommend(ids))


def test_unknown_user_gets_non_personalised_list(fitted_genre_model):
    recs = fitted_genre_model.recommend([123_456, 654_321], k=10)
    first = recs[recs[USER_ID] == 123_456][ITEM_ID].tolist()
    second = recs[recs[USER_ID] == 654_321][ITEM_ID].tolist()
    assert len(first) == 10
    assert first == second  # the same ranking for everyone unknown
    popular = set(fitted_genre_model.popular_items(40)[ITEM_ID])
    assert set(first) <= popular


def test_known_and_unknown_users_in_one_call(fitted_genre_model):
    recs = fitted_genre_model.recommend([1, 123_456], k=5)
    assert recs.groupby(USER_ID).size().to_dict() == {1: 5, 123_456: 5}


def test_k_larger_than_catalogue_returns_what_exists(fitted_genre_model, genre_world):
    items = genre_world[2]
    user = 1
    n_unseen = len(items) - len(fitted_genre_model.seen_items(user))
    recs = fitted_genre_model.recommend([user], k=10_000)
    assert len(recs) == n_unseen
    assert recs["rank"].tolist() == list(range(1, n_unseen + 1))
    assert recs[ITEM_ID].is_unique


def test_candidates_and_rank_compose_into_recommend(fitted_genre_model):
    cands = fitted_genre_model.candidates([1, 2], n=40)
    for source in fitted_genre_model.sources_:
        assert {f"{source}_score", f"{source}_rank"} <= set(cands.columns)
    ranked = fitted_genre_model.rank(cands)
    top = ranked[ranked["rank"] <= 10][[USER_ID, ITEM_ID]].reset_index(drop=True)
    recs = fitted_genre_model.recommend([1, 2], k=10)[[USER_ID, ITEM_ID]]
    pd.testing.assert_frame_equal(top, recs.reset_index(drop=True))


def test_two_stage_beats_popularity_on_structured_world(fast_params):
    events, users, items = make_genre_world(n_users=240, events_per_user=30, seed=11)
    cutoff = events[TIMESTAMP].quantile(0.8)
    train, test = events[events[TIMESTAMP] < cutoff], events[events[TIMESTAMP] >= cutoff]
    test = test[test[USER_ID].isin(train[USER_ID])]
    model = Recommender(random_state=0).set_params(**fast_params).fit(train, users, items)
    ids = test[USER_ID].unique()
    model_ndcg = ndcg_at_k(model.recommend(ids, k=10), test, 10)
    popularity = PopularitySource().fit(train).candidates(ids, 10)
    pop_ndcg = ndcg_at_k(popularity, test, 10)
    assert model_ndcg > pop_ndcg * 1.3, (model_ndcg, pop_ndcg)


def test_two_stage_beats_popularity_on_synthetic_world(fast_params):
    synthetic = pytest.importorskip("reelrank.data.synthetic")
    world = synthetic.generate_world(
        synthetic.SyntheticConfig(n_users=300, n_items=250, n_events=12_000, span_days=180, seed=5)
    ).to_dataset()
    events = world.events
    cutoff = events[TIMESTAMP].quantile(0.8)
    train, test = events[events[TIMESTAMP] < cutoff], events[events[TIMESTAMP] >= cutoff]
    test = test[test[USER_ID].isin(train[USER_ID])]
    model = (
        Recommender(random_state=0).set_params(**fast_params).fit(train, world.users, world.items)
    )
    ids = test[USER_ID].unique()
    model_ndcg = ndcg_at_k(model.recommend(ids, k=10), test, 10)
    pop_ndcg = ndcg_at_k(PopularitySource().fit(train).candidates(ids, 10), test, 10)
    assert model_ndcg > pop_ndcg, (model_ndcg, pop_ndcg)


def test_model_trained_before_cutoff_never_sees_later_events(genre_world, fast_params, monkeypatch):
    events = genre_world[0]
    cutoff = events[TIMESTAMP].quantile(0.7).floor("D")
    before = events[events[TIMESTAMP] < cutoff]
    later_only_items = set(events[ITEM_ID]) - set(before[ITEM_ID])

    built: list[tuple[pd.Timestamp, pd.Timestamp | None]] = []
    original = recommender_module.library_feature_provider

    def spy(ev, us, it, end):
        built.append((ev[TIMESTAMP].max(), end))
        return original(ev, us, it, end)

    monkeypatch.setattr(recommender_module, "library_feature_provider", spy)
    # time windows only: a random window's own build is tested in test_label_windows.py
    model = Recommender(random_state=0, ranker_holdout="time").set_params(**fast_params)
    model.fit(before)  # no items frame

    # the fitted state only knows events before the cutoff
    assert model.trained_until_ < cutoff
    assert model.interactions_.last_timestamp < cutoff
    n_seen = int(model.interactions_.seen.sum())
    assert n_seen == len(before.drop_duplicates([USER_ID, ITEM_ID]))
    assert not later_only_items & set(model.interactions_.item_ids)
    recs = model.recommend(events[USER_ID].unique(), k=20)
    assert not later_only_items & set(recs[ITEM_ID])

    # every feature table was built from events strictly before the time it is read at
    assert len(built) == 1  # one point-in-time build serves every window and the snapshot
    for last_event, end in built:
        assert end is not None
        assert last_event < end
    for window_cutoff in model.ranker_cutoffs_:
        assert window_cutoff <= model.trained_until_
    # the serving snapshot counts no event after the cutoff
    snapshot = model.feature_provider_.item_frame
    counts = before.groupby(ITEM_ID).size()
    assert (snapshot["item_events_total"].reindex(counts.index) == counts).all()


def test_one_feature_build_equals_per_window_builds(genre_world, fast_params):
    """fit builds the feature tables once over all events and reads them as of each window's
    cutoff; that must equal building them from each window's pre-cutoff events alone."""
    events, users, items = genre_world
    model = Recommender(random_state=0).set_params(**fast_params)
    per_window = model.training_set(events, users, items)  # builds per window
    end = pd.Timestamp(events[TIMESTAMP].max()).floor("D") + pd.Timedelta(days=1)
    shared = recommender_module.library_feature_provider(events, users, items, end=end)
    once = model.training_set(events, users, items, feature_provider=shared)
    assert per_window.feature_names == once.feature_names
    assert len(per_window.cutoffs) >= 2
    np.testing.assert_allclose(per_window.X, once.X, rtol=0, atol=1e-9, equal_nan=True)
    np.testing.assert_array_equal(per_window.y, once.y)


def test_training_set_labels_come_after_features(genre_world, fast_params):
    events, users, items = genre_world
    model = Recommender(random_state=0, use_features=False, ranker_holdout="time")
    train = model.set_params(**fast_params).training_set(events, users, items)
    assert len(train.group_sizes) > 0
    assert train.group_sizes.sum() == len(train.y) == len(train.X)
    for cutoff in train.cutoffs:
        window = train.pairs[train.pairs["cutoff"] == cutoff]
        positives = window[window["label"] > 0]
        # each positive is an interaction at/after the cutoff, never a seen-before item
        joined = positives.merge(events, on=[USER_ID, ITEM_ID])
        assert (joined[TIMESTAMP] >= cutoff).all()
        earlier = events[events[TIMESTAMP] < cutoff]
        seen_before = set(zip(earlier[USER_ID], earlier[ITEM_ID], strict=True))
        pairs = zip(window[USER_ID], window[ITEM_ID], strict=True)
        assert not any(pair in seen_before for pair in pairs)


def test_rrf_ranker_needs_no_training(genre_world):
    events = genre_world[0]
    model = Recommender(ranker="rrf", use_features=False, n_candidates=30).fit(events)
    assert isinstance(model.ranker_, ReciprocalRankFusion)
    assert model.n_ranker_groups_ == 0
    assert not model.layout_.uses_features
    recs = model.recommend([1, 2], k=5)
    assert len(recs) == 10

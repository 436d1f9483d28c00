"""The baseline ladder: tuned on the first fold's training part only, judged like the model."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np

from reelrank.evaluation.splits import rolling_origin_folds
from reelrank.models.baselines import ease_baseline
from reelrank.models.training_set import sample_users
from reelrank.schema import USER_ID, Dataset
from reelrank.training.config import BASELINES, TrainConfig
from reelrank.training.crossval import cross_validate
from reelrank.training.ladder import (
    LADDER,
    LADDER_LABELS,
    Rung,
    ladder_factories,
    tune_ladder,
)
from tests.model.worlds import make_genre_world


def small_dataset() -> Dataset:
    events, users, items = make_genre_world(n_users=120, events_per_user=20, seed=5)
    return Dataset(events=events, users=users, items=items)


def test_the_ladder_is_the_gates_set_of_baselines() -> None:
    assert LADDER_LABELS == BASELINES == ("popularity", "item_knn", "ease", "als", "bpr")


def test_tuning_chooses_from_the_grid_without_touching_a_test_fold() -> None:
    dataset = small_dataset()
    fold = rolling_origin_folds(dataset.events, n_folds=2)[0]
    blind = replace(fold, test=fold.test.iloc[0:0])  # tuning must not need the test window
    rungs = [r for r in LADDER if r.label in ("popularity", "ease")]
    tuning = tune_ladder(dataset, blind, k=10, seed=0, rungs=rungs)
    assert tuning.chosen["popularity"] == {}
    assert tuning.chosen["ease"]["l2"] in LADDER[2].grid["l2"]
    ease = tuning.trials[tuning.trials["model"] == "ease"]
    assert len(ease) == len(LADDER[2].grid["l2"])
    chosen = ease[ease["chosen"]]
    assert len(chosen) == 1
    assert chosen["ndcg_at_10"].iloc[0] == ease["ndcg_at_10"].max()
    assert json.loads(chosen["params"].iloc[0]) == tuning.chosen["ease"]


def test_tuning_at_scale_uses_whole_histories_of_a_seeded_user_sample() -> None:
    events = small_dataset().events
    assert sample_users(events, 10_000, seed=0) is events  # few users: all of them
    sample = sample_users(events, 30, seed=0)
    users = sample[USER_ID].unique()
    assert len(users) == 30
    whole = events[events[USER_ID].isin(users)]
    assert sample.equals(whole)  # every event of each chosen user, in order
    assert sample_users(events, 30, seed=0).equals(sample)
    assert not sample_users(events, 30, seed=1).equals(sample)


def test_tuned_baselines_enter_cross_validation_with_their_params() -> None:
    dataset = small_dataset()
    folds = rolling_origin_folds(dataset.events, n_folds=2)
    rung = Rung("ease", ease_baseline, {"l2": (10.0, 1000.0)})
    tuning = tune_ladder(dataset, folds[0], rungs=[rung])
    factories = ladder_factories(tuning, seed=0, rungs=[rung])
    assert factories["ease"]().source.l2 == tuning.chosen["ease"]["l2"]
    cv = cross_validate(factories, dataset, folds)
    assert set(cv.per_fold["model"]) == {"ease"}
    new = cv.slices[cv.slices["slice"] == "new_users"]
    assert len(new) == len(folds)  # the cold-start slice is measured on every fold


def test_a_source_baseline_serves_unknown_users_the_popular_items() -> None:
    dataset = small_dataset()
    model = ease_baseline(l2=100.0).fit(dataset.events)
    recs = model.recommend([int(dataset.events[USER_ID].iloc[0]), 10**9], k=5)
    assert recs.groupby(USER_ID).size().tolist() == [5, 5]
    cold = recs[recs[USER_ID] == 10**9]["item_id"].tolist()
    popular = dataset.events.groupby("item_id").size().sort_values(ascending=False)
    assert set(cold) <= set(popular.index[:10])


def test_train_config_builds_the_candidate_with_nested_params() -> None:
    config = TrainConfig(
        sources=("popularity", "ease"), recommender_params={"sources__ease__l2": 42.0}
    )
    model = config.recommender()
    assert [name for name, _ in model.sources] == ["popularity", "ease"]
    assert model.get_params()["sources__ease__l2"] == 42.0
    assert np.isfinite(model.get_params()["ranker__n_estimators"])

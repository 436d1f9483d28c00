"""The ranker's slate window: the service's served slates as query groups of their own.

Cases small enough to work out by hand for :func:`slate_window`, then a world where users
pass over one genre in the slates they were shown, which only a model trained on those
slates can know.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from reelrank import Recommender
from reelrank.evaluation.splits import rolling_origin_folds
from reelrank.exceptions import ValidationError
from reelrank.loop.feedback import IMPRESSION_COLUMNS, read_slates, typed, with_slates
from reelrank.models.training_set import SLATE_COLUMNS, slate_window
from reelrank.schema import Dataset
from reelrank.training.crossval import score_fold

START = pd.Timestamp("2024-03-01", tz="UTC")


def _at(days: float) -> pd.Timestamp:
    return START + pd.Timedelta(days=days)


def _events(rows: list[tuple[int, int, float, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "day"])
    frame["timestamp"] = frame.pop("day").map(_at)
    return frame.sort_values("timestamp", ignore_index=True)


def _slates(rows: list[tuple[str, int, int, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["request_id", "user_id", "item_id", "day"])
    frame["timestamp"] = frame.pop("day").map(_at)
    return frame


def _window(slates: pd.DataFrame, events: pd.DataFrame, **kwargs: float) -> pd.DataFrame:
    params = {"days": 7.0, "half_life_days": 2.0, "weight": 4.0} | kwargs
    window = slate_window(slates, events, scheme="graded", threshold=4.0, **params)
    assert window is not None
    return window.slots


def test_labels_are_what_the_user_did_after_being_shown_and_seen_items_drop_out() -> None:
    events = _events(
        [
            (1, 10, 5.0, 0.0),  # had before the window: dropped from the slate
            (1, 11, 4.0, 9.6),  # played after shown: label 2
            (1, 12, 3.0, 9.6),  # clicked after shown: label 1
            (1, 13, 5.0, 9.1),  # rated before it was shown (same day): not a reaction
            (2, 20, 1.0, 0.5),
            (2, 21, 2.0, 9.9),  # the last event: the window ends here
        ]
    )
    slates = _slates([("a", 1, 10, 9.5), ("a", 1, 11, 9.5), ("a", 1, 12, 9.5), ("a", 1, 13, 9.5)])
    slots = _window(slates, events)
    assert slots[["item_id", "label"]].values.tolist() == [[11, 2], [12, 1], [13, 0]]
    assert (slots["day"] == _at(9)).all()


def test_only_recent_slates_shown_before_the_last_event_count_newest_most() -> None:
    events = _events([(1, 1, 5.0, 0.0), (2, 1, 5.0, 0.0), (1, 5, 4.0, 9.95), (2, 6, 4.0, 9.95)])
    slates = _slates(
        [
            ("old", 2, 6, 1.0),  # more than 7 days before the end: ignored
            ("two-days", 2, 6, 7.95),  # 2 days old: 4 * 0.5 = 2 repeats
            ("fresh", 1, 5, 9.9),  # hours old: 4 repeats
            ("after-the-end", 1, 7, 10.5),  # shown after the last event: a fold's future
        ]
    )
    slots = _window(slates, events)
    assert dict(zip(slots["request_id"], slots["repeats"], strict=True)) == {
        "two-days": 2,
        "fresh": 4,
    }
    assert slots["request_id"].tolist() == ["two-days", "fresh"]  # in time order
    faded = _window(slates, events, half_life_days=0.25)  # 2 days = 8 half-lives: 0 repeats
    assert faded["request_id"].tolist() == ["fresh"]


def test_a_slate_nobody_acted_on_teaches_nothing_and_no_slate_is_no_window() -> None:
    events = _events([(1, 1, 5.0, 0.0), (1, 2, 4.0, 3.0)])
    ignored = _slates([("x", 1, 3, 2.5), ("x", 1, 4, 2.5)])
    assert slate_window(ignored, events, 7.0, 2.0, 4.0, "graded", 4.0) is None
    assert slate_window(ignored.iloc[:0], events, 7.0, 2.0, 4.0, "graded", 4.0) is None


def test_slates_without_the_columns_are_refused_with_the_columns_named() -> None:
    events = _events([(1, 1, 5.0, 0.0)])
    with pytest.raises(ValidationError, match=r"lack columns \['request_id'\]"):
        slate_window(pd.DataFrame({"user_id": [1], "item_id": [1], "timestamp": [_at(0)]}),
                     events, 7.0, 2.0, 4.0, "graded", 4.0)  # fmt: skip


# ------------------------------------------------------------------- a world with slates
EVENTS_PER_USER, PLAY_SHARE = 60, 0.15


def passed_over_world(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Events with no genre preference over 90 days; then one day of served slates in which
    users play a third of the Comedy titles they are shown and no Drama title at all."""
    rng = np.random.default_rng(seed)
    n_users, n_items = 150, 120
    rows = [
        (u, int(i), float(rng.integers(1, 6)), float(rng.uniform(0, 88)))
        for u in range(1, n_users + 1)
        for i in rng.choice(np.arange(1, n_items + 1), EVENTS_PER_USER, replace=False)
    ]
    events = _events(rows)
    seen = events.groupby("user_id")["item_id"].agg(set)
    slates, plays = [], []
    for u in range(1, n_users + 1):
        pool = np.array([i for i in range(1, n_items + 1) if i not in seen[u]])
        day = 89 + rng.uniform(0, 0.8)
        for item in rng.choice(pool, 10, replace=False):
            slates.append((f"r{u}", u, int(item), day))
            if item % 2 == 1 and rng.random() < PLAY_SHARE:  # odd ids are Comedy
                plays.append((u, int(item), 4.0, day + 0.01))
    items = pd.DataFrame(
        {
            "item_id": np.arange(1, n_items + 1),
            "title": pd.array([f"t{i}" for i in range(1, n_items + 1)], dtype="string"),
            "genres": [["Comedy"] if i % 2 else ["Drama"] for i in range(1, n_items + 1)],
            "release_date": pd.Series(_at(-400), index=range(n_items)),
        }
    )
    return pd.concat([events, _events(plays)], ignore_index=True), _slates(slates), items


def _drama_share(model: Recommender, users: np.ndarray) -> float:
    recs = model.recommend(users, k=10)
    return float((recs["item_id"] % 2 == 0).mean())


@pytest.fixture(scope="module")
def world() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return passed_over_world()


@pytest.fixture(scope="module")
def without(world) -> Recommender:
    events, _, items = world
    return Recommender().fit(events, items=items)


def test_a_ranker_trained_on_the_slates_learns_the_genre_users_passed_over(
    world, without: Recommender
) -> None:
    events, slates, items = world
    users = np.arange(1, 151)
    shown = Recommender().fit(events, items=items, slates=slates)
    assert without.n_slate_groups_ == 0
    assert shown.n_slate_groups_ > 0
    assert _drama_share(without, users) > 0.1  # the histories alone do not know
    assert _drama_share(shown, users) < 0.5 * _drama_share(without, users)


def test_slates_after_the_events_or_a_zero_weight_change_nothing(
    world, without: Recommender
) -> None:
    events, slates, items = world
    users = np.arange(1, 151)
    baseline = without.recommend(users, k=10)
    unused = Recommender(feedback_weight=0.0).fit(events, items=items, slates=slates)
    pd.testing.assert_frame_equal(unused.recommend(users, k=10), baseline)
    before = events[events["timestamp"] < _at(89)]  # a fold that ends before the slates
    future = Recommender().fit(before, items=items, slates=slates)
    alone = Recommender().fit(before, items=items)
    assert future.n_slate_groups_ == 0
    pd.testing.assert_frame_equal(future.recommend(users, k=10), alone.recommend(users, k=10))


def test_cross_validation_hands_the_slates_to_models_that_read_them(world) -> None:
    events, slates, items = world
    users = pd.DataFrame({"user_id": np.arange(1, 151, dtype=np.int64)})
    dataset = Dataset(events, users, items, slates=slates)
    fold = rolling_origin_folds(events, n_folds=1, test_days=0.1)[0]  # the last hours
    assert fold.train["timestamp"].max() > slates["timestamp"].min()  # the slates are in
    result = score_fold({"reelrank": Recommender}, dataset, fold)
    assert result.fitted["reelrank"].n_slate_groups_ > 0


def test_a_model_pickled_before_the_slate_parameters_loads_with_their_defaults() -> None:
    model = Recommender(feedback_days=3.0)
    state = dict(model.__dict__)
    del state["feedback_weight"], state["feedback_half_life_days"]
    old = Recommender.__new__(Recommender)
    old.__setstate__(state)
    again = pickle.loads(pickle.dumps(old))
    assert again.get_params()["feedback_weight"] == Recommender().feedback_weight
    assert again.feedback_days == 3.0  # what was saved is kept


def test_the_lake_slates_are_its_shown_items_at_their_client_time(tmp_path) -> None:
    rows = {name: [None, None] for name in IMPRESSION_COLUMNS}
    rows |= {
        "request_id": ["b", "a"],
        "served_at": [_at(1), _at(2)],
        "shown_at": [_at(1.1), pd.NaT],  # no impression event came back for "a"
        "user_id": [4, 3],
        "position": [1, 1],
        "item_id": [40, 30],
    }
    typed(pd.DataFrame(rows), IMPRESSION_COLUMNS).to_parquet(tmp_path / "impressions.parquet")
    slates = read_slates(tmp_path)
    assert list(slates.columns) == list(SLATE_COLUMNS)
    assert slates["request_id"].tolist() == ["b", "a"]
    assert slates["timestamp"].tolist() == [_at(1.1), _at(2)]
    dataset = Dataset(pd.DataFrame(), pd.DataFrame(), pd.DataFrame())
    assert with_slates(dataset, tmp_path).slates is not None
    assert with_slates(dataset, tmp_path / "nothing-here").slates is None

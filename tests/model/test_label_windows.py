"""The ranker's label windows: time windows ("what next"), random hold-outs ("what else"),
and the default that mixes them, each without leaking its labels into its features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reelrank import Recommender
from reelrank.exceptions import ValidationError
from reelrank.models import recommender as recommender_module
from reelrank.models.layout import FeatureLayout
from reelrank.models.training_set import feature_snapshot_end, label_windows
from reelrank.schema import ITEM_ID, TIMESTAMP, USER_ID


def _sorted(events: pd.DataFrame) -> pd.DataFrame:
    return events.sort_values([TIMESTAMP, USER_ID, ITEM_ID], ignore_index=True)


def test_a_random_window_splits_the_events_into_history_and_held_out_labels(genre_world):
    events = _sorted(genre_world[0])
    windows = list(label_windows(events, "random", 0.2, 3, np.random.default_rng(0)))
    assert len(windows) == 3
    end = feature_snapshot_end(events)
    for window in windows:
        assert window.held_out
        assert window.cutoff == end
        # every event is in exactly one of the two parts
        assert len(window.history) + len(window.labels) == len(events)
        assert not set(window.history.index) & set(window.labels.index)
        assert 0.15 < len(window.labels) / len(events) < 0.25
    # each window holds out a different share
    assert not windows[0].labels.index.equals(windows[1].labels.index)


def test_mixed_stacks_the_time_windows_then_the_random_ones(genre_world):
    events = _sorted(genre_world[0])
    windows = list(label_windows(events, "mixed", 0.1, 2, np.random.default_rng(0), 3, 0.1))
    kinds = [window.held_out for window in windows]
    assert kinds == [False, False, True, True, True]
    for window in windows[:2]:  # a time window's labels come after everything it may see
        assert window.history[TIMESTAMP].max() < window.cutoff
        assert window.labels[TIMESTAMP].min() >= window.cutoff


def test_the_default_asks_both_questions(genre_world, fast_params):
    events, users, items = genre_world
    model = Recommender(random_state=0, ranker_random_windows=3).set_params(**fast_params)
    assert Recommender().ranker_holdout == "mixed"
    train = model.training_set(events, users, items)
    end = feature_snapshot_end(events)
    held_out = [cutoff for cutoff in train.cutoffs if cutoff == end]
    in_time = [cutoff for cutoff in train.cutoffs if cutoff < end]
    assert len(held_out) == 3
    assert len(in_time) == fast_params["ranker_windows"]


def test_a_random_window_reads_features_built_from_its_own_history_only(
    genre_world, fast_params, monkeypatch
):
    """A held-out window's features come from the events it keeps: the provider built over
    every event (one build for the time windows) would count its labels."""
    events, users, items = genre_world
    built: list[int] = []
    original = recommender_module.library_feature_provider

    def spy(ev, us, it, end):
        built.append(len(ev))
        return original(ev, us, it, end)

    monkeypatch.setattr(recommender_module, "library_feature_provider", spy)
    model = Recommender(random_state=0, ranker_random_windows=2).set_params(**fast_params)
    model.fit(events, users, items)
    assert built[0] == len(events)  # the shared build: time windows and the snapshot
    held = built[1:]
    assert len(held) == 2
    assert all(0 < n < len(events) for n in held)


def test_a_held_out_window_ranks_unseen_candidates_labelled_by_its_held_out_events(
    genre_world, fast_params
):
    """The sources of a random window are fitted on what it keeps: its candidates are items
    the user has not rated *there*, and its positives are exactly its held-out ratings."""
    events = _sorted(genre_world[0])
    model = Recommender(random_state=0, use_features=False).set_params(**fast_params)
    window = next(label_windows(events, "random", 0.2, 1, np.random.default_rng(0)))
    catalogue = np.unique(events[ITEM_ID].to_numpy(dtype=np.int64))
    layout = FeatureLayout(tuple(name for name, _ in model.sources))
    parts = model._window_parts(window, catalogue, np.random.default_rng(0), None, layout)
    pairs = pd.concat([frame for frame, _ in parts], ignore_index=True)
    kept = set(zip(window.history[USER_ID], window.history[ITEM_ID], strict=True))
    held = set(zip(window.labels[USER_ID], window.labels[ITEM_ID], strict=True))
    candidates = list(zip(pairs[USER_ID], pairs[ITEM_ID], strict=True))
    assert not kept & set(candidates)
    positives = {pair for pair, y in zip(candidates, pairs["label"], strict=True) if y > 0}
    assert positives
    assert positives <= held


def test_the_time_only_model_is_still_one_parameter_away(genre_world, fast_params):
    events, users, items = genre_world
    model = Recommender(random_state=0, ranker_holdout="time").set_params(**fast_params)
    train = model.training_set(events, users, items)
    assert all(cutoff < feature_snapshot_end(events) for cutoff in train.cutoffs)


def test_a_negative_number_of_random_windows_is_refused(genre_world):
    with pytest.raises(ValidationError, match="ranker_random_windows"):
        Recommender(ranker_random_windows=-1).fit(genre_world[0])

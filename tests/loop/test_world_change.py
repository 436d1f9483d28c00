"""A change of the world at a day: the simulator's users act on it, nothing else sees it."""

from __future__ import annotations

import numpy as np
import pytest

from reelrank.data.synthetic import SyntheticConfig, generate_world
from reelrank.exceptions import ValidationError
from reelrank.loop.simulator import Row, Simulator
from reelrank.loop.world_change import GenreShift
from reelrank.schema import GENRE_VOCAB


@pytest.fixture(scope="module")
def truth():
    return generate_world(SyntheticConfig(n_users=60, n_items=80, n_events=1_500, seed=5)).truth


class FixedRows:
    """Every user gets items 1..10."""

    def recommend(self, user_id: int, k: int, request_id: str) -> Row:
        return Row(request_id, user_id, tuple(range(1, k + 1)))

    def send(self, events) -> None:
        pass

    def end_day(self) -> None:
        pass


def test_a_bad_change_is_refused_with_what_to_do() -> None:
    with pytest.raises(ValidationError, match="unknown genre 'Dramas'; choose one of"):
        GenreShift("Dramas", -1.0, 2)
    with pytest.raises(ValidationError, match="finite number"):
        GenreShift("Drama", float("nan"), 2)
    with pytest.raises(ValidationError, match="day -1 must be 0 or later"):
        GenreShift("Drama", -1.0, -1)


def test_the_offset_is_the_shift_times_the_genre_weight_from_the_day_on(truth) -> None:
    change = GenreShift("Drama", -2.0, 3)
    items = np.arange(1, truth.n_items + 1)
    assert not change.offset(truth, items, 2).any()  # before the day: the world as generated
    weight = truth.item_genres[:, GENRE_VOCAB.index("Drama")]
    assert np.allclose(change.offset(truth, items, 3), -2.0 * weight)
    assert np.allclose(change.offset(truth, items, 9), -2.0 * weight)
    assert (weight > 0).any()
    assert (weight == 0).any()


def test_the_simulated_users_prefer_the_changed_world_from_its_day(truth) -> None:
    change = GenreShift("Drama", -2.0, 1)
    plain = Simulator(truth, FixedRows(), seed=1)
    changed = Simulator(truth, FixedRows(), seed=1, change=change)
    items = np.arange(1, 11)
    user = 3
    assert np.array_equal(plain.preference(user, items, 0), changed.preference(user, items, 0))
    moved = changed.preference(user, items, 1) - plain.preference(user, items, 1)
    assert np.allclose(moved, change.offset(truth, items, 1))
    # A visit's day comes from its time: a visit on day 1 sees the change.
    row = FixedRows().recommend(user, 10, "r")
    draws = np.full((10, 3), 0.999)
    day_one = changed.behave(row, changed.day_start(1), draws)
    assert np.allclose(day_one.preference, changed.preference(user, items, 1))
    day_zero = changed.behave(row, changed.day_start(0), draws)
    assert np.allclose(day_zero.preference, plain.preference(user, items, 0))

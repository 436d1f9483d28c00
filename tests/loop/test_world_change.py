"""A change of the world at a day: the simulator's users act on it, nothing else sees it."""

from __future__ import annotations

import numpy as np
import pytest

from reelrank.data.synthetic import SyntheticConfig, generate_world
from reelrank.exceptions import ValidationError
from reelrank.loop.simulator import Row, Simulator
from reelrank.loop.world_change import GenreShift, ReturningCohort, describe, world_change
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


# ---------------------------------------------------------------- a returning cohort
def test_a_bad_cohort_is_refused_with_what_to_do(truth) -> None:
    with pytest.raises(ValidationError, match="cohort of 0 users; give 1 or more"):
        ReturningCohort("Drama", 1.0, 2, users=0)
    with pytest.raises(ValidationError, match=r"cohort share 1.5 .* must be in \(0, 1\]"):
        ReturningCohort("Drama", 1.0, 2, share=1.5)
    with pytest.raises(ValidationError, match="unknown genre 'Dramas'"):
        ReturningCohort("Dramas", 1.0, 2)
    lapsed = int((truth.user_end_day < truth.span_days).sum())
    with pytest.raises(ValidationError, match=f"the world has {lapsed}; give --cohort {lapsed}"):
        ReturningCohort("Drama", 1.0, 2, users=lapsed + 1).members(truth)


def test_the_cohort_is_lapsed_users_and_only_they_change(truth) -> None:
    cohort = ReturningCohort("Comedy", 2.0, 3, users=5, seed=1)
    members = cohort.members(truth)
    assert len(members) == 5 == len(set(members.tolist()))
    assert (truth.user_end_day[members - 1] < truth.span_days).all()  # they had lapsed
    assert np.array_equal(members, ReturningCohort("Drama", 1.0, 0, users=5, seed=1).members(truth))
    assert not np.array_equal(members, ReturningCohort("Comedy", 2.0, 3, 5, seed=2).members(truth))
    items = np.arange(1, truth.n_items + 1)
    weight = truth.item_genres[:, GENRE_VOCAB.index("Comedy")]
    member = int(members[0])
    assert np.allclose(cohort.offset(truth, items, 3, member), 2.0 * weight)
    assert not cohort.offset(truth, items, 2, member).any()  # before its day
    stayer = int(np.flatnonzero(truth.user_end_day >= truth.span_days)[0]) + 1
    assert not cohort.offset(truth, items, 5, stayer).any()  # nobody else changes


def test_from_its_day_the_cohort_takes_its_share_of_the_visits(truth) -> None:
    cohort = ReturningCohort("Drama", 1.0, 2, users=8, share=0.25)
    plain = Simulator(truth, FixedRows(), seed=3)
    changed = Simulator(truth, FixedRows(), seed=3, change=cohort)
    members = set(cohort.members(truth).tolist())
    for day in (0, 1):  # before the change: the same visits as the world as generated
        users, seconds = changed.arrivals(day, 20)
        assert np.array_equal(users, plain.arrivals(day, 20)[0])
        assert not members & set(users.tolist())
    users, seconds = changed.arrivals(2, 20)
    assert len(users) == 20 == len(set(users.tolist()))
    assert (np.diff(seconds) >= 0).all()
    returning = [user for user in users.tolist() if user in members]
    assert len(returning) == 5  # round(0.25 * 20)
    regular = set(plain.active_users()[0].tolist())
    assert set(users.tolist()) - members <= regular
    # A genre shift never changes who visits: the genre study's arrivals are unchanged.
    shifted = Simulator(truth, FixedRows(), seed=3, change=GenreShift("Drama", -2.0, 0))
    assert np.array_equal(shifted.arrivals(4, 20)[0], plain.arrivals(4, 20)[0])


def test_a_member_acts_on_the_changed_taste_through_a_visit(truth) -> None:
    cohort = ReturningCohort("Drama", 3.0, 1, users=3)
    simulator = Simulator(truth, FixedRows(), seed=1, change=cohort)
    member = int(cohort.members(truth)[0])
    row = FixedRows().recommend(member, 10, "r")
    visit = simulator.behave(row, simulator.day_start(1), np.full((10, 3), 0.999))
    items = np.arange(1, 11)
    expected = truth.relevance(np.full(10, member), items) + cohort.offset(truth, items, 1, member)
    assert np.allclose(visit.preference, expected)


def test_a_change_is_rebuilt_from_its_record() -> None:
    for change in (GenreShift("Drama", -1.5, 2), ReturningCohort("Horror", 1.5, 3, 50, 0.4, 2)):
        assert world_change(change.record()) == change
        assert world_change(change.record()).on_day(9).day == 9
    assert world_change({"genre": "Drama", "shift": -1.0, "day": 1}) == GenreShift("Drama", -1.0, 1)
    with pytest.raises(ValidationError, match="unknown kind 'meteor'"):
        world_change({"kind": "meteor", "day": 1})
    with pytest.raises(ValidationError, match=r"genre_shift .*unexpected keyword argument 'users'"):
        world_change({"kind": "genre_shift", "genre": "Drama", "shift": 1.0, "day": 1, "users": 3})
    assert "5 lapsed users come back (30% of each day's visits)" in describe(
        ReturningCohort("Drama", 1.0, 2, users=5).record()
    )
    assert describe(GenreShift("Drama", -1.5, 2).record()) == (
        "from day 2 on, the true preference for Drama moves by -1.50 sd (a title wholly of "
        "the genre)"
    )

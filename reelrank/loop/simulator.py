"""Simulated users who act on a synthetic world's ground truth, through the real service.

The simulator is the only part of the loop that reads the truth
(:class:`~reelrank.data.synthetic.GroundTruth`); the service it talks to never does. It
speaks to the service through a :class:`RowClient`: over HTTP
(:class:`reelrank.loop.http.HttpRowClient`) or in process (``serving.inprocess``, which
calls ``RecommendationService.recommend`` and the log writers directly).

**Clock.** Day ``d`` of a simulation is the ``d``-th whole day after the world's span
(day 0 starts at ``start + span_days``); events carry that simulated time, so they extend
the world's timeline (the service stamps its own wall clock on what it logs).

**Arrivals.** The users still active at the end of the span (those who did not churn)
come back at the world's own rates: a user's weight is their events per active day in the
world. Each day ``n`` of them (all, if fewer) arrive, drawn without replacement in
proportion to those weights, at uniform times of the day; each visit requests the row of
``k`` once.

**Position-based examination model.** A user examines the item at position ``p``
(1-based) with probability ``p ** -examination_decay`` (1, 1/2, 1/3, ... by default),
independently of the other positions and of the item.

**Clicks and plays from the true preference** ``pref`` (standardised: mean 0, sd 1 over
all user-item pairs): an examined item is clicked with probability
``sigmoid(click_intercept + click_slope * pref)`` and a click becomes a play with
probability ``sigmoid(play_intercept + play_slope * pref)`` (defaults: -1.5, 1.0 and
0.5, 1.0: an item of average appeal is clicked 18 % of the times it is examined and
played after 62 % of its clicks; at ``pref = 2`` 62 % and 92 %). An item the user already
played in this simulation is never clicked again. So the expected plays of a shown item
are ``examination(p) * P(click) * P(play)``, what :func:`expected_plays` computes.

**Feedback.** For every visit the client posts one ``impression`` event per shown
position (the row was rendered) at the visit's time, a ``click`` ``seconds_per_position *
p`` seconds later and a ``play`` ``seconds_to_play`` after the click, each naming the
request id and the position.

**A world change** (:mod:`reelrank.loop.world_change`). The true preference of a visit's
items is the world's plus the change's offset for the visiting user on the visit's day
(:meth:`Simulator.preference`), from the change's day on: the users act on the changed
world, and everything measured of a visit (its expected plays) is of the changed world.
A :class:`~reelrank.loop.world_change.ReturningCohort` also takes its share of each day's
visits from its members (lapsed users, never among the visitors otherwise), drawn
uniformly without replacement from a stream of their own; the other visits are drawn as
above, and the day's visits are interleaved in a random order.

**The ideal row.** With ``ideal=True`` every visit also carries the expected plays of the
best row the user could have been shown (:meth:`Simulator.ideal_row`): what the world
offers that user that day, whatever the service does. A change that makes the world worse
lowers it too; the served row's share of it is what a policy, and a retrain, can move.

Requests are bounded: at most ``max_requests`` over the whole run and, if ``max_rate`` is
set, at most that many per second of wall-clock time; the run ends after its days.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final, Protocol

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.special import expit

from reelrank.config import Settings
from reelrank.data.synthetic import GroundTruth
from reelrank.exceptions import ReelRankError, ValidationError
from reelrank.loop.world_change import WorldChange

FloatArray = NDArray[np.float64]
SECONDS_PER_DAY: Final = 86_400
_STREAM_ARRIVALS: Final = 0
_STREAM_BEHAVIOUR: Final = 1
_STREAM_COHORT: Final = 2


def world_truth(settings: Settings) -> GroundTruth:
    """The ground truth of the synthetic world the lake was built from (the simulator's
    and the evaluation's alone)."""
    from pathlib import Path

    from reelrank.data.ingest import read_summary

    summary = read_summary(settings.lake_path)
    if summary.get("dataset") != "synthetic":
        raise ReelRankError(
            "simulated users act on a synthetic world's ground truth; the lake holds "
            f"{summary.get('dataset')!r}. Run `reelrank run --dataset synthetic` first."
        )
    return GroundTruth.load(Path(summary["source"]))


@dataclass(frozen=True)
class UserModel:
    """How a simulated user examines a row and responds (see the module docstring)."""

    examination_decay: float = 1.0
    click_intercept: float = -1.5
    click_slope: float = 1.0
    play_intercept: float = 0.5
    play_slope: float = 1.0
    seconds_per_position: float = 8.0
    seconds_to_play: float = 20.0

    def examination(self, positions: NDArray[Any]) -> FloatArray:
        """P(examine) of each 1-based position."""
        return np.asarray(positions, dtype=np.float64) ** -self.examination_decay

    def click_probability(self, preference: FloatArray) -> FloatArray:
        return np.asarray(expit(self.click_intercept + self.click_slope * preference))

    def play_probability(self, preference: FloatArray) -> FloatArray:
        return np.asarray(expit(self.play_intercept + self.play_slope * preference))


def user_histories(events: pd.DataFrame) -> dict[int, frozenset[int]]:
    """The items of each user's events (``user_id``, ``item_id`` columns): what the service
    never shows them again, for :attr:`Simulator.history`."""
    sets = events.groupby("user_id", sort=False)["item_id"].agg(frozenset)
    return dict(zip(sets.index.to_numpy(dtype=np.int64).tolist(), sets, strict=True))


def expected_plays(
    model: UserModel, preference: FloatArray, positions: NDArray[Any], eligible: NDArray[Any]
) -> FloatArray:
    """Expected plays of each shown item: examination x click x play (0 if not eligible)."""
    probability = (
        model.examination(positions)
        * model.click_probability(preference)
        * model.play_probability(preference)
    )
    return np.where(eligible, probability, 0.0)


@dataclass(frozen=True)
class Row:
    """What the service answered for one visit: the items in position order."""

    request_id: str
    user_id: int
    item_ids: tuple[int, ...]
    model_version: str | None = None
    arm: str | None = None


class RowClient(Protocol):
    """How the simulator reaches the service (HTTP or in process)."""

    def recommend(self, user_id: int, k: int, request_id: str) -> Row:
        """The row for ``user_id``, requested under ``request_id``."""
        ...

    def send(self, events: Sequence[dict[str, Any]]) -> None:
        """Post feedback events (a visit's, or a day's, at once)."""
        ...

    def end_day(self) -> None:
        """Everything of the day has been sent (an in-process client writes it out)."""
        ...


@dataclass(frozen=True)
class Visit:
    """One user's visit: what they were shown and what they did (arrays by position)."""

    request_id: str
    user_id: int
    time: pd.Timestamp
    item_ids: tuple[int, ...]
    preference: FloatArray
    eligible: NDArray[np.bool_]
    examined: NDArray[np.bool_]
    clicked: NDArray[np.bool_]
    played: NDArray[np.bool_]
    model_version: str | None = None
    arm: str | None = None
    ideal: FloatArray | None = None
    """Expected plays by position of the best row the user could have been shown instead
    (:meth:`Simulator.ideal_row`); ``None`` when not computed."""


@dataclass
class Simulator:
    """Runs simulated days against a :class:`RowClient` (see the module docstring).

    Args:
        truth: the world's ground truth (the simulator's alone).
        client: the way to the service.
        model: the users' examination and response model.
        k: items requested per visit.
        seed: the root of every random stream (arrivals, behaviour, request ids).
        max_requests: stop after this many requests in all (None: no cap).
        max_rate: at most this many requests per wall-clock second (None: no limit).
        change: a change of the world from a given day on (None: the world as generated;
            :mod:`reelrank.loop.world_change`).
        history: the items each user had before the simulation (the lake's events), which
            the service never shows again; the ideal row leaves them out too.
        ideal: also compute each visit's ideal row (:meth:`ideal_row`).
    """

    truth: GroundTruth
    client: RowClient
    model: UserModel = field(default_factory=UserModel)
    k: int = 10
    seed: int = 0
    max_requests: int | None = None
    max_rate: float | None = None
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    change: WorldChange | None = None
    history: Mapping[int, frozenset[int]] = field(default_factory=dict)
    ideal: bool = False
    requests: int = 0
    played: dict[int, set[int]] = field(default_factory=dict)
    _next_slot: float = 0.0

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValidationError(f"the simulator requests k >= 1 items (got {self.k}).")

    # ------------------------------------------------------------------ the world
    def day_start(self, day: int) -> pd.Timestamp:
        """The first instant of simulated day ``day`` (day 0: the end of the span)."""
        return self.truth.start + pd.Timedelta(days=self.truth.span_days + day)

    def day_of(self, when: pd.Timestamp) -> int:
        """The simulated day ``when`` falls in."""
        return int((when - self.day_start(0)) // pd.Timedelta(days=1))

    def preference(self, user_id: int, item_ids: NDArray[np.int64], day: int) -> FloatArray:
        """The true preference of ``user_id`` for ``item_ids`` on simulated day ``day``."""
        if not len(item_ids):
            return np.zeros(0)
        preference = self.truth.relevance(np.full(len(item_ids), user_id), item_ids)
        if self.change is not None:
            preference = preference + self.change.offset(self.truth, item_ids, day, user_id)
        return preference

    def active_users(self) -> tuple[NDArray[np.int64], FloatArray]:
        """Ids of the users still active at the end of the span and their daily rates."""
        end = self.truth.user_end_day
        active = np.flatnonzero(end >= self.truth.span_days)
        days = (end - self.truth.user_start_day)[active].clip(min=1)
        rate = self.truth.user_event_counts[active] / days
        return (active + 1).astype(np.int64), rate.astype(np.float64)

    def arrivals(self, day: int, n: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """``(user ids, seconds into the day)`` of day ``day``'s visits, in time order."""
        rng = np.random.default_rng([self.seed, _STREAM_ARRIVALS, day])
        returning = self.change.returning(self.truth, day, n) if self.change else 0
        users, rate = self.active_users()
        eligible = rate > 0
        users, rate = users[eligible], rate[eligible]
        regular = min(n - returning, len(users))
        keys = np.log(rate) + rng.gumbel(size=len(users))  # Gumbel-top-n: weighted, distinct
        chosen = users[np.argsort(-keys, kind="stable")[:regular]]
        if returning and self.change is not None:
            cohort = np.random.default_rng([self.seed, _STREAM_COHORT, day])
            members = cohort.choice(self.change.members(self.truth), returning, replace=False)
            chosen = cohort.permutation(np.concatenate([chosen, members.astype(np.int64)]))
        seconds = np.sort(rng.integers(0, SECONDS_PER_DAY, size=len(chosen)))
        return chosen, seconds

    # ------------------------------------------------------------------ a visit
    def _throttle(self) -> None:
        if self.max_rate is None:
            return
        now = self.monotonic()
        if now < self._next_slot:
            self.sleep(self._next_slot - now)
            now = self._next_slot
        self._next_slot = now + 1.0 / self.max_rate

    def ideal_row(self, user_id: int, n: int, day: int) -> FloatArray:
        """Expected plays by position (length ``n``) of the best row of ``n`` the user could
        have been shown on ``day``: the released items they neither had before the
        simulation nor played in it, of highest true preference (the changed world's, from
        the change's day), in that order. Examination falls with the position and a play's
        probability rises with the preference, so that order maximises the row's expected
        plays (the rearrangement inequality): no policy's row can be worth more."""
        released = np.flatnonzero(self.truth.item_release_day <= self.truth.span_days + day)
        items = (released + 1).astype(np.int64)
        blocked = self.played.get(user_id, set()) | self.history.get(user_id, frozenset())
        if blocked:
            items = items[~np.isin(items, np.fromiter(blocked, np.int64, len(blocked)))]
        preference = self.preference(user_id, items, day)
        best = -np.sort(-preference)[:n]
        out = np.zeros(n)
        out[: len(best)] = expected_plays(
            self.model, best, np.arange(1, len(best) + 1), np.ones(len(best), dtype=bool)
        )
        return out

    def behave(self, row: Row, when: pd.Timestamp, draws: FloatArray) -> Visit:
        """What the user does with ``row`` (``draws``: uniforms, shape ``(k, 3)``)."""
        items = np.asarray(row.item_ids, dtype=np.int64)
        n = len(items)
        positions = np.arange(1, n + 1)
        day = self.day_of(when)
        preference = self.preference(row.user_id, items, day)
        ideal = self.ideal_row(row.user_id, n, day) if self.ideal else None
        seen = self.played.setdefault(row.user_id, set())
        eligible = np.array([int(item) not in seen for item in items], dtype=bool)
        examined = draws[:n, 0] < self.model.examination(positions)
        clicked = examined & eligible & (draws[:n, 1] < self.model.click_probability(preference))
        played = clicked & (draws[:n, 2] < self.model.play_probability(preference))
        seen.update(items[played].tolist())
        return Visit(
            row.request_id, row.user_id, when, row.item_ids, preference, eligible,
            examined, clicked, played, row.model_version, row.arm, ideal,
        )  # fmt: skip

    def events(self, visit: Visit) -> list[dict[str, Any]]:
        """The feedback events the client posts for ``visit`` (see the module docstring)."""
        base = {"user_id": visit.user_id, "request_id": visit.request_id}
        if visit.model_version is not None:
            base["model_version"] = visit.model_version
        out: list[dict[str, Any]] = []
        start = visit.time.to_pydatetime()
        shown = start.isoformat()
        for index, item in enumerate(visit.item_ids):
            position = index + 1
            slot = {**base, "item_id": int(item), "position": position}
            out.append({**slot, "event": "impression", "timestamp": shown})
            if visit.clicked[index]:
                clicked_at = start + timedelta(seconds=self.model.seconds_per_position * position)
                out.append({**slot, "event": "click", "timestamp": clicked_at.isoformat()})
                if visit.played[index]:
                    played_at = clicked_at + timedelta(seconds=self.model.seconds_to_play)
                    out.append({**slot, "event": "play", "timestamp": played_at.isoformat()})
        return out

    # ------------------------------------------------------------------ days
    def run_day(self, day: int, n_users: int) -> list[Visit]:
        """Simulate day ``day`` with ``n_users`` arrivals (fewer if the cap is reached)."""
        users, seconds = self.arrivals(day, n_users)
        behaviour = np.random.default_rng([self.seed, _STREAM_BEHAVIOUR, day])
        draws = behaviour.random((len(users), self.k, 3))
        start = self.day_start(day)
        visits: list[Visit] = []
        for index, (user, offset) in enumerate(zip(users.tolist(), seconds.tolist(), strict=True)):
            if self.max_requests is not None and self.requests >= self.max_requests:
                break
            self._throttle()
            request_id = f"sim-{self.seed}-d{day}-{index}"
            row = self.client.recommend(int(user), self.k, request_id)
            self.requests += 1
            visit = self.behave(row, start + pd.Timedelta(seconds=offset), draws[index])
            self.client.send(self.events(visit))
            visits.append(visit)
        self.client.end_day()
        return visits

    def run(self, days: int, n_users: int, start_day: int = 0) -> list[list[Visit]]:
        """Days ``start_day .. start_day + days - 1``; one list of visits per day."""
        return [self.run_day(start_day + offset, n_users) for offset in range(days)]


VISIT_COLUMNS: Final = (
    "request_id", "user_id", "position", "item_id", "preference", "eligible", "examined",
    "clicked", "played", "expected_plays", "ideal_expected_plays", "arm",
)  # fmt: skip


def visits_frame(visits: Sequence[Visit], model: UserModel) -> pd.DataFrame:
    """One row per shown item (:data:`VISIT_COLUMNS`): request, user, position, item, its
    true preference, whether it was eligible, examined, clicked and played, its expected
    plays, the expected plays of the ideal row's item at that position (NaN when the
    simulator did not compute it) and the arm that served it."""
    if not visits:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in VISIT_COLUMNS})
    sizes = np.array([len(v.item_ids) for v in visits])
    positions = np.concatenate([np.arange(1, n + 1) for n in sizes])
    preference = np.concatenate([v.preference for v in visits])
    eligible = np.concatenate([v.eligible for v in visits])
    return pd.DataFrame(
        {
            "request_id": np.repeat([v.request_id for v in visits], sizes),
            "user_id": np.repeat([v.user_id for v in visits], sizes).astype(np.int64),
            "position": positions,
            "item_id": np.concatenate([np.asarray(v.item_ids, dtype=np.int64) for v in visits]),
            "preference": preference,
            "eligible": eligible,
            "examined": np.concatenate([v.examined for v in visits]),
            "clicked": np.concatenate([v.clicked for v in visits]),
            "played": np.concatenate([v.played for v in visits]),
            "expected_plays": expected_plays(model, preference, positions, eligible),
            "ideal_expected_plays": np.concatenate(
                [
                    v.ideal if v.ideal is not None else np.full(n, np.nan)
                    for v, n in zip(visits, sizes, strict=True)
                ]
            ),
            "arm": np.repeat(np.array([v.arm for v in visits], dtype=object), sizes),
        }
    )

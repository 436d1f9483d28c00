"""A change of the synthetic world at a given simulated day: the drift the monitor must catch.

Two kinds, both from simulated day ``day`` on (:func:`world_change` builds either from its
record):

* :class:`GenreShift`, *concept drift*: what every user likes changes, who visits does not.
* :class:`ReturningCohort`, *population drift*: a cohort of lapsed users comes back (a
  win-back campaign) with tastes of its own; who visits changes, and so do the features
  the service reads for them.

:class:`GenreShift` moves the *true* preference of every user for the titles of one genre,
from simulated day ``day`` on: an item's preference changes by ``shift`` times the item's
weight on the genre (:attr:`~reelrank.data.synthetic.GroundTruth.item_genres`, each row
sums to 1, so a pure drama moves by the whole ``shift`` and a drama-comedy by half), in the
standardised units of :meth:`~reelrank.data.synthetic.GroundTruth.relevance` (sd 1 over all
pairs). A negative shift is a genre falling out of favour: the users' clicks and plays on
it fall (:class:`~reelrank.loop.simulator.UserModel`), while the model, trained before the
change, keeps showing it.

Only the simulator applies the change (it is part of the ground truth); the service, the
feature pipeline and the training pipeline see only what the users then do.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Final, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from reelrank.data.synthetic import GroundTruth
from reelrank.exceptions import ValidationError
from reelrank.schema import GENRE_VOCAB


@dataclass(frozen=True)
class GenreShift:
    """From simulated day ``day`` on, the true preference for ``genre`` moves by ``shift``.

    Attributes:
        genre: one of :data:`~reelrank.schema.GENRE_VOCAB` (e.g. ``"Drama"``).
        shift: the change of preference of a title wholly of that genre, in standard
            deviations of the world's preference (negative: the genre falls out of favour).
        day: the first simulated day the change holds (0: the day after the world's span).
    """

    genre: str
    shift: float
    day: int

    def __post_init__(self) -> None:
        if self.genre not in GENRE_VOCAB:
            raise ValidationError(
                f"world change: unknown genre {self.genre!r}; choose one of "
                f"{', '.join(GENRE_VOCAB)}."
            )
        if not math.isfinite(self.shift) or abs(self.shift) > 10:
            raise ValidationError(
                f"world change: shift {self.shift!r} must be a finite number of preference "
                "standard deviations between -10 and 10."
            )
        if self.day < 0:
            raise ValidationError(f"world change: day {self.day} must be 0 or later.")

    @property
    def genre_index(self) -> int:
        return GENRE_VOCAB.index(self.genre)

    def active(self, day: int) -> bool:
        """Whether the change holds on simulated day ``day``."""
        return day >= self.day

    def offset(
        self, truth: GroundTruth, item_ids: ArrayLike, day: int, user_id: int | None = None
    ) -> NDArray[np.float64]:
        """The change of true preference of each of ``item_ids`` on simulated day ``day``
        (the same for every user)."""
        items = truth.item_index(np.asarray(item_ids, dtype=np.int64))
        if not self.active(day):
            return np.zeros(len(items), dtype=np.float64)
        return self.shift * truth.item_genres[items, self.genre_index]

    def returning(self, truth: GroundTruth, day: int, n: int) -> int:
        """How many of ``n`` visits of ``day`` are a returning cohort's: none."""
        return 0

    def members(self, truth: GroundTruth) -> NDArray[np.int64]:
        """The users the change brings back: none."""
        return np.zeros(0, dtype=np.int64)

    def on_day(self, day: int) -> GenreShift:
        """The same change from simulated day ``day`` on."""
        return replace(self, day=day)

    def share_of_catalogue(self, truth: GroundTruth) -> float:
        """The genre's weight summed over the catalogue, as a share of all titles."""
        return float(truth.item_genres[:, self.genre_index].mean())

    def record(self) -> dict[str, Any]:
        return {"kind": GENRE_SHIFT, **asdict(self)}


GENRE_SHIFT: Final = "genre_shift"
RETURNING_COHORT: Final = "returning_cohort"
KINDS: Final = (GENRE_SHIFT, RETURNING_COHORT)
_COHORT_STREAM: Final = 7


@dataclass(frozen=True)
class ReturningCohort:
    """From simulated day ``day`` on, ``users`` lapsed users come back with a taste of their own.

    The cohort is drawn (``seed``) from the world's lapsed users: those whose activity ended
    before the end of its span (:attr:`~reelrank.data.synthetic.GroundTruth.user_end_day`),
    so the lake knows them and their old history, but the simulator's visitors
    (the users still active at the end of the span) never included them. From ``day`` on,
    ``share`` of each day's visits are the cohort's, drawn uniformly among its members
    without replacement (the rest as before), and the members' true preference for
    ``genre`` has moved by ``shift``, as :class:`GenreShift` moves everyone's (a positive
    shift: they came back for that genre). Nobody else changes.

    What the service meets is population drift: users whose last events are months old,
    whose recent-activity features read zero and whose history no longer says what they
    like. The served window's features move with them (the monitor's PSI), and so does the
    play rate.

    Attributes:
        genre: one of :data:`~reelrank.schema.GENRE_VOCAB`, the genre the cohort came for.
        shift: the change of the members' preference for a title wholly of that genre
            (standard deviations of the world's preference).
        day: the first simulated day the cohort visits.
        users: the cohort's size (at most the world's lapsed users).
        share: the share of each day's visits that are the cohort's, in ``(0, 1]``.
        seed: which lapsed users form the cohort.
    """

    genre: str
    shift: float
    day: int
    users: int = 100
    share: float = 0.3
    seed: int = 0

    def __post_init__(self) -> None:
        _ = self.taste  # the genre shift's rules validate the shared fields
        if self.users < 1:
            raise ValidationError(f"world change: a cohort of {self.users} users; give 1 or more.")
        if not 0 < self.share <= 1:
            raise ValidationError(
                f"world change: cohort share {self.share!r} of each day's visits must be in (0, 1]."
            )

    @property
    def taste(self) -> GenreShift:
        """The members' change of taste: a :class:`GenreShift` that holds for them alone."""
        return GenreShift(self.genre, self.shift, self.day)

    def active(self, day: int) -> bool:
        return day >= self.day

    def members(self, truth: GroundTruth) -> NDArray[np.int64]:
        """The cohort's user ids, in id order.

        Raises:
            ValidationError: the world has fewer lapsed users than ``users``.
        """
        lapsed = np.flatnonzero(truth.user_end_day < truth.span_days).astype(np.int64) + 1
        if len(lapsed) < self.users:
            raise ValidationError(
                f"world change: a cohort of {self.users} lapsed users, but the world has "
                f"{len(lapsed)}; give --cohort {len(lapsed)} or fewer."
            )
        chosen = np.random.default_rng([self.seed, _COHORT_STREAM]).permutation(lapsed)
        return np.sort(chosen[: self.users])

    def is_member(self, truth: GroundTruth, user_id: int) -> bool:
        """Whether ``user_id`` is one of the cohort (a permutation of the few lapsed users:
        microseconds, so it is not cached)."""
        return bool(np.isin(user_id, self.members(truth)))

    def offset(
        self, truth: GroundTruth, item_ids: ArrayLike, day: int, user_id: int | None = None
    ) -> NDArray[np.float64]:
        """The change of ``user_id``'s true preference for ``item_ids`` on ``day``: the
        shift times each item's weight on the genre for a member, from the day on; 0
        otherwise."""
        if user_id is not None and self.active(day) and self.is_member(truth, user_id):
            return self.taste.offset(truth, item_ids, day)
        return np.zeros(len(truth.item_index(np.asarray(item_ids, dtype=np.int64))))

    def returning(self, truth: GroundTruth, day: int, n: int) -> int:
        """How many of ``n`` visits of ``day`` are the cohort's (0 before its day)."""
        if not self.active(day):
            return 0
        return min(round(self.share * n), self.users)

    def on_day(self, day: int) -> ReturningCohort:
        return replace(self, day=day)

    def record(self) -> dict[str, Any]:
        return {"kind": RETURNING_COHORT, **asdict(self)}


class WorldChange(Protocol):
    """What the simulator asks of a change (:class:`GenreShift`, :class:`ReturningCohort`)."""

    @property
    def day(self) -> int: ...

    def active(self, day: int) -> bool: ...

    def offset(
        self, truth: GroundTruth, item_ids: ArrayLike, day: int, user_id: int | None = None
    ) -> NDArray[np.float64]: ...

    def returning(self, truth: GroundTruth, day: int, n: int) -> int: ...

    def members(self, truth: GroundTruth) -> NDArray[np.int64]: ...

    def on_day(self, day: int) -> WorldChange: ...

    def record(self) -> dict[str, Any]: ...


def world_change(record: dict[str, Any]) -> GenreShift | ReturningCohort:
    """The change a :meth:`record` (or a config's ``change`` fields) describes; without a
    ``kind``, a :class:`GenreShift` (the records written before there were two kinds).

    Raises:
        ValidationError: an unknown kind, or fields the kind does not have.
    """
    fields = dict(record)
    kind = fields.pop("kind", GENRE_SHIFT)
    classes = {GENRE_SHIFT: GenreShift, RETURNING_COHORT: ReturningCohort}
    if kind not in classes:
        raise ValidationError(f"world change: unknown kind {kind!r}; choose one of {KINDS}.")
    try:
        return classes[kind](**fields)
    except TypeError as error:
        raise ValidationError(f"world change: {kind} {error}.") from error


def describe(record: dict[str, Any]) -> str:
    """One line of what a change's :meth:`record` does, for the results page."""
    if record.get("kind", GENRE_SHIFT) == RETURNING_COHORT:
        return (
            f"from day {record['day']} on, {record['users']} lapsed users come back "
            f"({record['share']:.0%} of each day's visits), their true preference for "
            f"{record['genre']} moved by {record['shift']:+.2f} sd (a title wholly of the genre)"
        )
    return (
        f"from day {record['day']} on, the true preference for {record['genre']} moves by "
        f"{record['shift']:+.2f} sd (a title wholly of the genre)"
    )

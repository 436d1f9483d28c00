"""A change of the synthetic world at a given simulated day: the drift the monitor must catch.

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
from dataclasses import asdict, dataclass
from typing import Any

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

    def offset(self, truth: GroundTruth, item_ids: ArrayLike, day: int) -> NDArray[np.float64]:
        """The change of true preference of each of ``item_ids`` on simulated day ``day``."""
        items = truth.item_index(np.asarray(item_ids, dtype=np.int64))
        if not self.active(day):
            return np.zeros(len(items), dtype=np.float64)
        return self.shift * truth.item_genres[items, self.genre_index]

    def share_of_catalogue(self, truth: GroundTruth) -> float:
        """The genre's weight summed over the catalogue, as a share of all titles."""
        return float(truth.item_genres[:, self.genre_index].mean())

    def record(self) -> dict[str, Any]:
        return {"kind": "genre_shift", **asdict(self)}

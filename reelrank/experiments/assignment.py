"""Assignment of users to experiment arms: a stable hash, so a user sees one arm throughout.

``bucket(salt, user_id)`` is the first 8 bytes of BLAKE2b over ``"<salt>:<user_id>"`` read
as an unsigned integer and divided by ``2**64``: a number in ``[0, 1)`` that depends on the
salt and the user only (not on the process, the model version or a reload), uniform over
users for any salt. The arms split ``[0, 1)`` in their declared order by their normalised
weights; a user goes to the arm whose interval holds their bucket. A new salt reshuffles
every user (start a new experiment with a new salt, so it does not inherit the last one's
split).
"""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass, field
from typing import Final

from reelrank.experiments.config import Arm, Experiment

TWO_TO_64: Final = float(2**64)


def bucket(salt: str, user_id: int) -> float:
    """The user's stable position in ``[0, 1)`` under ``salt``."""
    digest = hashlib.blake2b(f"{salt}:{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / TWO_TO_64


@dataclass(frozen=True)
class Assigner:
    """Assigns users to the arms of one experiment (boundaries computed once)."""

    experiment: Experiment
    bounds: tuple[float, ...] = field(init=False)
    """Upper ends of every arm's interval but the last (which ends at 1)."""

    def __post_init__(self) -> None:
        shares = list(self.experiment.split.values())
        cumulative: list[float] = []
        total = 0.0
        for share in shares[:-1]:
            total += share
            cumulative.append(total)
        object.__setattr__(self, "bounds", tuple(cumulative))

    def arm(self, user_id: int) -> Arm:
        """The arm ``user_id`` is in."""
        position = bucket(self.experiment.hash_salt, user_id)
        return self.experiment.arms[bisect.bisect_right(self.bounds, position)]


def assign(experiment: Experiment, user_id: int) -> str:
    """The name of the arm ``user_id`` is in (see the module docstring)."""
    return Assigner(experiment).arm(user_id).name

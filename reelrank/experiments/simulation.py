"""An online experiment run on the synthetic world, next to its true effect.

:func:`simulate_experiment` runs an A/A or A/B test with the loop's simulated users
(:class:`~reelrank.loop.simulator.Simulator`): every visit is served by the user's arm,
and the user's plays and clicks are what :func:`~reelrank.experiments.abtest.analyse`
analyses, exactly as it would analyse logs. What a real test never has comes from the
client: for every visit, the slate **each** arm would have served (the counterfactual
slates, :class:`ArmsClient`). With the world's true preferences the expected plays of each
arm's slate on the same visit are known, so the **true effect** is the mean over every
visit of the treatment slate's expected plays minus the control slate's (the sample
average treatment effect on this experiment's visits, in plays per slate, the analysis's
unit). An item the user played earlier in the simulation counts for nothing in either
slate, as in the simulator. In an A/A test both arms serve the same slates, so the true
effect is exactly zero and every significant result is a false positive.

The challenger of the default A/B test is the champion under an exploring policy (one
slot of ten swapped for a random lower-ranked candidate): a real, modest loss, known
exactly from the truth.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal, Protocol

import numpy as np
import pandas as pd

from reelrank.exceptions import ValidationError
from reelrank.experiments.abtest import (
    ARM,
    CLICKS,
    PLAYS,
    PRE,
    SLATES,
    AbResult,
    analyse,
)
from reelrank.experiments.config import Arm, EpsilonPolicy, Experiment, PolicyConfig
from reelrank.loop.simulator import RowClient, Simulator, Visit, expected_plays
from reelrank.schema import USER_ID

SimulatedDesign = Literal["aa", "ab"]
CONTROL: Final = "control"
TREATMENT: Final = "treatment"
SIGNIFICANCE: Final = 0.05
DEFAULT_CHALLENGER: Final[PolicyConfig] = EpsilonPolicy(epsilon=1.0, pool=100)
"""The A/B test's challenger policy: every slate has one slot swapped for a uniformly
chosen candidate ranked 11..100."""


class ArmsClient(RowClient, Protocol):
    """A :class:`RowClient` that also tells what every arm would have served."""

    def slates(self, request_id: str) -> Mapping[str, tuple[int, ...]]:
        """``{arm: item ids in position order}`` for the visit ``request_id``."""
        ...


def experiment_config(
    design: SimulatedDesign, seed: int, challenger: PolicyConfig = DEFAULT_CHALLENGER
) -> Experiment:
    """Two arms on the champion, 50/50, salted by the seed; under ``ab`` the treatment
    explores with ``challenger``."""
    treatment_policy = challenger if design == "ab" else None
    return Experiment(
        name=f"simulated-{design}",
        design="ab",
        salt=f"simulated-{design}-{seed}",
        arms=(
            Arm(name=CONTROL, alias="champion"),
            Arm(name=TREATMENT, alias="champion", policy=treatment_policy),
        ),
    )


@dataclass(frozen=True)
class SimulatedExperiment:
    """One simulated experiment: the analysis and the truth it should have found."""

    design: SimulatedDesign
    seed: int
    days: int
    users_per_day: int
    visits: int
    result: AbResult
    true_control: float
    true_treatment: float

    @property
    def true_effect(self) -> float:
        """Treatment minus control, expected plays per slate on the same visits."""
        return self.true_treatment - self.true_control

    @property
    def covered(self) -> bool:
        return self.result.difference.covers(self.true_effect)

    @property
    def significant(self) -> bool:
        """The difference is significant at the 5 % level (a false positive under A/A)."""
        return self.result.difference.p_value < SIGNIFICANCE

    def record(self) -> dict[str, Any]:
        """Everything as plain JSON types."""
        difference = self.result.difference
        return {
            "design": self.design,
            "seed": self.seed,
            "days": self.days,
            "users_per_day": self.users_per_day,
            "visits": self.visits,
            "estimate": difference.estimate,
            "ci_low": difference.low,
            "ci_high": difference.high,
            "p_value": difference.p_value,
            "true_effect": self.true_effect,
            "true_control": self.true_control,
            "true_treatment": self.true_treatment,
            "covered": self.covered,
            "significant": self.significant,
            "analysis": asdict(self.result),
        }


def per_user(visits: Sequence[Visit], pre_activity: pd.Series | None = None) -> pd.DataFrame:
    """One row per visiting user: ``user_id, arm, slates, plays, clicks`` (and
    ``pre_activity``, the user's events before the test, when given; 0 for a new user)."""
    if not visits:
        raise ValidationError("the experiment served no visit; simulate more users or days.")
    rows = pd.DataFrame(
        {
            USER_ID: [v.user_id for v in visits],
            ARM: [v.arm for v in visits],
            PLAYS: [int(v.played.sum()) for v in visits],
            CLICKS: [int(v.clicked.sum()) for v in visits],
        }
    )
    if rows[ARM].isna().any():
        raise ValidationError("a visit was served by no arm; the service runs no experiment.")
    arms = rows.groupby(USER_ID)[ARM].nunique()
    if (arms > 1).any():
        raise ValidationError(f"users served by two arms: {arms[arms > 1].index.tolist()[:5]}.")
    grouped = rows.groupby(USER_ID).agg(
        arm=(ARM, "first"), slates=(PLAYS, "size"), plays=(PLAYS, "sum"), clicks=(CLICKS, "sum")
    )
    frame = grouped.reset_index().rename(columns={"slates": SLATES})
    if pre_activity is not None:
        frame[PRE] = frame[USER_ID].map(pre_activity).fillna(0).astype(float)
    return frame


def true_rates(
    simulator: Simulator, visits: Sequence[Visit], client: ArmsClient
) -> dict[str, float]:
    """Each arm's true expected plays per slate over ``visits`` (in the order they
    happened), from every arm's slate of each visit and the world's preferences."""
    played: dict[int, set[int]] = {}
    totals: dict[str, float] = {}
    for visit in visits:
        seen = played.setdefault(visit.user_id, set())
        for arm, slate in client.slates(visit.request_id).items():
            items = np.asarray(slate, dtype=np.int64)
            if len(items) == 0:
                totals[arm] = totals.get(arm, 0.0)
                continue
            preference = simulator.truth.relevance(np.full(len(items), visit.user_id), items)
            eligible = np.array([int(item) not in seen for item in items], dtype=bool)
            positions = np.arange(1, len(items) + 1)
            value = expected_plays(simulator.model, preference, positions, eligible).sum()
            totals[arm] = totals.get(arm, 0.0) + float(value)
        seen.update(np.asarray(visit.item_ids, dtype=np.int64)[visit.played].tolist())
    return {arm: total / len(visits) for arm, total in totals.items()}


def simulate_experiment(
    simulator: Simulator,
    client: ArmsClient,
    design: SimulatedDesign,
    days: int,
    users_per_day: int,
    pre_activity: pd.Series | None = None,
    start_day: int = 0,
) -> SimulatedExperiment:
    """Run the experiment the client's service is configured with, analyse it, and put
    the true effect beside the estimate (see the module docstring)."""
    visits = [visit for day in simulator.run(days, users_per_day, start_day) for visit in day]
    frame = per_user(visits, pre_activity)
    result = analyse(frame, CONTROL, TREATMENT)
    truth = true_rates(simulator, visits, client)
    return SimulatedExperiment(
        design, simulator.seed, days, users_per_day, len(visits), result,
        truth[CONTROL], truth[TREATMENT],
    )  # fmt: skip

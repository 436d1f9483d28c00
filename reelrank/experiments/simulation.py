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

Under ``interleaving`` every row is a team draft of both arms' rankings
(:mod:`reelrank.experiments.interleaving`); the clicks on each team's items give the
preference, and the true effect is still the A/B one (each arm's own slate of every visit),
so the two designs can be compared on the same challenger: the champion re-ranked with a
strong long-tail boost (:data:`DEFAULT_CHALLENGER`), a real difference known exactly
from the truth (on the default world a gain: the champion's row is too popular).
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
from reelrank.experiments.config import Arm, Experiment
from reelrank.experiments.interleaving import TEAM_A, TEAM_B, Preference, preference
from reelrank.loop.simulator import RowClient, Simulator, Visit, expected_plays
from reelrank.models.reranking import RerankStrengths
from reelrank.schema import USER_ID

SimulatedDesign = Literal["aa", "ab", "interleaving"]
CONTROL: Final = "control"
TREATMENT: Final = "treatment"
SIGNIFICANCE: Final = 0.05
DEFAULT_CHALLENGER: Final = RerankStrengths(diversity=0.1, freshness=0.0, long_tail=0.5)
"""The challenger of the A/B and interleaving tests: the champion re-ranked with a strong
long-tail boost (0.5 instead of 0.1), a real difference the truth can price."""


class ArmsClient(RowClient, Protocol):
    """A :class:`RowClient` that also tells what every arm would have served."""

    def slates(self, request_id: str) -> Mapping[str, tuple[int, ...]]:
        """``{arm: item ids in position order}`` for the visit ``request_id``."""
        ...

    def teams(self, request_id: str) -> tuple[str, ...] | None:
        """Under interleaving, the team of each shown item (else None)."""
        ...


def experiment_config(
    design: SimulatedDesign, seed: int, challenger: RerankStrengths = DEFAULT_CHALLENGER
) -> Experiment:
    """Two arms on the champion, 50/50 (``ab``, ``aa``) or interleaved, salted by the seed;
    except under ``aa`` the treatment re-ranks with ``challenger``."""
    return Experiment(
        name=f"simulated-{design}",
        design="interleaving" if design == "interleaving" else "ab",
        salt=f"simulated-{design}-{seed}",
        arms=(
            Arm(name=CONTROL, alias="champion"),
            Arm(name=TREATMENT, alias="champion", rerank=None if design == "aa" else challenger),
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
    result: AbResult | Preference
    true_control: float
    true_treatment: float

    @property
    def true_effect(self) -> float:
        """Treatment minus control, expected plays per slate on the same visits."""
        return self.true_treatment - self.true_control

    @property
    def estimate(self) -> tuple[float, float, float, float]:
        """``(estimate, low, high, p_value)``: the A/B difference in plays per slate, or the
        interleaving preference for the treatment in [-1, 1]."""
        r = self.result
        if isinstance(r, Preference):
            return r.estimate, r.low, r.high, r.p_value
        return r.difference.estimate, r.difference.low, r.difference.high, r.difference.p_value

    @property
    def covered(self) -> bool | None:
        """The A/B interval holds the true effect (None for interleaving: another scale)."""
        if isinstance(self.result, Preference):
            return None
        return bool(self.result.difference.covers(self.true_effect))

    @property
    def significant(self) -> bool:
        """Significant at the 5 % level (a false positive under A/A)."""
        return bool(self.estimate[3] < SIGNIFICANCE)

    @property
    def sd_per_user(self) -> float:
        """The per-user standard deviation behind the interval (for planning): of the
        linearised play rate (A/B, pooled over arms) or of the preference (interleaving)."""
        r = self.result
        if isinstance(r, Preference):
            return float(r.se * np.sqrt(r.users))
        n_c, n_t = r.control.users, r.treatment.users
        return float(r.difference.se / np.sqrt(1.0 / n_c + 1.0 / n_t))

    def record(self) -> dict[str, Any]:
        """Everything as plain JSON types."""
        estimate, low, high, p_value = self.estimate
        return {
            "design": self.design,
            "seed": self.seed,
            "days": self.days,
            "users_per_day": self.users_per_day,
            "visits": self.visits,
            "estimate": estimate,
            "ci_low": low,
            "ci_high": high,
            "p_value": p_value,
            "sd_per_user": self.sd_per_user,
            "true_effect": self.true_effect,
            "true_control": self.true_control,
            "true_treatment": self.true_treatment,
            "covered": self.covered,
            "significant": bool(self.significant),
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


def interleaved_rows(visits: Sequence[Visit], client: ArmsClient) -> pd.DataFrame:
    """One row per interleaved visit: ``user_id, credit_a, credit_b``, the clicks on each
    team's items (team ``a``: control, ``b``: treatment)."""
    rows = []
    for visit in visits:
        teams = client.teams(visit.request_id)
        if teams is None:
            raise ValidationError("a visit was not interleaved; the service runs an A/B test.")
        team = np.asarray(teams)
        rows.append(
            (visit.user_id, int(visit.clicked[team == TEAM_A].sum()),
             int(visit.clicked[team == TEAM_B].sum()))
        )  # fmt: skip
    return pd.DataFrame(rows, columns=[USER_ID, "credit_a", "credit_b"])


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
    result: AbResult | Preference
    if design == "interleaving":
        result = preference(interleaved_rows(visits, client))
    else:
        result = analyse(per_user(visits, pre_activity), CONTROL, TREATMENT)
    truth = true_rates(simulator, visits, client)
    return SimulatedExperiment(
        design, simulator.seed, days, users_per_day, len(visits), result,
        truth[CONTROL], truth[TREATMENT],
    )  # fmt: skip

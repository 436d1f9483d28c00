"""Off-policy evaluation checked against the truth: ``reelrank experiment ope``.

The champion serves with an exploring policy (Plackett-Luce over its best candidates,
:data:`LOGGING_POLICY`), and every slate is logged with the exact probability of each shown
item at its position (:func:`reelrank.loop.policy.marginal_propensities`). From those logs
alone, :mod:`reelrank.experiments.ope` estimates the expected plays per slate of a
*candidate* that never served: its greedy row for the same visits, compared position by
position with what was shown (IPS, self-normalised IPS, doubly robust with the logging
ranker's score calibrated to a play probability as the reward model). Under the
position-based model those estimators are unbiased where the logging policy could show
the candidate's item at the candidate's position; the share of the candidate's (slate,
position) pairs where it could (``support``: the item is in the logging pool) says how far
that holds, and ``matches`` is the share of logged rows the candidate agrees with (the rows
IPS learns from). The **true** value is the candidate's rows
valued by the world's preferences on the same visits
(:func:`reelrank.experiments.simulation.true_rates`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final, Protocol

import numpy as np
import pandas as pd

from reelrank.exceptions import ValidationError
from reelrank.experiments.config import PlackettLucePolicy
from reelrank.experiments.ope import (
    LoggedRows,
    calibrated_reward_model,
    doubly_robust,
    ips,
    predict_reward,
    snips,
)
from reelrank.experiments.simulation import ArmsClient, true_rates
from reelrank.loop.simulator import Simulator, Visit
from reelrank.schema import ITEM_ID, USER_ID

LOGGING: Final = "logging"
TARGET: Final = "target"
LOGGING_POLICY: Final = PlackettLucePolicy(temperature=0.5, pool=12)
"""The exploring policy whose logs are evaluated (pool 12: exact marginals in ~2 ms)."""


@dataclass(frozen=True)
class LoggedSlate:
    """What the logs hold of one slate, plus the candidate's row for the same request.

    Attributes:
        marginal: per shown position, the logging policy's P(that item at that position).
        scores: the logging ranker's score of every candidate (to value any item).
        pool: the items the logging policy could show (at any position).
        target: the candidate's row (item ids, position order).
    """

    shown: tuple[int, ...]
    marginal: np.ndarray
    scores: Mapping[int, float]
    pool: frozenset[int]
    target: tuple[int, ...]


class LoggedClient(ArmsClient, Protocol):
    def logged(self, request_id: str) -> LoggedSlate: ...


@dataclass(frozen=True)
class OffPolicyResult:
    """The estimates of the candidate's plays per slate, and its true value."""

    seed: int
    slates: int
    support: float
    matches: float
    ips: float
    snips: float
    doubly_robust: float
    true_target: float
    true_logging: float
    observed_logging: float

    def record(self) -> dict[str, Any]:
        return asdict(self) | {
            f"{name}_error": getattr(self, name) - self.true_target
            for name in ("ips", "snips", "doubly_robust")
        }


def logged_rows(visits: Sequence[Visit], client: LoggedClient) -> tuple[LoggedRows, dict]:
    """The position-level rows of the logs, and what the reward model needs."""
    slate, position, reward, mu, pi, score, target_scores = [], [], [], [], [], [], []
    supported = total = 0
    for index, visit in enumerate(visits):
        logged = client.logged(visit.request_id)
        supported += sum(item in logged.pool for item in logged.target)
        total += len(logged.target)
        floor = min(logged.scores.values()) if logged.scores else 0.0
        for p, item in enumerate(logged.shown):
            slate.append(index)
            position.append(p + 1)
            reward.append(float(visit.played[p]))
            mu.append(float(logged.marginal[p]))
            on_target = p < len(logged.target) and logged.target[p] == item
            pi.append(1.0 if on_target else 0.0)
            score.append(logged.scores.get(item, floor))
        target_scores.append([logged.scores.get(item, floor) for item in logged.target])
    rows = LoggedRows(
        np.asarray(slate), np.asarray(position), np.asarray(reward), np.asarray(mu),
        np.asarray(pi),
    )  # fmt: skip
    support = supported / total if total else 0.0
    return rows, {"score": np.asarray(score), "target_scores": target_scores, "support": support}


def evaluate(
    simulator: Simulator, client: LoggedClient, days: int, users_per_day: int
) -> OffPolicyResult:
    """Serve ``days`` with the logging policy, then estimate the candidate's value."""
    visits = [visit for day in simulator.run(days, users_per_day) for visit in day]
    if not visits:
        raise ValidationError("no visit was served; simulate more users or days.")
    rows, extra = logged_rows(visits, client)
    k = int(rows.position.max())
    model = calibrated_reward_model(extra["score"], rows.position, rows.reward, k)
    predicted = predict_reward(model, extra["score"], rows.position)
    per_slate = np.array(
        [
            predict_reward(model, np.asarray(s), np.arange(1, len(s) + 1)).sum() if s else 0.0
            for s in extra["target_scores"]
        ]
    )
    truth = true_rates(simulator, visits, client)
    return OffPolicyResult(
        seed=simulator.seed,
        slates=rows.n_slates,
        support=float(extra["support"]),
        matches=float(np.mean(rows.target_propensity)),
        ips=ips(rows),
        snips=snips(rows),
        doubly_robust=doubly_robust(rows, predicted, per_slate),
        true_target=truth[TARGET],
        true_logging=truth[LOGGING],
        observed_logging=float(rows.reward.sum() / rows.n_slates),
    )


# ----------------------------------------------------------------- real logs, for the gate
@dataclass(frozen=True)
class OffPolicyValue:
    """A model's self-normalised IPS value (plays per slate) on the lake's exploring logs."""

    value: float
    slates: int
    matches: float


def exploring_rows(impressions: pd.DataFrame, feedback: pd.DataFrame) -> pd.DataFrame:
    """Shown items of slates an exploring policy drew (an exact marginal propensity in
    (0, 1) somewhere in the slate), with ``reward`` 1 where a play came back."""
    logged = impressions[impressions["marginal_propensity"].notna()]
    exploring = logged.groupby("request_id")["marginal_propensity"].transform("min") < 1.0
    rows = logged[exploring & (logged["marginal_propensity"] > 0)]
    plays = feedback[feedback["kind"] == "play"][["request_id", "position"]].drop_duplicates()
    plays = plays.assign(reward=1.0)
    rows = rows.merge(plays, on=["request_id", "position"], how="left")
    return rows.assign(reward=rows["reward"].fillna(0.0))


def lake_value(rows: pd.DataFrame, model: object) -> OffPolicyValue | None:
    """``model``'s SNIPS value on the exploring ``rows`` (None without any): its greedy row
    for each logged user, as of now, compared position by position with what was shown."""
    if rows.empty:
        return None
    k = int(rows["position"].max())
    users = sorted(int(u) for u in rows[USER_ID].unique())
    ranked = model.recommend(users, k=k)  # type: ignore[attr-defined]
    ranked = ranked.assign(position=ranked.groupby(USER_ID).cumcount() + 1)
    target = ranked[[USER_ID, "position", ITEM_ID]].rename(columns={ITEM_ID: "target_item"})
    joined = rows.merge(target, on=[USER_ID, "position"], how="left")
    matches = (joined["target_item"] == joined[ITEM_ID]).to_numpy(dtype=float)
    logged = LoggedRows(
        joined["request_id"].to_numpy(), joined["position"].to_numpy(),
        joined["reward"].to_numpy(dtype=float), joined["marginal_propensity"].to_numpy(float),
        matches,
    )  # fmt: skip
    return OffPolicyValue(snips(logged), logged.n_slates, float(matches.mean()))

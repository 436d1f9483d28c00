"""Team-draft interleaving (Radlinski, Kurup and Joachims, 2008): both arms in one row.

Per request, the two arms' rankings are merged as two captains pick teams: in each round a
coin decides which arm picks first; each arm adds its best item not already in the row,
marked with its team, until the row is full. A user's clicks (or plays) on each team's
items are then credited to that arm. Because every user sees both arms, user-to-user
variance cancels and far fewer users are needed than in an A/B test; the price is that
the measured quantity is a *preference* between the rankers, not the change of a metric.

Analysis, per user (the randomisation unit): over the user's rows with at least one
credited event, the mean of ``(credit_a - credit_b) / (credit_a + credit_b)``; the
preference is the mean over users (positive: B preferred... see :func:`preference`), with a
normal interval and a two-sided test of zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd
from scipy.stats import norm

from reelrank.exceptions import ValidationError
from reelrank.schema import USER_ID

TEAM_A: Final = "a"
TEAM_B: Final = "b"


def team_draft(
    ranking_a: Sequence[int], ranking_b: Sequence[int], k: int, rng: np.random.Generator
) -> tuple[list[int], list[str]]:
    """The interleaved row of length ``k`` (or less when both run out) and each item's team."""
    picked: list[int] = []
    teams: list[str] = []
    seen: set[int] = set()
    lists = {TEAM_A: list(ranking_a), TEAM_B: list(ranking_b)}
    cursor = {TEAM_A: 0, TEAM_B: 0}
    counts = {TEAM_A: 0, TEAM_B: 0}

    def pick(team: str) -> bool:
        ranking = lists[team]
        while cursor[team] < len(ranking) and ranking[cursor[team]] in seen:
            cursor[team] += 1
        if cursor[team] >= len(ranking):
            return False
        item = ranking[cursor[team]]
        picked.append(item)
        teams.append(team)
        seen.add(item)
        counts[team] += 1
        return True

    while len(picked) < k:
        # The team with fewer picks goes; a tie is broken by a fair coin (the draft's rule).
        if counts[TEAM_A] != counts[TEAM_B]:
            first = TEAM_A if counts[TEAM_A] < counts[TEAM_B] else TEAM_B
        else:
            first = TEAM_A if rng.random() < 0.5 else TEAM_B
        other = TEAM_B if first == TEAM_A else TEAM_A
        if not pick(first) and not pick(other):
            break
    return picked, teams


@dataclass(frozen=True)
class Preference:
    """The interleaving outcome: positive means arm B is preferred.

    Attributes:
        estimate: mean over users of their per-row credit share difference, in [-1, 1].
        se, low, high: its standard error and normal interval.
        p_value: two-sided test of no preference.
        users: users with at least one credited row.
        wins_a, wins_b, ties: rows won by each arm or tied (among rows with credit).
    """

    estimate: float
    se: float
    low: float
    high: float
    p_value: float
    users: int
    wins_a: int
    wins_b: int
    ties: int


def preference(rows: pd.DataFrame, level: float = 0.95) -> Preference:
    """Analyse interleaved rows: one row per served row, ``user_id, credit_a, credit_b``
    (the clicks or plays on each team's items)."""
    for column in (USER_ID, "credit_a", "credit_b"):
        if column not in rows:
            raise ValidationError(f"interleaving rows lack {column!r}.")
    credited = rows[(rows["credit_a"] + rows["credit_b"]) > 0]
    if credited.empty:
        raise ValidationError("no interleaved row got a click or play; nothing to compare.")
    share = (credited["credit_b"] - credited["credit_a"]) / (
        credited["credit_a"] + credited["credit_b"]
    )
    per_user = share.groupby(credited[USER_ID]).mean().to_numpy(dtype=float)
    n = len(per_user)
    estimate = float(per_user.mean())
    se = float(per_user.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    z = norm.ppf(0.5 + level / 2.0)
    p_value = float(2.0 * norm.sf(abs(estimate) / se)) if se and se > 0 else float("nan")
    return Preference(
        estimate=estimate,
        se=se,
        low=estimate - z * se,
        high=estimate + z * se,
        p_value=p_value,
        users=n,
        wins_a=int((share < 0).sum()),
        wins_b=int((share > 0).sum()),
        ties=int((share == 0).sum()),
    )

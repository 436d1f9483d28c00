"""A/B test analysis at the level of the randomisation unit, the user.

The primary metric is the **play rate**, plays per served slate. Slates are not independent
(one user's slates share the user), so the analysis is per user: each arm's rate is a ratio
of per-user sums, ``R = sum(plays) / sum(slates)``, and its variance comes from the **delta
method** (Deng et al., 2018):

    Var(R) ~= (1 / n) * (s_y**2 - 2 R s_xy + R**2 s_x**2) / mean(x)**2

with ``y`` a user's plays, ``x`` their slates, ``n`` the users. The difference of the two arms
gets a normal interval. **CUPED** (Deng et al., 2013) reduces that variance with a
pre-experiment covariate (each user's activity before the test, which the treatment cannot
have changed): the per-user linearised metric ``y - R x`` is adjusted by ``theta * (c - mean c)``
with ``theta = cov(l, c) / var(c)`` pooled over arms; the share of variance it removes is
reported. A **sample-ratio mismatch** check (chi-square of the users per arm against the
configured split) comes first: when it fires, the assignment or the logging is broken and
no difference should be trusted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd
from scipy.stats import chisquare, norm

from reelrank.exceptions import ValidationError
from reelrank.schema import USER_ID

ARM: Final = "arm"
SLATES: Final = "slates"
PLAYS: Final = "plays"
CLICKS: Final = "clicks"
PRE: Final = "pre_activity"
SRM_ALPHA: Final = 0.001
"""A sample-ratio mismatch is flagged below this p-value (a strict threshold: the check
runs on every analysis, and a false alarm stops a healthy test)."""


@dataclass(frozen=True)
class ArmSummary:
    """One arm's totals and rates."""

    arm: str
    users: int
    slates: int
    plays: int
    clicks: int
    play_rate: float
    play_rate_se: float
    plays_per_user: float
    clicks_per_user: float


@dataclass(frozen=True)
class Difference:
    """Treatment minus control of the play rate, with its interval."""

    estimate: float
    se: float
    low: float
    high: float
    relative: float
    p_value: float

    def covers(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class SampleRatio:
    """The users per arm against the configured split."""

    observed: dict[str, int]
    expected_share: dict[str, float]
    p_value: float

    @property
    def mismatch(self) -> bool:
        return self.p_value < SRM_ALPHA


@dataclass(frozen=True)
class AbResult:
    """The whole analysis of a two-arm test."""

    control: ArmSummary
    treatment: ArmSummary
    difference: Difference
    cuped: Difference | None
    variance_saved: float | None
    srm: SampleRatio


def _ratio_parts(frame: pd.DataFrame) -> tuple[float, np.ndarray]:
    """The arm's rate and each user's linearised contribution ``(y - R x) / mean(x)``."""
    x = frame[SLATES].to_numpy(dtype=np.float64)
    y = frame[PLAYS].to_numpy(dtype=np.float64)
    rate = float(y.sum() / x.sum())
    return rate, (y - rate * x) / x.mean()


def summarise_arm(name: str, frame: pd.DataFrame) -> ArmSummary:
    if frame.empty or frame[SLATES].sum() <= 0:
        raise ValidationError(f"arm {name!r} has no served slates; nothing to analyse.")
    rate, linear = _ratio_parts(frame)
    n = len(frame)
    return ArmSummary(
        arm=name,
        users=n,
        slates=int(frame[SLATES].sum()),
        plays=int(frame[PLAYS].sum()),
        clicks=int(frame[CLICKS].sum()) if CLICKS in frame else 0,
        play_rate=rate,
        play_rate_se=float(linear.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan"),
        plays_per_user=float(frame[PLAYS].mean()),
        clicks_per_user=float(frame[CLICKS].mean()) if CLICKS in frame else 0.0,
    )


def _difference(
    control: np.ndarray, treatment: np.ndarray, delta: float, base: float, level: float
) -> Difference:
    se = float(np.sqrt(control.var(ddof=1) / len(control) + treatment.var(ddof=1) / len(treatment)))
    z = norm.ppf(0.5 + level / 2.0)
    p_value = float(2.0 * norm.sf(abs(delta) / se)) if se > 0 else float("nan")
    return Difference(
        delta, se, delta - z * se, delta + z * se, delta / base if base else float("nan"), p_value
    )


def sample_ratio(users: Mapping[str, int], split: Mapping[str, float]) -> SampleRatio:
    """Chi-square test of the users per arm against the configured shares."""
    arms = list(split)
    total = sum(users.get(a, 0) for a in arms)
    shares = np.array([split[a] for a in arms], dtype=np.float64)
    shares = shares / shares.sum()
    observed = np.array([users.get(a, 0) for a in arms], dtype=np.float64)
    p_value = float(chisquare(observed, shares * total).pvalue) if total > 0 else float("nan")
    return SampleRatio(
        {a: int(users.get(a, 0)) for a in arms},
        dict(zip(arms, shares.tolist(), strict=True)),
        p_value,
    )


def cuped_adjust(linear: np.ndarray, covariate: np.ndarray) -> tuple[np.ndarray, float]:
    """``linear - theta * (covariate - mean)`` with ``theta = cov / var`` (0 when the
    covariate is constant); returns the adjusted values and theta."""
    centred = covariate - covariate.mean()
    variance = float(centred.var())
    theta = float(np.mean(centred * (linear - linear.mean())) / variance) if variance > 0 else 0.0
    return linear - theta * centred, theta


def analyse(
    per_user: pd.DataFrame,
    control: str,
    treatment: str,
    split: Mapping[str, float] | None = None,
    level: float = 0.95,
) -> AbResult:
    """The analysis of the module docstring.

    Args:
        per_user: one row per assigned user: ``user_id, arm, slates, plays`` (``clicks`` and
            the pre-period covariate ``pre_activity`` optional); users with no slate are
            dropped (they were assigned but never served).
        control, treatment: the two arms' names.
        split: the configured shares per arm (default: equal).
        level: the confidence level of the intervals.
    """
    for column in (USER_ID, ARM, SLATES, PLAYS):
        if column not in per_user:
            raise ValidationError(f"per-user frame lacks {column!r}.")
    served = per_user[per_user[SLATES] > 0]
    frames = {arm: served[served[ARM] == arm] for arm in (control, treatment)}
    summaries = {arm: summarise_arm(arm, frame) for arm, frame in frames.items()}
    (_, lin_c), (_, lin_t) = _ratio_parts(frames[control]), _ratio_parts(frames[treatment])
    delta = summaries[treatment].play_rate - summaries[control].play_rate
    base = summaries[control].play_rate
    plain = _difference(lin_c, lin_t, delta, base, level)
    cuped = saved = None
    if PRE in served and served[PRE].notna().all():
        both = np.concatenate([lin_c, lin_t])
        covariate = np.concatenate(
            [frames[control][PRE].to_numpy(float), frames[treatment][PRE].to_numpy(float)]
        )
        adjusted, _ = cuped_adjust(both, covariate)
        adj_c, adj_t = adjusted[: len(lin_c)], adjusted[len(lin_c) :]
        # The linearised values average 0 per arm; what the adjustment moves is the estimate.
        cuped_delta = delta + float(adj_t.mean() - adj_c.mean())
        cuped = _difference(adj_c, adj_t, cuped_delta, base, level)
        saved = 1.0 - (cuped.se / plain.se) ** 2 if plain.se > 0 else None
    counts = {str(arm): int(n) for arm, n in served.groupby(ARM).size().items()}
    shares = split or {control: 0.5, treatment: 0.5}
    return AbResult(
        summaries[control], summaries[treatment], plain, cuped, saved, sample_ratio(counts, shares)
    )

"""Planning an A/B test: how many units each arm needs to detect an effect.

For a rate ``p`` (e.g. plays per impression) and a minimum detectable effect ``mde`` relative
to it (``delta = p * mde``), a two-sided z-test at level ``alpha`` with power ``power``
needs, per arm (equal arms),

    n = (z_(1 - alpha / 2) + z_power)**2 * 2 p (1 - p) / delta**2

(both arms' variance taken at the baseline, the usual planning form; it equals
statsmodels' ``NormalIndPower`` with the standardised effect ``delta / sqrt(p (1 - p))``,
which ``tests/experiments`` checks). ``design_effect`` inflates it for correlated units (the
impressions of one user): the variance of a per-user ratio over the naive one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.stats import norm

from reelrank.exceptions import ValidationError


@dataclass(frozen=True)
class Plan:
    """What a test needs.

    Attributes:
        baseline: the control rate.
        mde: the minimum detectable effect, relative to ``baseline``.
        delta: the absolute effect (``baseline * mde``).
        alpha, power: the test's level and power.
        per_arm: units per arm (rounded up), before the design effect.
        per_arm_with_design_effect: the same times ``design_effect``, rounded up.
        design_effect: the variance inflation assumed for correlated units.
    """

    baseline: float
    mde: float
    delta: float
    alpha: float
    power: float
    per_arm: int
    design_effect: float
    per_arm_with_design_effect: int


def sample_size(
    baseline: float,
    mde: float,
    alpha: float = 0.05,
    power: float = 0.8,
    design_effect: float = 1.0,
) -> Plan:
    """Units per arm for a two-sided z-test of two rates (see the module docstring)."""
    if not 0.0 < baseline < 1.0:
        raise ValidationError(f"baseline rate {baseline} must be in (0, 1).")
    if mde <= 0.0 or baseline * (1 + mde) >= 1.0:
        raise ValidationError(f"relative effect {mde} must be > 0 and keep the rate below 1.")
    if not 0.0 < alpha < 1.0 or not 0.0 < power < 1.0:
        raise ValidationError("alpha and power must be in (0, 1).")
    if design_effect < 1.0:
        raise ValidationError("design_effect must be at least 1.")
    delta = baseline * mde
    z = _z(alpha, power)
    n = z * z * 2.0 * baseline * (1.0 - baseline) / (delta * delta)
    return Plan(
        baseline=baseline,
        mde=mde,
        delta=delta,
        alpha=alpha,
        power=power,
        per_arm=math.ceil(n),
        design_effect=design_effect,
        per_arm_with_design_effect=math.ceil(n * design_effect),
    )


def detectable_effect(
    n_per_arm: float, baseline: float, alpha: float = 0.05, power: float = 0.8
) -> float:
    """The smallest relative effect ``n_per_arm`` units per arm detect (the inverse)."""
    if n_per_arm <= 0:
        raise ValidationError("n_per_arm must be positive.")
    delta = _z(alpha, power) * math.sqrt(2.0 * baseline * (1.0 - baseline) / n_per_arm)
    return delta / baseline


def _z(alpha: float, power: float) -> float:
    return float(norm.ppf(1.0 - alpha / 2.0) + norm.ppf(power))


def ab_units(
    sd_control: float, sd_treatment: float, delta: float, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Users per arm for an A/B test of a per-user metric whose standard deviation is
    ``sd_*`` per arm and whose true difference is ``delta`` (measured on a pilot)."""
    if delta == 0.0:
        raise ValidationError("delta must be non-zero.")
    return math.ceil(_z(alpha, power) ** 2 * (sd_control**2 + sd_treatment**2) / delta**2)


def paired_units(sd: float, delta: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Users for a within-user design (interleaving: each user's preference score has
    standard deviation ``sd`` and mean ``delta``)."""
    if delta == 0.0:
        raise ValidationError("delta must be non-zero.")
    return math.ceil((_z(alpha, power) * sd / delta) ** 2)

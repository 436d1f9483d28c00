"""Population stability: our PSI on known cases and against Evidently's on the same bins."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reelrank.monitoring.drift import (
    DRIFT_THRESHOLD,
    ColumnProfile,
    Profile,
    build_profile,
    drift,
    profile_column,
    psi,
)


def test_psi_of_a_known_shift() -> None:
    assert psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0.0
    expected = (0.9 - 0.5) * np.log(0.9 / 0.5) + (0.1 - 0.5) * np.log(0.1 / 0.5)
    assert psi(np.array([0.5, 0.5]), np.array([0.9, 0.1])) == pytest.approx(expected)


def test_same_distribution_is_stable_and_a_shift_is_not() -> None:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"x": rng.normal(0, 1, 20_000), "genre": rng.integers(0, 5, 20_000)})
    same = pd.DataFrame({"x": rng.normal(0, 1, 5_000), "genre": rng.integers(0, 5, 5_000)})
    moved = pd.DataFrame(
        {"x": rng.normal(1, 1, 5_000), "genre": rng.choice(5, 5_000, p=[0.6, 0.1, 0.1, 0.1, 0.1])}
    )
    profile = build_profile(reference)
    assert max(drift(profile, same).values()) < 0.02
    shifted = drift(profile, moved)
    assert shifted["x"] > DRIFT_THRESHOLD
    assert shifted["genre"] > DRIFT_THRESHOLD


def test_missing_and_unseen_values_have_their_own_bins() -> None:
    profile = profile_column(pd.Series([1, 2, 2, 3, None]), "c")
    assert profile.categorical
    shares = profile.bin_shares(pd.Series([1, 4, 4, None]))
    assert shares.tolist() == [0.25, 0.0, 0.0, 0.5, 0.25]  # 1, 2, 3, unseen, missing


def test_profiles_round_trip_through_json() -> None:
    rng = np.random.default_rng(1)
    profile = build_profile(pd.DataFrame({"x": rng.normal(size=500), "c": rng.integers(0, 3, 500)}))
    again = Profile.from_dict(profile.to_dict())
    for name in profile.columns:
        np.testing.assert_array_equal(again.columns[name].shares, profile.columns[name].shares)


def test_psi_equals_evidentlys_on_the_same_bins() -> None:
    from evidently.legacy.calculations.stattests.psi import _psi
    from evidently.legacy.core import ColumnType

    rng = np.random.default_rng(7)
    # Both on [0, 1], so no bin is empty and neither implementation's empty-bin floor acts.
    reference = pd.Series(rng.uniform(0, 1, 8_000))
    current = pd.Series(rng.beta(2.0, 1.5, 8_000))
    evidently_value, _ = _psi(reference, current, ColumnType.Numerical, threshold=0.1)
    edges = np.histogram_bin_edges(np.concatenate([reference, current]), bins="sturges")
    column = ColumnProfile("x", edges[1:-1], (), np.zeros(len(edges) + 1), len(reference))
    ours = psi(column.bin_shares(reference), column.bin_shares(current), epsilon=1e-12)
    assert ours == pytest.approx(evidently_value, rel=1e-9)


def test_a_small_windows_noise_level_keeps_false_alarms_near_alpha_and_still_sees_drift():
    """45 columns, windows of 80 rows: 0.2 alone alarms in nearly every no-drift window;
    the noise level keeps the family-wise rate near 1 % and still flags a 1-sd shift."""
    from reelrank.monitoring.drift import DRIFT_ALPHA, effective_threshold

    rng = np.random.default_rng(3)
    columns = [f"c{i}" for i in range(45)]
    reference = build_profile(pd.DataFrame(rng.gamma(2.0, size=(5_000, 45)), columns=columns))
    levels = {
        c: effective_threshold(reference.columns[c], 80, comparisons=len(columns)) for c in columns
    }
    assert min(levels.values()) > DRIFT_THRESHOLD  # the noise decides at this size
    windows, alarms, plain = 200, 0, 0
    for _ in range(windows):
        psi_values = drift(reference, pd.DataFrame(rng.gamma(2.0, size=(80, 45)), columns=columns))
        alarms += any(psi_values[c] > levels[c] for c in columns)
        plain += any(psi_values[c] > DRIFT_THRESHOLD for c in columns)
    assert plain / windows > 0.9
    assert alarms / windows <= 4 * DRIFT_ALPHA  # 1 % asked; 200 windows: allow the noise
    moved = pd.DataFrame(rng.gamma(2.0, size=(80, 45)), columns=columns)
    moved["c0"] += 2.0  # one sd of a gamma(2)'s ~1.4: a clear shift
    assert drift(reference, moved)["c0"] > levels["c0"]
    # On a large window the rule of thumb decides.
    assert effective_threshold(reference.columns["c0"], 100_000) == DRIFT_THRESHOLD

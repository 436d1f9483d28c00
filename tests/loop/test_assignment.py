"""Experiment assignment: stable, uniform, split by the declared weights; the experiment
and policy settings are validated by the one Settings object."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from pydantic import ValidationError

from reelrank.config import Settings
from reelrank.experiments.assignment import Assigner, assign, bucket
from reelrank.experiments.config import Experiment, PlackettLucePolicy

EXPERIMENT = {
    "name": "ranker-v2",
    "salt": "2026-12",
    "arms": [
        {"name": "control", "alias": "champion", "weight": 3},
        {"name": "treatment", "version": "7", "weight": 1, "policy": {"kind": "plackett-luce"}},
    ],
}


def test_buckets_are_uniform_over_users():
    values = np.array([bucket("salt", user) for user in range(40_000)])
    counts, _ = np.histogram(values, bins=20, range=(0.0, 1.0))
    expected = len(values) / 20
    chi_square = float(((counts - expected) ** 2 / expected).sum())
    assert chi_square < 43.8  # the 99.9th percentile of chi-square with 19 degrees of freedom
    assert values.min() >= 0.0
    assert values.max() < 1.0


def test_the_split_follows_the_weights():
    experiment = Experiment.model_validate(EXPERIMENT)
    counts = Counter(assign(experiment, user) for user in range(40_000))
    assert counts["control"] / 40_000 == pytest.approx(0.75, abs=0.01)
    assert experiment.split == {"control": 0.75, "treatment": 0.25}


def test_assignment_is_stable_across_processes_and_depends_on_the_salt():
    experiment = Experiment.model_validate(EXPERIMENT)
    here = [assign(experiment, user) for user in range(200)]
    code = (
        "import json,sys; from reelrank.experiments.config import Experiment; "
        "from reelrank.experiments.assignment import assign; "
        "e = Experiment.model_validate(json.loads(sys.argv[1])); "
        "print(json.dumps([assign(e, u) for u in range(200)]))"
    )
    there = subprocess.run(
        [sys.executable, "-c", code, json.dumps(EXPERIMENT)],
        capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "123"},
    )  # fmt: skip
    assert json.loads(there.stdout) == here
    resalted = Experiment.model_validate({**EXPERIMENT, "salt": "another"})
    moved = sum(
        a != b for a, b in zip(here, (assign(resalted, u) for u in range(200)), strict=True)
    )
    assert moved > 30  # a new salt reshuffles


def test_the_salt_defaults_to_the_name():
    unsalted = Experiment.model_validate({**EXPERIMENT, "salt": ""})
    assert unsalted.hash_salt == "ranker-v2"
    assert Assigner(unsalted).arm(5).name == assign(unsalted, 5)


def test_settings_read_and_validate_the_experiment_and_policy(monkeypatch):
    monkeypatch.setenv("REELRANK_EXPERIMENT", json.dumps(EXPERIMENT))
    monkeypatch.setenv("REELRANK_POLICY", '{"kind": "epsilon", "epsilon": 0.2}')
    settings = Settings()
    assert settings.experiment is not None
    assert [arm.model_ref for arm in settings.experiment.arms] == ["alias:champion", "version:7"]
    assert isinstance(settings.experiment.arms[1].policy, PlackettLucePolicy)
    assert settings.policy.label == "epsilon(epsilon=0.2,pool=20)"
    assert Settings(_env_file=None).policy.kind == "epsilon"


@pytest.mark.parametrize(
    "bad",
    [
        {**EXPERIMENT, "arms": [{"name": "a", "alias": "champion", "version": "1"}]},
        {**EXPERIMENT, "arms": [{"name": "a"}]},
        {**EXPERIMENT, "arms": [{"name": "a", "alias": "x"}, {"name": "a", "alias": "y"}]},
        {**EXPERIMENT, "arms": []},
        {**EXPERIMENT, "design": "interleaving"},
        {**EXPERIMENT, "arms": [{"name": "a", "alias": "x", "weight": 0}]},
        {**EXPERIMENT, "typo": 1},
    ],
)
def test_a_bad_experiment_is_refused(bad):
    with pytest.raises(ValidationError):
        Experiment.model_validate(bad)


def test_a_bad_policy_is_refused_by_the_settings(monkeypatch):
    monkeypatch.setenv("REELRANK_POLICY", '{"kind": "plackett-luce", "temperature": 0}')
    with pytest.raises(ValidationError, match="temperature"):
        Settings()

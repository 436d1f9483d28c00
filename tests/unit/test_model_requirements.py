"""The registered model's pip requirements are given, pinned, and name what it imports."""

from __future__ import annotations

from importlib.metadata import version

from reelrank.training.tracking import MODEL_REQUIREMENTS, model_requirements


def test_requirements_pin_every_runtime_import_of_the_model():
    pinned = dict(line.split("==") for line in model_requirements())
    assert set(pinned) == set(MODEL_REQUIREMENTS)
    for name in ("lightgbm", "implicit", "numba", "reelrank"):  # MLflow's inference missed 3
        assert pinned[name] == version(name)

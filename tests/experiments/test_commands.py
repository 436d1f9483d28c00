"""``reelrank experiment ...``: the numbers a script reads, and clear refusals."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from cli.app import app
from reelrank.experiments.power import sample_size

runner = CliRunner()


def test_plan_prints_the_units_per_arm_as_json():
    result = runner.invoke(
        app, ["experiment", "plan", "--baseline", "0.10", "--mde", "0.02", "--json"]
    )
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["per_arm"] == sample_size(0.10, 0.02).per_arm
    # the textbook figure for p = 10 %, a 2 % relative lift, alpha 5 %, power 80 %
    assert 352_000 < plan["per_arm"] < 354_000


def test_plan_refuses_an_impossible_rate_with_a_message():
    result = runner.invoke(app, ["experiment", "plan", "--baseline", "1.5", "--mde", "0.02"])
    assert result.exit_code == 1
    assert "baseline" in result.output

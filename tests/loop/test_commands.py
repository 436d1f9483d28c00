"""The loop's commands: thin wrappers that refuse bad options with a clear message."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli.app import app

runner = CliRunner()


@pytest.mark.parametrize("command", ["ingest-feedback", "simulate", "loop", "loop-study"])
def test_each_command_has_help(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output


def test_simulate_needs_exactly_one_way_to_the_service(data_dir):
    result = runner.invoke(app, ["simulate"])
    assert result.exit_code == 1
    assert "exactly one of --api URL or --in-process" in result.output


def test_a_bad_policy_is_refused_before_anything_runs(data_dir):
    result = runner.invoke(app, ["loop", "--policy", '{"kind": "softmax"}'])
    assert result.exit_code == 2
    assert "--policy" in result.output


def test_ingestion_without_a_lake_says_what_to_do(data_dir):
    result = runner.invoke(app, ["ingest-feedback", "--json"])
    assert result.exit_code == 1
    assert "reelrank data" in result.output


def test_ingestion_prints_json(data_dir, small_lake):
    import shutil

    shutil.copytree(small_lake, data_dir)
    result = runner.invoke(app, ["ingest-feedback", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["impressions"] == {"read": 0, "accepted": 0, "quarantined": 0, "reasons": {}}


def test_the_cli_and_the_library_agree_on_the_grace_period():
    from cli.loop import DEFAULT_GRACE_SECONDS
    from reelrank.loop.feedback import DEFAULT_GRACE_SECONDS as LIBRARY

    assert DEFAULT_GRACE_SECONDS == LIBRARY


def test_a_bad_cohort_is_refused_before_anything_runs(data_dir):
    result = runner.invoke(app, ["drift-run", "--cohort", "5", "--cohort-share", "2"])
    assert result.exit_code == 1
    assert "cohort share 2.0 of each day's visits must be in (0, 1]" in result.output


def test_the_control_arm_has_neither_the_shift_nor_the_cohort():
    from cli.monitor import _arm_arguments, _cohort_arguments

    common = ["--days", "3"]
    cohort = _cohort_arguments(40, 0.25)
    assert cohort == ["--cohort", "40", "--cohort-share", "0.25"]
    assert _cohort_arguments(0, 0.25) == []
    assert _arm_arguments("control", common, 1.5, cohort) == [
        "--days", "3", "--shift", "0", "--retrain",
    ]  # fmt: skip
    assert _arm_arguments("change", common, 1.5, cohort) == [*common, *cohort, "--shift",
                                                             "1.5", "--retrain"]  # fmt: skip
    assert _arm_arguments("no-retrain", common, 1.5, cohort)[-1] == "--no-retrain"

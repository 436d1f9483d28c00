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

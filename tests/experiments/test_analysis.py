"""``reelrank experiment analyze``: an experiment's logs, ingested, analysed per user."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from reelrank.exceptions import ValidationError
from reelrank.experiments.analysis import analyse_lake
from reelrank.experiments.assignment import Assigner
from reelrank.experiments.config import Arm, Experiment
from reelrank.loop.feedback import ingest_feedback
from tests.loop.conftest import NOW, event, slate, write_events, write_slates

EXPERIMENT = Experiment(
    name="exp1", salt="s1", arms=(Arm(name="control", alias="champion"), Arm(name="b", version="1"))
)


def _serve(settings, users=range(1, 41), arm_of=None):
    """Two slates per user; control users play slot 1 of both, treatment of the first."""
    assigner = Assigner(EXPERIMENT)
    slates, events, expected = [], [], {"control": [0, 0, 0], "b": [0, 0, 0]}
    for user in users:
        arm = arm_of(user) if arm_of else assigner.arm(user).name
        expected[arm][0] += 1
        for n in range(2):
            rid = f"u{user}-{n}"
            slates.append(slate(rid, user, [1, 2, 3], experiment="exp1", design="ab", arm=arm))
            expected[arm][1] += 1
            if arm == "control" or n == 0:
                events.append(event("click", rid, 1, user, 1))
                events.append(event("play", rid, 1, user, 1))
                expected[arm][2] += 1
    write_slates(settings, *slates)
    write_events(settings, *events)
    ingest_feedback(settings, now=NOW)
    return expected


def test_the_analysis_counts_users_slates_and_plays_per_arm(lake_settings):
    expected = _serve(lake_settings)
    analysis = analyse_lake(lake_settings.lake_path, "exp1", split={"control": 1, "b": 1})
    result = analysis.result
    for summary in (result.control, result.treatment):
        users, slates, plays = expected[summary.arm]
        assert (summary.users, summary.slates, summary.plays) == (users, slates, plays)
        assert summary.clicks == plays
    assert result.control.play_rate == 1.0
    assert result.treatment.play_rate == 0.5
    assert result.difference.estimate == pytest.approx(-0.5)
    assert result.difference.high < 0
    assert result.cuped is not None  # the source's events are the pre-period covariate
    assert not result.srm.mismatch


def test_a_skewed_split_fires_the_sample_ratio_check(lake_settings):
    _serve(lake_settings, users=range(1, 51), arm_of=lambda u: "control" if u % 10 else "b")
    analysis = analyse_lake(lake_settings.lake_path, "exp1", split={"control": 1, "b": 1})
    assert analysis.result.srm.mismatch  # 45 against 5 users on a 50/50 split


def test_an_unknown_experiment_or_arm_is_refused_with_what_is_there(lake_settings):
    _serve(lake_settings, users=range(1, 11))
    with pytest.raises(ValidationError, match=r"exp1"):
        analyse_lake(lake_settings.lake_path, "nope")
    with pytest.raises(ValidationError, match="--control"):
        analyse_lake(lake_settings.lake_path, "exp1", control="z")


def test_the_command_prints_json_and_writes_the_page(lake_settings, monkeypatch):
    from cli.app import app
    from reelrank.config import reset_settings

    _serve(lake_settings)
    monkeypatch.setenv("REELRANK_DATA_DIR", str(lake_settings.data_dir))
    reset_settings()
    result = CliRunner().invoke(
        app, ["experiment", "analyze", "--experiment", "exp1", "--control", "control", "--json"]
    )
    reset_settings()
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["difference"]["estimate"] == pytest.approx(-0.5)
    assert record["mlflow_run_id"]
    page = lake_settings.reports_path / "experiments" / "exp1.md"
    assert "| control |" in page.read_text()

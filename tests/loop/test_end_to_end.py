"""The loop end to end on a store built by the pipeline (300 users, 200 items, 20,000
events): simulated users against a real server, their logs ingested (a second ingestion
adds nothing), and the loop flow in process: simulate -> ingest -> retrain -> gate ->
reload (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from reelrank.config import Settings
from reelrank.data.ingest import read_lake
from tests.serving.conftest import ROOT, pipeline_store  # noqa: F401 (the fixture)
from tests.serving.test_server_process import ENV_OF_THIS_PROCESS, start_server, stop_server

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.xdist_group("serving")]


@pytest.fixture
def store(pipeline_store: Path, tmp_path: Path) -> Path:  # noqa: F811
    """A self-contained copy (training in it must not write into the shared store)."""
    from reelrank.loop.study import copy_data_dir

    return copy_data_dir(pipeline_store, tmp_path / "data")


def _cli(data: Path, *args: str, timeout: float = 600) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ENV_OF_THIS_PROCESS}
    env |= {"REELRANK_DATA_DIR": str(data), "PREFECT_HOME": str(data.parent / "prefect")}
    done = subprocess.run(
        [sys.executable, "-m", "cli", *args], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=timeout,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done.stdout


def test_simulated_users_against_the_server_then_ingestion_twice(store: Path):
    process, base = start_server({"REELRANK_DATA_DIR": str(store)})
    try:
        days = json.loads(
            _cli(
                store,
                "simulate",
                "--api",
                base,
                "--days",
                "2",
                "--users",
                "30",
                "--seed",
                "1",
                "--json",
            )
        )
        metrics = httpx.get(f"{base}/metrics", timeout=30).text
    finally:
        stop_server(process)
    assert [d["visits"] for d in days] == [30, 30]
    assert "reelrank_impressions_written_total 60.0" in metrics
    time.sleep(2.5)  # past the ingestion's grace period
    first = json.loads(_cli(store, "ingest-feedback", "--json"))
    assert (first["impressions"]["read"], first["impressions"]["accepted"]) == (60, 60)
    assert first["feedback"]["accepted"] == first["feedback"]["read"] >= 600
    assert first["impressions"]["quarantined"] == first["feedback"]["quarantined"] == 0
    assert first["totals"]["play"] == sum(d["plays"] for d in days)
    second = json.loads(_cli(store, "ingest-feedback", "--json"))
    assert second["impressions"]["read"] == second["feedback"]["read"] == 0
    assert set(second["added"].values()) == {0}
    assert not second["wrote"]
    events = read_lake(Settings(data_dir=store).lake_path).events
    assert (events["origin"] == "feedback").sum() == first["totals"]["events_from_feedback"] > 0


def test_the_loop_retrains_on_what_it_served_and_serves_the_retrained_model(store: Path):
    """One round (the suite's budget): served by version 1, retrained into version 2,
    promoted (gate=always) and reloaded; ``reelrank loop --rounds 3`` runs the same flow."""
    record = store.parent / "rounds.json"
    _cli(
        store, "loop", "--rounds", "1", "--users", "40", "--gate", "always", "--folds", "2",
        "--policy", '{"kind": "epsilon", "epsilon": 0.5, "pool": 30}', "--record", str(record),
        timeout=900,
    )  # fmt: skip
    (only,) = json.loads(record.read_text())
    assert only["round"] == 1
    assert only["served_version"] == "1"
    assert only["trained_version"] == only["next_version"] == "2"  # promoted and reloaded
    assert only["visits"] == 40
    assert only["feedback_quarantined"] == 0
    assert 0 < only["true_play_rate"] < 1
    assert 0 < only["coverage"] <= 1
    assert 0 <= only["exposure_gini"] < 1
    events = read_lake(Settings(data_dir=store).lake_path).events
    assert (events["origin"] == "feedback").sum() == only["events_added"] > 0
    slates = [
        json.loads(line)
        for p in (store / "impressions").glob("*.jsonl")
        for line in p.read_text().splitlines()
    ]
    assert len(slates) == 40
    assert {s["policy"] for s in slates} == {"epsilon(epsilon=0.5,pool=30)"}
    assert any(s["slate_propensity"] < 1 for s in slates)  # some slates explored


def test_a_simulated_experiment_prints_its_estimate_and_true_effect(store: Path):
    aa = json.loads(
        _cli(store, "experiment", "simulate", "--design", "aa", "--days", "2", "--users", "40",
             "--seed", "3", "--json")
    )  # fmt: skip
    assert aa["true_effect"] == 0.0
    assert aa["ci_low"] <= aa["estimate"] <= aa["ci_high"]
    assert aa["visits"] == 80
    ab = json.loads(
        _cli(store, "experiment", "simulate", "--design", "ab", "--days", "2", "--users", "40",
             "--seed", "3", "--json")
    )  # fmt: skip
    assert ab["true_effect"] != 0.0  # the challenger explores: its slates differ
    assert isinstance(ab["covered"], bool)


def test_the_monitor_compares_the_served_window_with_the_champions_reference(store: Path):
    _cli(store, "simulate", "--in-process", "--days", "1", "--users", "40", "--seed", "2")
    result = json.loads(_cli(store, "monitor", "--window", "1", "--json"))
    report = result["monitor"]
    assert report["model_version"] == "1"
    assert report["users"] > 0
    assert report["slates_items"] >= report["users"]
    assert report["feature_psi"]  # every stored user feature the ranker reads
    assert all(value >= 0 for value in report["feature_psi"].values())
    assert report["score_psi"] is not None
    assert result["retrained"] is False
    latest = json.loads((store / "monitoring" / "latest.json").read_text())
    assert latest["feature_psi"] == report["feature_psi"]


def test_a_drift_run_serves_monitors_and_answers_a_changed_world(store: Path):
    """The drift-injection run, bounded for the suite: three days of 60 visits, Drama's
    appeal falling by 2 sd from the second; every day monitored, any retrain gated and
    logged with its reason; the page renders from the record. The full-size run is the
    command on design_docs/results/drift.md."""
    from reelrank.monitoring.timeline import render_page

    record = store.parent / "drift.json"
    results = store.parent / "results"
    _cli(
        store, "drift-run", "--days", "3", "--change-day", "1", "--shift", "-2", "--users",
        "60", "--folds", "2", "--record", str(record), "--results", str(results), timeout=900,
    )  # fmt: skip
    study = json.loads(record.read_text())
    assert list(study["arms"]) == ["change"]
    days = study["arms"]["change"]["days"]
    assert [d["day"] for d in days] == [0, 1, 2]
    assert [d["change_active"] for d in days] == [False, True, True]
    assert days[0]["served_version"] == "1"
    for day in days:
        assert day["visits"] == 60
        assert 0 < day["true_play_rate"] < 1
        assert day["true_play_rate"] <= day["ideal_play_rate"]  # no row beats the ideal one
        assert day["share_of_ideal"] == pytest.approx(
            day["true_play_rate"] / day["ideal_play_rate"]
        )
        assert day["users_monitored"] > 0
        assert day["max_psi_threshold"] >= 0.2  # 0.2, or this small window's noise level
        assert (day["max_psi"] > day["max_psi_threshold"]) == bool(
            set(day["drifted"]) - {"play_rate"}
        )
        assert day["retrained"] == bool(day["drifted"])  # the trigger retrains on drift only
    # The change costs the users what the world gave them: the service kept its rows.
    assert days[1]["true_play_rate"] < days[0]["true_play_rate"]
    triggers = store / "monitoring" / "triggers.jsonl"
    retrained = [d for d in days if d["retrained"]]
    if retrained:
        lines = triggers.read_text().splitlines()
        assert len(lines) == len(retrained)
        assert all(json.loads(line)["reason"].startswith("drift: ") for line in lines)
    assert (results / "drift.md").read_text() == render_page(study)
    from reelrank.loop.study import next_simulated_day

    assert next_simulated_day(store) == 3  # a later run on this data dir starts at day 3


def test_a_returning_cohort_moves_the_served_features_the_monitor_reads(store: Path):
    """Population drift, bounded for the suite (two days of 40 visits, the trigger off: the
    retrain's path is the test above): from day 1 a cohort of lapsed users takes half the
    visits, and the served window's features move with them. The full-size study is the
    command on design_docs/results/cohort/drift.md."""
    record = store.parent / "cohort.json"
    _cli(
        store, "drift-run", "--days", "2", "--change-day", "1", "--cohort", "30",
        "--cohort-share", "0.5", "--genre", "Comedy", "--shift", "1.5", "--users", "40",
        "--no-retrain", "--record", str(record), timeout=600,
    )  # fmt: skip
    study = json.loads(record.read_text())
    assert study["setup"]["change"] == {
        "kind": "returning_cohort", "genre": "Comedy", "shift": 1.5, "day": 1, "users": 30,
        "share": 0.5, "seed": 0,
    }  # fmt: skip
    assert "--cohort 30 --cohort-share 0.5" in study["commands"][1]
    days = study["arms"]["no-retrain"]["days"]
    assert [d["change_active"] for d in days] == [False, True]
    assert [d["visits"] for d in days] == [40, 40]
    assert not any(d["retrained"] for d in days)
    before, after = days
    # Half the served users have not acted for months: their features are far from the
    # reference, beyond the threshold and beyond the day before.
    assert after["max_feature_psi"] > after["max_psi_threshold"]
    assert after["max_feature_psi"] > 2 * before["max_feature_psi"]
    assert set(after["drifted"]) - {"play_rate"}

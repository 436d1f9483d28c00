"""The `reelrank` command line, end to end on a small synthetic world (no network)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from cli.app import app

runner = CliRunner()


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("data", "features", "train", "run", "evaluate", "serve", "deploy", "report"):
        assert command in result.output


def test_data_on_synthetic_writes_lake_and_prints_summary(data_dir: Path) -> None:
    args = ["data", "--dataset", "synthetic", "--users", "100", "--items", "80"]
    result = runner.invoke(app, [*args, "--events", "2000", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "Ingest summary" in result.output
    summary = json.loads((data_dir / "lake" / "summary.json").read_text())
    assert summary["dataset"] == "synthetic"
    for table, expected in (("events", 2000), ("users", 100), ("items", 80)):
        figures = summary[table]
        assert figures["read"] == expected
        assert figures["read"] == figures["accepted"] + figures["quarantined"]
        assert len(pd.read_parquet(data_dir / "lake" / f"{table}.parquet")) == figures["accepted"]


def test_unknown_dataset_is_refused_with_the_choices(data_dir: Path) -> None:
    result = runner.invoke(app, ["data", "--dataset", "netflix"])
    assert result.exit_code != 0
    assert "netflix" in result.output
    assert "synthetic" in result.output


def test_bad_zip_fails_with_a_message_naming_the_file(data_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "not-a-zip.zip"
    bad.write_text("garbage")
    result = runner.invoke(app, ["data", "--source", str(bad)])
    assert result.exit_code == 1
    output = result.output.replace("\n", "")  # rich wraps long paths
    assert "not a zip archive" in output
    assert "not-a-zip.zip" in output
    assert not (data_dir / "lake" / "events.parquet").exists()


def test_evaluate_without_a_run_says_what_to_do(data_dir: Path) -> None:
    result = runner.invoke(app, ["evaluate", "--dataset", "ml-100k"])
    assert result.exit_code == 1
    assert "reelrank train" in result.output


def test_offline_run_prints_the_two_ways_out_without_a_traceback(tmp_path: Path) -> None:
    """No network (a proxy on a closed port stands in for it): one clear message, exit 1;
    the traceback stays out of the console (it is in Prefect's run log and --verbose)."""
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "REELRANK_DATA_DIR": str(tmp_path / "data"),
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    result = subprocess.run(
        [sys.executable, "-m", "cli", "run", "--no-train"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert "Two ways out" in output.replace("\n", " ")
    assert "--dataset synthetic" in output.replace("\n", " ")
    assert "Traceback" not in output, output[-3000:]
    assert not (tmp_path / "data" / "lake" / "events.parquet").exists()

"""A study's copies of the base data dir are self-contained: nothing written in a copy
reaches the base (MLflow's absolute artifact paths and the lake summary are relocated)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from reelrank.exceptions import DataSourceError
from reelrank.loop.study import build_command, copy_data_dir, world_of


def _digest(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(directory)).encode() + path.read_bytes())
    return digest.hexdigest()


def test_a_copy_points_at_itself_and_leaves_the_base_alone(small_lake: Path, tmp_path: Path):
    base = copy_data_dir(small_lake, tmp_path / "base")  # a data dir that names itself
    with sqlite3.connect(base / "mlflow.db") as db:
        db.execute("CREATE TABLE experiments (artifact_location VARCHAR(256), n INTEGER)")
        db.execute(
            "INSERT INTO experiments VALUES (?, 1)", (f"file://{base.resolve()}/mlartifacts",)
        )
        db.execute("CREATE TABLE runs (artifact_uri TEXT)")
        db.execute(
            "INSERT INTO runs VALUES (?)", (f"file://{base.resolve()}/mlartifacts/r/artifacts",)
        )
    (base / "impressions").mkdir()
    (base / "impressions" / "impressions-2026-12-01.jsonl").write_text("{}\n")
    before = _digest(base)
    copy = copy_data_dir(base, tmp_path / "runs" / "greedy" / "data")
    assert _digest(base) == before
    assert not (copy / "impressions").exists()  # a run starts without the base's logs
    with sqlite3.connect(copy / "mlflow.db") as db:
        locations = [row[0] for row in db.execute("SELECT artifact_location FROM experiments")]
        uris = [row[0] for row in db.execute("SELECT artifact_uri FROM runs")]
    assert locations == [f"file://{copy}/mlartifacts"]
    assert uris == [f"file://{copy}/mlartifacts/r/artifacts"]
    summary = json.loads((copy / "lake" / "summary.json").read_text())
    assert summary["source"].startswith(str(copy))
    assert world_of(copy) == {"n_users": 50, "n_items": 40, "n_events": 600, "seed": 1}
    assert build_command(world_of(copy), 2) == (
        "reelrank run --dataset synthetic --users 50 --items 40 --events 600 --seed 1 "
        "--folds 2 --no-diagnostics"
    )


def test_only_a_data_dir_with_a_lake_is_copied(tmp_path: Path):
    with pytest.raises(DataSourceError, match="no lake"):
        copy_data_dir(tmp_path / "empty", tmp_path / "copy")

"""Atomic writes: an interrupted write never leaves a half-written file at the target."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from reelrank.data import io as rio


def _temps(directory: Path) -> list[Path]:
    return sorted(directory.glob(f".*{rio.TEMP_SUFFIX}"))


def test_writes_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "blob.bin"
    rio.atomic_write_bytes(b"one", target)
    rio.atomic_write_bytes(b"two", target)
    assert target.read_bytes() == b"two"
    assert _temps(target.parent) == []


def test_exception_mid_write_keeps_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "blob.bin"
    target.write_bytes(b"old")

    def write_then_fail() -> None:
        with rio.atomic_path(target) as tmp:
            tmp.write_bytes(b"half of the new")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        write_then_fail()
    assert target.read_bytes() == b"old"
    assert _temps(tmp_path) == []


def test_keyboard_interrupt_mid_write_also_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "blob.bin"

    def write_then_interrupt() -> None:
        with rio.atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_then_interrupt()
    assert not target.exists()
    assert _temps(tmp_path) == []


def test_failed_rename_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "blob.bin"
    target.write_bytes(b"old")

    def refuse(src: object, dst: object) -> None:
        raise OSError("rename refused")

    monkeypatch.setattr(rio.os, "replace", refuse)
    with pytest.raises(OSError, match="rename refused"):
        rio.atomic_write_bytes(b"new", target)
    assert target.read_bytes() == b"old"
    assert _temps(tmp_path) == []


def test_parquet_failure_leaves_old_parquet_intact(tmp_path: Path) -> None:
    target = tmp_path / "events.parquet"
    good = pd.DataFrame({"a": [1, 2, 3]})
    rio.atomic_write_parquet(good, target)
    unwritable = pd.DataFrame({"a": [1, "two", object()]})  # pyarrow cannot convert this
    with pytest.raises(Exception):
        rio.atomic_write_parquet(unwritable, target)
    pd.testing.assert_frame_equal(pd.read_parquet(target), good)
    assert _temps(tmp_path) == []


def test_killed_process_never_leaves_a_partial_target(tmp_path: Path) -> None:
    """A process that dies (os._exit) mid-write leaves the old target whole."""
    target = tmp_path / "events.parquet"
    rio.atomic_write_parquet(pd.DataFrame({"a": [1]}), target)
    script = f"""
import os, pandas as pd
from reelrank.data import io as rio
with rio.atomic_path({str(target)!r}) as tmp:
    pd.DataFrame({{"a": range(100_000)}}).to_parquet(tmp)
    os._exit(3)
"""
    done = subprocess.run([sys.executable, "-c", script], check=False, timeout=60)
    assert done.returncode == 3
    assert pd.read_parquet(target)["a"].tolist() == [1]
    left = _temps(tmp_path)
    assert len(left) == 1  # the dead writer's temporary file, never the target
    assert rio.remove_stale_temps(target) == left
    assert _temps(tmp_path) == []


def test_json_round_trip_and_stable_format(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    rio.atomic_write_json({"b": 1, "a": {"path": Path("/x")}, "café": "é"}, target)
    text = target.read_text(encoding="utf-8")
    assert json.loads(text) == {"a": {"path": "/x"}, "b": 1, "café": "é"}
    assert text.index('"a"') < text.index('"b"')  # sorted keys: diffable


def test_new_files_get_normal_permissions(tmp_path: Path) -> None:
    target = rio.atomic_write_bytes(b"x", tmp_path / "f.bin")
    mode = stat.S_IMODE(target.stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


def test_replacing_keeps_the_targets_permissions(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    target.chmod(0o640)
    rio.atomic_write_bytes(b"new", target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_batch_commits_all_files_together(tmp_path: Path) -> None:
    df = pd.DataFrame({"x": [1.5]})
    with rio.AtomicBatch() as batch:
        batch.write_parquet(df, tmp_path / "a.parquet")
        batch.write_json({"ok": True}, tmp_path / "summary.json")
        batch.write_bytes(b"raw", tmp_path / "c.bin")
        assert not (tmp_path / "a.parquet").exists()  # nothing visible before the commit
    assert batch.committed == [
        tmp_path / "a.parquet",
        tmp_path / "summary.json",
        tmp_path / "c.bin",
    ]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a.parquet"), df)
    assert _temps(tmp_path) == []


def test_batch_failure_replaces_nothing(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"old a")
    (tmp_path / "b.bin").write_bytes(b"old b")

    def write_two_then_fail() -> None:
        with rio.AtomicBatch() as batch:
            batch.write_bytes(b"new a", tmp_path / "a.bin")
            batch.write_bytes(b"new b", tmp_path / "b.bin")
            raise ValueError("validation failed")

    with pytest.raises(ValueError, match="validation failed"):
        write_two_then_fail()
    assert (tmp_path / "a.bin").read_bytes() == b"old a"
    assert (tmp_path / "b.bin").read_bytes() == b"old b"
    assert _temps(tmp_path) == []


def test_batch_refuses_the_same_target_twice(tmp_path: Path) -> None:

    def write_twice() -> None:
        with rio.AtomicBatch() as batch:
            batch.write_bytes(b"1", tmp_path / "a.bin")
            batch.write_bytes(b"2", tmp_path / "a.bin")

    with pytest.raises(ValueError, match="already part"):
        write_twice()
    assert not (tmp_path / "a.bin").exists()
    assert _temps(tmp_path) == []


def test_sha256_file(tmp_path: Path) -> None:
    path = rio.atomic_write_bytes(b"abc", tmp_path / "f")
    assert rio.sha256_file(path) == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )

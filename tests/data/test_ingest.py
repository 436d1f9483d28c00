"""run_ingest end to end on small sources: files, summary, atomicity, read_lake."""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path

import pandas as pd
import pytest

from reelrank import schema as s
from reelrank.config import Settings
from reelrank.data import io as rio
from reelrank.data import movielens as ml
from reelrank.data import validation as v
from reelrank.data.ingest import (
    SUMMARY_FILE,
    TABLE_FILES,
    lake_content_hash,
    read_lake,
    read_summary,
    run_ingest,
)
from reelrank.exceptions import DataSourceError
from tests.data.movielens_fixtures import (
    ML100K_CASES,
    ML100K_EVENTS,
    ML100K_ITEMS,
    ML100K_USERS,
    write_ml100k_zip,
)


def _snapshot(*directories: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for d in directories if d.exists() for p in sorted(d.iterdir())}


def _dirty_zip(tmp_path: Path) -> Path:
    tables = {"events": list(ML100K_EVENTS), "users": list(ML100K_USERS)}
    tables["items"] = list(ML100K_ITEMS)
    for case in ML100K_CASES:
        tables[case.table].append(case.line)
    return write_ml100k_zip(
        tmp_path / "dirty" / "ml-100k.zip", tables["events"], tables["users"], tables["items"]
    )


def test_ingest_writes_lake_quarantine_and_summary(ml100k_zip: Path, settings: Settings) -> None:
    messages: list[str] = []
    summary = run_ingest("ml-100k", settings, source=ml100k_zip, progress=messages.append)

    for filename in TABLE_FILES.values():
        assert (settings.lake_path / filename).is_file()
        assert (settings.quarantine_path / filename).is_file()  # written even when empty
    on_disk = json.loads((settings.lake_path / SUMMARY_FILE).read_text())
    assert on_disk == json.loads(json.dumps(summary.to_dict(), default=str))
    assert on_disk["dataset"] == "ml-100k"
    assert on_disk["source"] == str(ml100k_zip)
    assert on_disk["rating_scale"] == {"min": 1.0, "max": 5.0}
    assert on_disk["events"] == {
        "read": len(ML100K_EVENTS),
        "accepted": len(ML100K_EVENTS),
        "quarantined": 0,
        "reasons": {},
    }
    assert len(on_disk["data_version"]) == 16
    assert on_disk["content_sha256"].startswith(on_disk["data_version"])
    assert summary.events.accepted == len(ML100K_EVENTS)
    assert messages
    assert messages[-1].startswith("done")
    leftovers = list(settings.data_dir.rglob(f"*{rio.TEMP_SUFFIX}"))
    assert leftovers == []


def test_read_lake_round_trips_the_canonical_frames(ml100k_zip: Path, settings: Settings) -> None:
    summary = run_ingest("ml-100k", settings, source=ml100k_zip)
    tables = ml.read_movielens(ml100k_zip)
    expected = v.validate_tables(tables.events, tables.users, tables.items, name="ml-100k")

    lake = read_lake(settings.lake_path)
    assert lake.name == "ml-100k"
    assert (lake.rating_min, lake.rating_max) == (1.0, 5.0)
    for table in s.TABLES:
        pd.testing.assert_frame_equal(lake.table(table), expected.dataset.table(table))
    assert isinstance(lake.items[s.GENRES].iloc[0], list)
    assert lake_content_hash(lake) == summary.content_sha256


def test_dirty_source_quarantines_every_bad_row(tmp_path: Path, settings: Settings) -> None:
    summary = run_ingest("ml-100k", settings, source=_dirty_zip(tmp_path))
    on_disk = read_summary(settings.lake_path)
    for table in s.TABLES:
        figures = on_disk[table]
        assert figures["read"] == figures["accepted"] + figures["quarantined"]
        quarantine = pd.read_parquet(settings.quarantine_path / TABLE_FILES[table])
        cases = [c for c in ML100K_CASES if c.table == table]
        assert len(quarantine) == figures["quarantined"] == len(cases)
        assert sorted(zip(quarantine[v.RAW], quarantine[s.REASON], strict=True)) == sorted(
            (c.line, c.reason) for c in cases
        )
    assert summary.events.accepted == len(ML100K_EVENTS)


def test_rerun_replaces_stale_quarantine(
    tmp_path: Path, ml100k_zip: Path, settings: Settings
) -> None:
    run_ingest("ml-100k", settings, source=_dirty_zip(tmp_path))
    assert not pd.read_parquet(settings.quarantine_path / "events.parquet").empty
    run_ingest("ml-100k", settings, source=ml100k_zip)
    for filename in TABLE_FILES.values():
        assert pd.read_parquet(settings.quarantine_path / filename).empty


def test_same_source_gives_the_same_data_version(ml100k_zip: Path, settings: Settings) -> None:
    first = run_ingest("ml-100k", settings, source=ml100k_zip)
    second = run_ingest("ml-100k", settings, source=ml100k_zip)
    assert first.data_version == second.data_version


def test_different_content_gives_another_data_version(
    tmp_path: Path, ml100k_zip: Path, settings: Settings
) -> None:
    first = run_ingest("ml-100k", settings, source=ml100k_zip)
    other = write_ml100k_zip(tmp_path / "other.zip", events=ML100K_EVENTS[:-1])
    assert run_ingest("ml-100k", settings, source=other).data_version != first.data_version


def test_failed_source_leaves_the_previous_lake_untouched(
    tmp_path: Path, ml100k_zip: Path, settings: Settings
) -> None:
    run_ingest("ml-100k", settings, source=ml100k_zip)
    before = _snapshot(settings.lake_path, settings.quarantine_path)
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataSourceError, match="not a zip"):
        run_ingest("ml-100k", settings, source=broken)
    assert _snapshot(settings.lake_path, settings.quarantine_path) == before


def test_failure_while_writing_leaves_the_previous_lake_untouched(
    tmp_path: Path, ml100k_zip: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_ingest("ml-100k", settings, source=ml100k_zip)
    before = _snapshot(settings.lake_path, settings.quarantine_path)
    real_write = rio.write_parquet
    calls = {"n": 0}

    def dies_on_the_fifth(df: pd.DataFrame, path: Path) -> None:
        calls["n"] += 1
        if calls["n"] == 5:
            real_write(df.head(1), path)  # a partial file, then the "crash"
            raise OSError("disk full")
        real_write(df, path)

    monkeypatch.setattr(rio, "write_parquet", dies_on_the_fifth)
    with pytest.raises(OSError, match="disk full"):
        run_ingest("ml-100k", settings, source=_dirty_zip(tmp_path))
    assert _snapshot(settings.lake_path, settings.quarantine_path) == before
    assert list(settings.data_dir.rglob(f"*{rio.TEMP_SUFFIX}")) == []


def test_no_network_names_both_ways_out(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(url: str, dest: Path) -> None:
        raise urllib.error.URLError("Network is unreachable")

    monkeypatch.setattr(ml, "download_url", offline)
    with pytest.raises(DataSourceError) as error:
        run_ingest("ml-100k", settings)
    assert "no network" in str(error.value)
    assert "--source" in str(error.value)
    assert "--dataset synthetic" in str(error.value)
    assert not settings.lake_path.exists()


def test_source_does_not_apply_to_synthetic(ml100k_zip: Path, settings: Settings) -> None:
    with pytest.raises(DataSourceError, match="--source"):
        run_ingest("synthetic", settings, source=ml100k_zip)


def test_unknown_dataset_is_refused(settings: Settings) -> None:
    with pytest.raises(DataSourceError, match="unknown dataset"):
        run_ingest("ml-25m", settings)  # type: ignore[arg-type]


def test_read_lake_without_a_lake_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="reelrank data"):
        read_lake(tmp_path / "lake")


def test_synthetic_ingest_saves_ground_truth(settings: Settings) -> None:
    synthetic = pytest.importorskip("reelrank.data.synthetic")
    config = synthetic.SyntheticConfig(n_users=60, n_items=40, n_events=600, seed=7)
    summary = run_ingest("synthetic", settings, synthetic=config)

    assert summary.events.read == summary.events.accepted == 600
    assert summary.users.accepted == 60
    assert summary.items.accepted == 40
    truth_dir = Path(summary.source)
    assert truth_dir.is_relative_to(settings.raw_path / "synthetic")
    assert any(truth_dir.iterdir())
    lake = read_lake(settings.lake_path)
    assert lake.name == "synthetic"
    assert str(lake.events[s.TIMESTAMP].dtype) == "datetime64[ns, UTC]"
    again = run_ingest("synthetic", settings, synthetic=config)
    assert again.data_version == summary.data_version

"""MovieLens readers: parsing, each malformed case quarantined alone, format errors, download."""

from __future__ import annotations

import dataclasses
import hashlib
import urllib.error
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from reelrank import schema as s
from reelrank.data import movielens as ml
from reelrank.data import validation as v
from reelrank.data.movielens import fetch_movielens, read_movielens
from reelrank.exceptions import DataSourceError
from tests.data.conftest import NOW
from tests.data.movielens_fixtures import (
    LATIN1_TITLE,
    ML1M_CASES,
    ML1M_EVENTS,
    ML1M_ITEMS,
    ML1M_USERS,
    ML100K_CASES,
    ML100K_EVENTS,
    ML100K_GENRES,
    ML100K_ITEMS,
    ML100K_OCCUPATIONS,
    ML100K_USERS,
    BadLine,
    with_bad_line,
    write_ml1m_zip,
    write_ml100k_zip,
)


def _validate(path: Path, variant: ml.MovieLensVariant | None = None) -> v.ValidationResult:
    tables = read_movielens(path, variant)
    return v.validate_tables(tables.events, tables.users, tables.items, now=NOW)


def _assert_accounting(result: v.ValidationResult) -> None:
    for table, report in result.reports.items():
        assert report.read == report.accepted + report.quarantined
        assert report.accepted == len(result.dataset.table(table))
        assert report.quarantined == len(result.quarantine[table])


# --------------------------------------------------------------------------- clean parsing


def test_ml100k_parses_to_canonical_frames(ml100k_zip: Path) -> None:
    result = _validate(ml100k_zip)
    events, users, items = result.dataset.events, result.dataset.users, result.dataset.items

    assert {t: r.quarantined for t, r in result.reports.items()} == {
        "events": 0,
        "users": 0,
        "items": 0,
    }
    for table, schema in s.SCHEMAS.items():
        frame = result.dataset.table(table)
        assert list(frame.columns[: len(schema.columns)]) == schema.columns
        for column, dtype in schema.dtypes.items():
            assert str(frame[column].dtype) == dtype, (table, column)
    assert len(events) == len(ML100K_EVENTS)
    assert events.loc[0, s.TIMESTAMP] == pd.Timestamp(881250949, unit="s", tz="UTC")
    assert events[s.RATING].tolist() == [5.0, 3.0, 4.0, 1.0, 2.0, 3.0]

    by_id = items.set_index(s.ITEM_ID)
    assert by_id.loc[2, s.TITLE] == LATIN1_TITLE  # latin-1 decoded, not mojibake
    assert by_id.loc[1, s.GENRES] == ["Animation", "Children's", "Comedy"]
    assert by_id.loc[2, s.GENRES] == ["Drama", "Romance"]
    assert by_id.loc[3, s.GENRES] == []  # the "unknown" flag is no genre
    assert by_id.loc[2, s.RELEASE_DATE] == pd.Timestamp("1995-03-05", tz="UTC")
    assert pd.isna(by_id.loc[3, s.RELEASE_DATE])
    assert by_id.loc[1, s.IMDB_URL] == "http://imdb/1"

    assert users.columns.tolist() == [s.USER_ID, s.AGE, s.GENDER, s.OCCUPATION, s.ZIP_CODE]
    assert users.loc[0].tolist() == [1, 24, "M", "technician", "85711"]


def test_ml1m_parses_to_canonical_frames(ml1m_zip: Path) -> None:
    result = _validate(ml1m_zip)
    items = result.dataset.items.set_index(s.ITEM_ID)
    users = result.dataset.users.set_index(s.USER_ID)

    assert result.reports["events"].accepted == len(ML1M_EVENTS)
    assert items.loc[2, s.TITLE] == LATIN1_TITLE
    assert items.loc[1, s.GENRES] == ["Animation", "Children's", "Comedy"]
    assert items.loc[3, s.RELEASE_DATE] == pd.Timestamp("1995-01-01", tz="UTC")  # from "(1995)"
    assert users.loc[1, s.OCCUPATION] == "K-12 student"  # code 10
    assert users.loc[2, s.AGE] == 56
    assert users.loc[1, s.GENDER] == "F"
    assert str(result.dataset.events[s.TIMESTAMP].dtype) == "datetime64[ns, UTC]"


def test_variant_is_detected_from_the_members(ml100k_zip: Path, ml1m_zip: Path) -> None:
    assert ml.detect_variant(ml100k_zip) == "ml-100k"
    assert ml.detect_variant(ml1m_zip) == "ml-1m"
    assert read_movielens(ml1m_zip).variant == "ml-1m"


def test_empty_lines_are_not_records_but_whitespace_lines_are(tmp_path: Path) -> None:
    path = write_ml100k_zip(tmp_path / "z.zip", events=[*ML100K_EVENTS, "", "   "])
    result = _validate(path)
    report = result.reports["events"]
    assert report.read == len(ML100K_EVENTS) + 1
    assert report.reasons == {v.UNPARSEABLE_LINE: 1}
    assert result.quarantine["events"][v.RAW].tolist() == ["   "]


# --------------------------------------------------------------------------- malformed lines


def _check_case(
    case: BadLine, clean: v.ValidationResult, dirty_path: Path, line_no: int, variant: str
) -> None:
    dirty = _validate(dirty_path, variant)  # type: ignore[arg-type]
    _assert_accounting(dirty)
    quarantine = dirty.quarantine[case.table]
    assert len(quarantine) == 1, quarantine
    row = quarantine.iloc[0]
    assert row[s.REASON] == case.reason
    assert row[v.RAW] == case.line
    assert row[v.LINE] == line_no
    assert dirty.reports[case.table].reasons == {case.reason: 1}
    for table in s.TABLES:
        if table != case.table:
            assert dirty.quarantine[table].empty
        # Nothing else changes: every accepted frame is exactly the clean one.
        pd.testing.assert_frame_equal(dirty.dataset.table(table), clean.dataset.table(table))


@pytest.mark.parametrize("case", ML100K_CASES, ids=lambda c: c.name)
def test_ml100k_each_bad_line_is_quarantined_alone(
    case: BadLine, ml100k_zip: Path, tmp_path: Path
) -> None:
    events, users, items, line_no = with_bad_line(case, ML100K_EVENTS, ML100K_USERS, ML100K_ITEMS)
    dirty = write_ml100k_zip(tmp_path / "dirty.zip", events, users, items)
    _check_case(case, _validate(ml100k_zip), dirty, line_no, "ml-100k")


@pytest.mark.parametrize("case", ML1M_CASES, ids=lambda c: c.name)
def test_ml1m_each_bad_line_is_quarantined_alone(
    case: BadLine, ml1m_zip: Path, tmp_path: Path
) -> None:
    events, users, items, line_no = with_bad_line(case, ML1M_EVENTS, ML1M_USERS, ML1M_ITEMS)
    dirty = write_ml1m_zip(tmp_path / "dirty.zip", events, users, items)
    _check_case(case, _validate(ml1m_zip), dirty, line_no, "ml-1m")


_LAYOUT_FIXTURES = {
    "ml-100k": (write_ml100k_zip, ML100K_CASES, ML100K_EVENTS, ML100K_USERS, ML100K_ITEMS),
    "ml-1m": (write_ml1m_zip, ML1M_CASES, ML1M_EVENTS, ML1M_USERS, ML1M_ITEMS),
}


@pytest.mark.parametrize("variant", sorted(_LAYOUT_FIXTURES))
def test_a_corrupted_copy_quarantines_every_planted_row_and_keeps_every_good_one(
    variant: str, tmp_path: Path
) -> None:
    write, cases, events, users, items = _LAYOUT_FIXTURES[variant]
    tables = {"events": list(events), "users": list(users), "items": list(items)}
    for case in cases:
        tables[case.table].append(case.line)
    dirty = _validate(
        write(tmp_path / "all.zip", tables["events"], tables["users"], tables["items"])
    )
    clean = _validate(write(tmp_path / "clean.zip"))
    _assert_accounting(dirty)
    for table in s.TABLES:
        planted = [(c.line, c.reason) for c in cases if c.table == table]
        quarantine = dirty.quarantine[table]
        assert sorted(zip(quarantine[v.RAW], quarantine[s.REASON], strict=True)) == sorted(planted)
        expected: dict[str, int] = {}
        for _, reason in planted:
            expected[reason] = expected.get(reason, 0) + 1
        assert dirty.reports[table].reasons == expected
        assert dirty.reports[table].read == len(tables[table])
        pd.testing.assert_frame_equal(dirty.dataset.table(table), clean.dataset.table(table))


@pytest.mark.parametrize("variant", sorted(_LAYOUT_FIXTURES))
def test_every_reason_has_a_planted_case(variant: str) -> None:
    cases = _LAYOUT_FIXTURES[variant][1]
    assert {c.reason for c in cases} == set(v.REASONS)


def test_a_quarantined_user_takes_its_events_along(tmp_path: Path) -> None:
    users = ["1|twenty|M|technician|85711", *ML100K_USERS[1:]]
    result = _validate(write_ml100k_zip(tmp_path / "z.zip", users=users))
    _assert_accounting(result)
    assert result.reports["users"].reasons == {v.INVALID_VALUE: 1}
    user_1_events = sum(line.startswith("1\t") for line in ML100K_EVENTS)
    assert result.reports["events"].reasons == {v.UNKNOWN_USER: user_1_events}
    assert 1 not in set(result.dataset.events[s.USER_ID])


def test_quarantine_keeps_the_original_values_as_text(tmp_path: Path) -> None:
    events = [*ML100K_EVENTS, "1\t3\tfive\t881250949"]
    quarantine = _validate(write_ml100k_zip(tmp_path / "z.zip", events=events)).quarantine
    row = quarantine["events"].iloc[0]
    assert (row[s.USER_ID], row[s.ITEM_ID], row[s.RATING], row[s.TIMESTAMP]) == (
        "1",
        "3",
        "five",
        "881250949",
    )
    assert str(quarantine["events"][v.LINE].dtype) == "Int64"


def test_ml100k_occupations_are_the_zips_own_list(tmp_path: Path) -> None:
    users = [*ML100K_USERS, "5|30|F|astronaut|00000"]
    own = [*ML100K_OCCUPATIONS, "astronaut"]
    result = _validate(write_ml100k_zip(tmp_path / "own.zip", users=users, occupations=own))
    assert result.reports["users"].quarantined == 0
    without_technician = [o for o in ML100K_OCCUPATIONS if o != "technician"]
    path = write_ml100k_zip(tmp_path / "fewer.zip", occupations=without_technician)
    quarantine = _validate(path).quarantine["users"]
    assert quarantine[s.OCCUPATION].tolist() == ["technician", "technician"]
    assert set(quarantine[s.REASON]) == {v.NOT_IN_VOCABULARY}


def test_ml100k_without_u_occupation_uses_the_documented_list(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    users = [*ML100K_USERS, "5|30|F|astronaut|00000"]
    path = write_ml100k_zip(tmp_path / "z.zip", users=users, occupations=None)
    result = _validate(path)
    assert result.reports["users"].reasons == {v.NOT_IN_VOCABULARY: 1}
    assert "u.occupation" in caplog.text


def test_ml100k_genre_flags_must_be_the_ones_u_genre_names(tmp_path: Path) -> None:
    without = _validate(write_ml100k_zip(tmp_path / "none.zip", genres=None))
    assert without.reports["items"].quarantined == 0
    swapped = list(ML100K_GENRES)
    swapped[1], swapped[2] = "Adventure|1", "Action|2"
    with pytest.raises(DataSourceError, match=r"u\.genre"):
        read_movielens(write_ml100k_zip(tmp_path / "swapped.zip", genres=swapped))


# --------------------------------------------------------------------------- format errors


def test_not_a_zip_names_the_file_and_what_was_expected(tmp_path: Path) -> None:
    path = tmp_path / "ml-100k.zip"
    path.write_text("user\titem\n1\t2\n")
    with pytest.raises(DataSourceError) as error:
        read_movielens(path)
    message = str(error.value)
    assert str(path) in message
    assert "not a zip" in message
    assert "ml-100k/u.data" in message
    assert "ml-1m/ratings.dat" in message


def test_missing_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.zip"
    with pytest.raises(DataSourceError, match="does not exist"):
        read_movielens(path, "ml-100k")


def test_zip_without_movielens_members_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("photos/cat.jpg", b"\xff\xd8")
    with pytest.raises(DataSourceError) as error:
        read_movielens(path)
    message = str(error.value)
    assert str(path) in message
    assert "not a MovieLens archive" in message
    assert "photos/cat.jpg" in message
    assert "ml-100k/u.data" in message


def test_wrong_variant_names_the_missing_member(ml100k_zip: Path) -> None:
    with pytest.raises(DataSourceError) as error:
        read_movielens(ml100k_zip, "ml-1m")
    message = str(error.value)
    assert str(ml100k_zip) in message
    assert "ml-1m/ratings.dat" in message


def test_reading_never_modifies_the_zip(ml100k_zip: Path) -> None:
    before = (ml100k_zip.read_bytes(), ml100k_zip.stat().st_mtime_ns)
    _validate(ml100k_zip)
    assert (ml100k_zip.read_bytes(), ml100k_zip.stat().st_mtime_ns) == before


# --------------------------------------------------------------------------- download


def _offline(url: str, dest: Path) -> None:
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


def test_no_network_error_names_both_ways_out(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError) as error:
        fetch_movielens("ml-100k", tmp_path / "raw", downloader=_offline)
    message = str(error.value)
    assert "no network" in message
    assert "--source PATH" in message
    assert "--dataset synthetic" in message
    assert not list((tmp_path / "raw").glob("*")), "a failed download leaves nothing behind"


def test_default_downloader_is_patchable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ml, "download_url", _offline)
    with pytest.raises(DataSourceError, match="no network"):
        fetch_movielens("ml-1m", tmp_path)


def _release_for(monkeypatch: pytest.MonkeyPatch, payload: bytes) -> None:
    release = dataclasses.replace(
        ml.RELEASES["ml-100k"], sha256=hashlib.sha256(payload).hexdigest()
    )
    monkeypatch.setitem(ml.RELEASES, "ml-100k", release)


def test_download_happens_once_and_is_verified(
    ml100k_zip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = ml100k_zip.read_bytes()
    _release_for(monkeypatch, payload)
    calls: list[str] = []

    def fake(url: str, dest: Path) -> None:
        calls.append(url)
        dest.write_bytes(payload)

    raw = tmp_path / "raw"
    first = fetch_movielens("ml-100k", raw, downloader=fake)
    second = fetch_movielens("ml-100k", raw, downloader=fake)
    assert first == second == raw / "ml-100k.zip"
    assert first.read_bytes() == payload
    assert calls == [ml.RELEASES["ml-100k"].url]
    assert [p.name for p in raw.iterdir()] == ["ml-100k.zip"]


def test_download_with_wrong_hash_is_not_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _release_for(monkeypatch, b"the real thing")
    with pytest.raises(DataSourceError, match="SHA-256"):
        fetch_movielens("ml-100k", tmp_path, downloader=lambda u, d: d.write_bytes(b"tampered"))
    assert list(tmp_path.iterdir()) == []


def test_existing_raw_file_with_wrong_hash_is_left_untouched(tmp_path: Path) -> None:
    target = tmp_path / "ml-100k.zip"
    target.write_bytes(b"not the official zip")

    def must_not_download(url: str, dest: Path) -> None:
        raise AssertionError("an existing raw file must not be replaced")

    with pytest.raises(DataSourceError) as error:
        fetch_movielens("ml-100k", tmp_path, downloader=must_not_download)
    assert "--source" in str(error.value)
    assert target.read_bytes() == b"not the official zip"


def test_release_table_is_complete() -> None:
    assert set(ml.RELEASES) == set(ml.MOVIELENS_VARIANTS) == set(ml.LAYOUTS)
    for release in ml.RELEASES.values():
        assert len(release.sha256) == 64
        assert release.url.endswith(f"/{release.variant}.zip")

"""Column domains: declared once in reelrank/data/domains.py, and validation follows them."""

from __future__ import annotations

import inspect
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from reelrank import schema as s
from reelrank.data import domains as d
from reelrank.data import validation as v
from reelrank.data.parsers import parse_genre_flags
from reelrank.data.synthetic import SyntheticConfig, SyntheticWorld, generate_world
from reelrank.exceptions import ValidationError
from tests.data.conftest import NOW

SMALL = SyntheticConfig(n_users=60, n_items=50, n_events=1_000, seed=3)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def world() -> SyntheticWorld:
    return generate_world(SMALL)


def _validate(
    users: pd.DataFrame,
    items: pd.DataFrame,
    events: pd.DataFrame,
    *,
    user_domains: d.TableDomains | None = None,
) -> v.ValidationResult:
    """Validation as ingest runs it on the synthetic source (``RawTable`` of typed frames)."""
    return v.validate_tables(
        v.RawTable(s.EVENTS, events),
        v.RawTable(s.USERS, users, domains=user_domains or {}),
        v.RawTable(s.ITEMS, items),
        now=NOW,
    )


def _users(**columns: list[Any]) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    base: dict[str, Any] = {
        s.USER_ID: range(1, n + 1),
        s.AGE: [30] * n,
        s.GENDER: ["F"] * n,
        s.OCCUPATION: ["writer"] * n,
        s.ZIP_CODE: ["10001"] * n,
    }
    return pd.DataFrame({**base, **columns})


def _user_reasons(users: pd.DataFrame, **kwargs: Any) -> list[str | None]:
    """Per user row: its quarantine reason, or None when accepted."""
    users = users.assign(**{v.LINE: range(1, len(users) + 1)})
    result = _validate(users, _no_items(), _no_events(), **kwargs)
    quarantine = result.quarantine[s.USERS]
    reasons = dict(zip(quarantine[v.LINE], quarantine[s.REASON], strict=True))
    return [reasons.get(line) for line in range(1, len(users) + 1)]


def _no_items() -> pd.DataFrame:
    return pd.DataFrame(
        {
            s.ITEM_ID: pd.Series(dtype="int64"),
            s.TITLE: pd.Series(dtype="string"),
            s.GENRES: pd.Series(dtype=object),
            s.RELEASE_DATE: pd.Series(dtype="datetime64[ns, UTC]"),
        }
    )


def _no_events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            s.USER_ID: pd.Series(dtype="int64"),
            s.ITEM_ID: pd.Series(dtype="int64"),
            s.RATING: pd.Series(dtype="float64"),
            s.TIMESTAMP: pd.Series(dtype="datetime64[ns, UTC]"),
        }
    )


# --------------------------------------------------------------------------- one source


def test_validation_writes_no_rule_for_a_named_column() -> None:
    """Ranges, vocabularies, patterns and required columns come from the declaration only."""
    source = inspect.getsource(v)
    named = ("RATING", "TIMESTAMP", "AGE", "GENDER", "OCCUPATION", "ZIP_CODE", "TITLE")
    for name in (*named, "RELEASE_DATE"):
        assert not re.search(rf"\bs\.{name}\b", source), name


def test_changing_a_declared_bound_changes_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    users = _users(**{s.AGE: [20, 30, 31]})
    assert _user_reasons(users) == [None, None, None]
    young = replace(d.DOMAINS[s.USERS][s.AGE], range=d.Range(1, 30))
    monkeypatch.setitem(d.DOMAINS[s.USERS], s.AGE, young)
    assert _user_reasons(users) == [None, None, v.OUT_OF_RANGE]


def test_changing_a_declared_vocabulary_or_pattern_changes_validation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    users = _users(**{s.GENDER: ["F", "M"], s.ZIP_CODE: ["10001", "ABC"]})
    assert _user_reasons(users) == [None, None]
    gender = replace(d.DOMAINS[s.USERS][s.GENDER], vocabulary=frozenset({"F"}))
    monkeypatch.setitem(d.DOMAINS[s.USERS], s.GENDER, gender)
    zip_code = replace(d.DOMAINS[s.USERS][s.ZIP_CODE], pattern=r"\d{5}")
    monkeypatch.setitem(d.DOMAINS[s.USERS], s.ZIP_CODE, zip_code)
    assert _user_reasons(users) == [None, v.NOT_IN_VOCABULARY]
    assert _user_reasons(_users(**{s.ZIP_CODE: ["ABC"]})) == [v.BAD_FORMAT]


def test_declared_required_columns_are_the_missing_value_rule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    users = _users(**{s.AGE: [30, None]})
    assert _user_reasons(users) == [None, v.MISSING_VALUE]
    monkeypatch.setitem(
        d.DOMAINS[s.USERS], s.AGE, replace(d.DOMAINS[s.USERS][s.AGE], required=False)
    )
    assert _user_reasons(users) == [None, None]
    assert v.REQUIRED_COLUMNS[s.EVENTS] == (s.RATING,)
    assert v.REQUIRED_COLUMNS[s.ITEMS] == (s.TITLE,)


def test_a_source_override_replaces_one_columns_domain() -> None:
    users = _users(**{s.AGE: [18, 30]})
    ml1m_age = {s.AGE: d.ML1M_DOMAINS[s.USERS][s.AGE]}
    assert _user_reasons(users) == [None, None]
    assert _user_reasons(users, user_domains=ml1m_age) == [None, v.NOT_IN_VOCABULARY]


def test_every_reason_is_documented_in_rule_order() -> None:
    assert v.__doc__ is not None
    mentioned = [r for r in re.findall(r"``(\w+)``", v.__doc__) if r in v.REASONS]
    assert list(dict.fromkeys(mentioned)) == list(v.REASONS)
    doc = (ROOT / "design_docs" / "02-data.md").read_text(encoding="utf-8")
    section = doc.split("## Validation and quarantine", 1)[1].split("Design decisions", 1)[0]
    listed = [r for r in re.findall(r"`(\w+)`", section) if r in v.REASONS]
    assert list(dict.fromkeys(listed)) == list(v.REASONS)


# --------------------------------------------------------------------------- the rules


@pytest.mark.parametrize(
    "zip_code", ["85711", "00000", "T8H1N", "V3N4P", "E2A4H", "98107-2117", "5849574", "123456"]
)
def test_every_zip_shape_of_the_official_files_is_accepted(zip_code: str) -> None:
    assert _user_reasons(_users(**{s.ZIP_CODE: [zip_code, f" {zip_code} "]})) == [None, None]


@pytest.mark.parametrize("zip_code", ["<html>", "12", "!!!!!", "12345-", "55117!!", "1 2 3 4"])
def test_junk_zip_codes_are_bad_format(zip_code: str) -> None:
    assert _user_reasons(_users(**{s.ZIP_CODE: [zip_code]})) == [v.BAD_FORMAT]


def test_vocabulary_is_exact_after_stripping() -> None:
    users = _users(**{s.GENDER: [" M ", "m", "X"]})
    result = _validate(users, _no_items(), _no_events())
    assert result.dataset.users[s.GENDER].tolist() == ["M"]
    assert result.quarantine[s.USERS][s.REASON].tolist() == [v.NOT_IN_VOCABULARY] * 2


def test_range_bounds_are_inclusive() -> None:
    low, high = d.AGE_YEARS.low, d.AGE_YEARS.high
    ages = [low - 1, low, high, high + 1]
    assert _user_reasons(_users(**{s.AGE: ages})) == [v.OUT_OF_RANGE, None, None, v.OUT_OF_RANGE]


def test_range_comes_before_vocabulary_and_pattern() -> None:
    users = _users(**{s.AGE: [200, 30], s.GENDER: ["X", "X"], s.ZIP_CODE: ["<>", "<>"]})
    assert _user_reasons(users) == [v.OUT_OF_RANGE, v.NOT_IN_VOCABULARY]


def test_a_blank_value_of_an_optional_column_passes_its_other_rules() -> None:
    optional = {s.ZIP_CODE: replace(d.DOMAINS[s.USERS][s.ZIP_CODE], required=False)}
    users = _users(**{s.ZIP_CODE: ["10001", "  ", None]})
    assert _user_reasons(users, user_domains=optional) == [None, None, None]


def test_code_vocabularies_become_their_labels() -> None:
    occupation = {s.OCCUPATION: d.ML1M_DOMAINS[s.USERS][s.OCCUPATION]}
    users = _users(**{s.OCCUPATION: ["10", "12", "99", "writer"]})
    result = _validate(users, _no_items(), _no_events(), user_domains=occupation)
    assert result.dataset.users[s.OCCUPATION].tolist() == ["K-12 student", "programmer"]
    assert str(result.dataset.users[s.OCCUPATION].dtype) == "string"
    assert result.quarantine[s.USERS][s.OCCUPATION].tolist() == ["99", "writer"]


def test_release_dates_may_lead_now_by_the_declared_margin() -> None:
    dates = [NOW + d.RELEASE_DATE_LEAD, NOW + d.RELEASE_DATE_LEAD + pd.Timedelta(days=1)]
    items = pd.DataFrame(
        {
            s.ITEM_ID: [1, 2, 3, 4],
            s.TITLE: pd.array(["A", "B", "C", "D"], dtype="string"),
            s.GENRES: [["Drama"]] * 4,
            s.RELEASE_DATE: pd.Series(
                [d.EARLIEST_RELEASE_DATE, pd.NaT, *dates], dtype="datetime64[ns, UTC]"
            ),
        }
    )
    result = _validate(_users(**{s.AGE: [30]}), items, _no_events())
    assert result.dataset.items[s.ITEM_ID].tolist() == [1, 2, 3]
    assert result.quarantine[s.ITEMS][s.REASON].tolist() == [v.OUT_OF_RANGE]


def test_a_bound_of_the_wrong_type_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = replace(d.DOMAINS[s.USERS][s.AGE], range=d.Range(pd.Timestamp("2000-01-01")))
    monkeypatch.setitem(d.DOMAINS[s.USERS], s.AGE, wrong)
    with pytest.raises(ValidationError, match=r"users\.age .*reelrank/data/domains\.py"):
        _user_reasons(_users(**{s.AGE: [30]}))


def test_genre_flags_must_be_one_0_or_1_per_genre() -> None:
    parse = parse_genre_flags(d.ML100K_GENRE_FLAGS, d.UNKNOWN_GENRE)
    off = ["0"] * 18
    on = ["1", *["0"] * 7, "1", *["0"] * 10]  # unknown and Drama
    values = [on, [*off, " 1 "], [*off, "2"], off, [*off, "0", "0"]]
    parsed = parse(pd.Series(["|".join(flags) for flags in values] + [None], dtype=object))
    assert parsed.tolist()[:2] == [["Drama"], ["Western"]]
    assert parsed.iloc[2:].isna().all()
    with pytest.raises(ValueError, match="Cooking"):
        parse_genre_flags(["unknown", "Cooking"], d.UNKNOWN_GENRE)


# --------------------------------------------------------------------------- the synthetic source


def test_the_generator_draws_inside_the_declared_domains() -> None:
    from reelrank.data import synthetic

    assert set(synthetic.OCCUPATIONS) <= set(d.DOMAINS[s.USERS][s.OCCUPATION].vocabulary or ())
    assert set(synthetic.GENDERS) <= set(d.DOMAINS[s.USERS][s.GENDER].vocabulary or ())
    assert d.AGE_YEARS.low <= synthetic._AGE_MIN <= synthetic._AGE_MAX <= d.AGE_YEARS.high


def _planted(frame: pd.DataFrame, template: dict[str, Any], rows: list[dict[str, Any]]) -> Any:
    planted = pd.DataFrame([{**template, **row} for row in rows])
    return pd.concat([frame, planted], ignore_index=True)


def test_synthetic_source_quarantines_every_planted_row(world: SyntheticWorld) -> None:
    n_users, n_items = SMALL.n_users, SMALL.n_items
    users = world.users.assign(**{s.ZIP_CODE: "10001"})  # the world has none: check one too
    items, events = world.items, world.events()
    clean = _validate(users, items, events)
    assert {t: r.quarantined for t, r in clean.reports.items()} == dict.fromkeys(s.TABLES, 0)

    bad_user, bad_item = n_users + 1, n_items + 1
    user_rows: list[tuple[dict[str, Any], str | None]] = [
        ({s.USER_ID: bad_user, s.AGE: -5}, v.OUT_OF_RANGE),
        ({s.AGE: 200}, v.OUT_OF_RANGE),
        ({s.GENDER: "X"}, v.NOT_IN_VOCABULARY),
        ({s.OCCUPATION: "astronaut"}, v.NOT_IN_VOCABULARY),
        ({s.ZIP_CODE: "<html>"}, v.BAD_FORMAT),
        ({s.AGE: None}, v.MISSING_VALUE),
        ({s.GENDER: " "}, v.MISSING_VALUE),
        ({s.USER_ID: None}, v.NULL_KEY),
        ({s.USER_ID: 1}, v.DUPLICATE_KEY),
        ({s.AGE: d.AGE_YEARS.high}, None),  # good: on the bound
    ]
    for offset, (row, _) in enumerate(user_rows):
        row.setdefault(s.USER_ID, bad_user + 1 + offset)
    user_template = {s.AGE: 30, s.GENDER: "F", s.OCCUPATION: "writer", s.ZIP_CODE: "10001"}
    item_rows: list[tuple[dict[str, Any], str | None]] = [
        ({s.ITEM_ID: bad_item, s.TITLE: ""}, v.MISSING_VALUE),
        ({s.TITLE: "   "}, v.MISSING_VALUE),
        ({s.GENRES: ["Cooking"]}, v.INVALID_VALUE),
        ({s.RELEASE_DATE: pd.Timestamp("1850-01-01", tz="UTC")}, v.OUT_OF_RANGE),
        ({s.RELEASE_DATE: pd.Timestamp("2100-01-01", tz="UTC")}, v.OUT_OF_RANGE),
        ({s.ITEM_ID: 1}, v.DUPLICATE_KEY),
        ({s.RELEASE_DATE: pd.NaT}, None),  # good: release date unknown
    ]
    for offset, (row, _) in enumerate(item_rows):
        row.setdefault(s.ITEM_ID, bad_item + 1 + offset)
    item_template = {
        s.TITLE: "Planted (2015)",
        s.GENRES: ["Drama"],
        s.RELEASE_DATE: pd.Timestamp("2014-06-01", tz="UTC"),
    }
    first = events.iloc[0]
    when = pd.Timestamp("2015-06-01 12:00:07", tz="UTC")
    event_rows: list[tuple[dict[str, Any], str | None]] = [
        ({s.RATING: 0.0}, v.RATING_OUT_OF_RANGE),
        ({s.RATING: 6.0}, v.RATING_OUT_OF_RANGE),
        ({s.RATING: np.nan}, v.MISSING_VALUE),
        ({s.RATING: np.inf}, v.INVALID_VALUE),
        ({s.TIMESTAMP: pd.Timestamp("2100-01-01", tz="UTC")}, v.FUTURE_TIMESTAMP),
        ({s.TIMESTAMP: pd.Timestamp("1990-01-01", tz="UTC")}, v.TIMESTAMP_BEFORE_1995),
        ({s.USER_ID: bad_user}, v.UNKNOWN_USER),  # its user is quarantined (age -5)
        ({s.ITEM_ID: bad_item}, v.UNKNOWN_ITEM),  # its item is quarantined (no title)
        (first.to_dict(), v.DUPLICATE_EVENT),
    ]
    event_template = {s.USER_ID: 1, s.ITEM_ID: 1, s.RATING: 3.0, s.TIMESTAMP: when}

    dirty = _validate(
        _planted(users, user_template, [r for r, _ in user_rows]),
        _planted(items, item_template, [r for r, _ in item_rows]),
        _planted(events, event_template, [r for r, _ in event_rows]),
    )
    planted = {s.USERS: user_rows, s.ITEMS: item_rows, s.EVENTS: event_rows}
    for table, rows in planted.items():
        report = dirty.reports[table]
        assert report.read == len(clean.dataset.table(table)) + len(rows)
        assert report.read == report.accepted + report.quarantined
        expected = [reason for _, reason in rows if reason is not None]
        assert dirty.quarantine[table][s.REASON].tolist() == expected, table
        good = len(rows) - len(expected)
        accepted = dirty.dataset.table(table)
        assert report.accepted == len(clean.dataset.table(table)) + good
        pd.testing.assert_frame_equal(
            accepted.iloc[: len(accepted) - good].reset_index(drop=True),
            clean.dataset.table(table),
            check_dtype=False,
        )

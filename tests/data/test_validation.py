"""Validation rules on typed frames (as the synthetic source hands them over)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reelrank import schema as s
from reelrank.data import validation as v
from reelrank.data.parsers import parse_epoch_seconds
from reelrank.exceptions import ValidationError
from tests.data.conftest import NOW


def _users(ids: list[int]) -> pd.DataFrame:
    return pd.DataFrame({s.USER_ID: pd.Series(ids, dtype="int64"), s.AGE: 30})


def _items(ids: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            s.ITEM_ID: pd.Series(ids, dtype="int64"),
            s.TITLE: pd.Series([f"Item {i}" for i in ids], dtype="string"),
            s.GENRES: [["Drama"] for _ in ids],
            s.RELEASE_DATE: pd.Series(
                pd.to_datetime(["1990-01-01"] * len(ids), utc=True), dtype="datetime64[ns, UTC]"
            ),
        }
    )


def _events(rows: list[tuple[int, int, float, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            s.USER_ID: pd.Series([r[0] for r in rows], dtype="int64"),
            s.ITEM_ID: pd.Series([r[1] for r in rows], dtype="int64"),
            s.RATING: pd.Series([r[2] for r in rows], dtype="float64"),
            s.TIMESTAMP: pd.to_datetime([r[3] for r in rows], utc=True, format="ISO8601").astype(
                "datetime64[ns, UTC]"
            ),
        }
    )


GOOD = [(1, 1, 4.0, "2000-01-01"), (1, 2, 3.0, "2000-01-02"), (2, 1, 5.0, "2001-06-01")]


def _run(events: pd.DataFrame, **kwargs: object) -> v.ValidationResult:
    return v.validate_tables(
        v.RawTable(s.EVENTS, events),
        v.RawTable(s.USERS, _users([1, 2])),
        v.RawTable(s.ITEMS, _items([1, 2])),
        now=NOW,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ((1, 1, 7.0, "2000-03-01"), v.RATING_OUT_OF_RANGE),
        ((1, 1, float("nan"), "2000-03-01"), v.MISSING_VALUE),
        ((1, 1, float("inf"), "2000-03-01"), v.INVALID_VALUE),
        ((3, 1, 4.0, "2000-03-01"), v.UNKNOWN_USER),
        ((1, 3, 4.0, "2000-03-01"), v.UNKNOWN_ITEM),
        ((1, 1, 2.0, "2000-01-01"), v.DUPLICATE_EVENT),  # same user, item, time as GOOD[0]
        ((1, 1, 4.0, "2030-01-01"), v.FUTURE_TIMESTAMP),
        ((1, 1, 4.0, "1994-12-31 23:59:59"), v.TIMESTAMP_BEFORE_1995),
    ],
)
def test_each_rule_on_typed_events(row: tuple[int, int, float, str], reason: str) -> None:
    clean = _run(_events(GOOD))
    result = _run(_events([*GOOD, row]))
    assert result.reports[s.EVENTS].reasons == {reason: 1}
    assert result.quarantine[s.EVENTS][s.REASON].tolist() == [reason]
    pd.testing.assert_frame_equal(result.dataset.events, clean.dataset.events)


def test_same_pair_at_another_time_is_not_a_duplicate() -> None:
    result = _run(_events([*GOOD, (1, 1, 2.0, "2000-01-01 00:00:01")]))
    assert result.reports[s.EVENTS].quarantined == 0


def test_duplicate_keeps_the_first_occurrence() -> None:
    rows = [(1, 1, 1.0, "2000-01-01"), (1, 1, 5.0, "2000-01-01"), (1, 1, 3.0, "2000-01-01")]
    result = _run(_events(rows))
    assert result.dataset.events[s.RATING].tolist() == [1.0]
    assert result.quarantine[s.EVENTS][s.RATING].tolist() == ["5.0", "3.0"]


def test_rating_scale_is_the_sources() -> None:
    result = _run(_events([(1, 1, 10.0, "2000-01-01")]), rating_min=0.0, rating_max=10.0)
    assert result.reports[s.EVENTS].accepted == 1
    assert result.dataset.rating_max == 10.0


def test_future_is_relative_to_now() -> None:
    events = _events([(1, 1, 4.0, "2025-12-31")])
    later = _run(events)
    earlier = v.validate_tables(
        v.RawTable(s.EVENTS, events),
        v.RawTable(s.USERS, _users([1])),
        v.RawTable(s.ITEMS, _items([1])),
        now=pd.Timestamp("2020-01-01", tz="UTC"),
    )
    assert later.reports[s.EVENTS].accepted == 1
    assert earlier.reports[s.EVENTS].reasons == {v.FUTURE_TIMESTAMP: 1}


def test_naive_timestamps_are_taken_as_utc() -> None:
    events = _events(GOOD)
    events[s.TIMESTAMP] = events[s.TIMESTAMP].dt.tz_localize(None)
    result = _run(events)
    assert str(result.dataset.events[s.TIMESTAMP].dtype) == "datetime64[ns, UTC]"
    assert result.dataset.events[s.TIMESTAMP].iloc[0] == pd.Timestamp("2000-01-01", tz="UTC")


@pytest.mark.parametrize("size", [1, 3, 13, 100])
def test_missing_epoch_seconds_parse_whatever_is_in_memory(size: int) -> None:
    # pandas 2.3 leaves the slots of NaN inputs uninitialised in its float-to-datetime
    # path and rounds them under errstate(over="raise"). Freed arrays of huge values
    # are what numpy hands out next, which made that path raise FloatingPointError
    # (CI failed on it once); the parser must not depend on leftover memory.
    values = pd.Series(["", "nan", "soon", "881250949"] * size, dtype=object)
    poison = [np.full(len(values), 1e300) for _ in range(8)]
    del poison
    parsed = parse_epoch_seconds(values)
    assert str(parsed.dtype) == "datetime64[ns, UTC]"
    assert parsed.isna().sum() == 3 * size
    assert (parsed.dropna() == pd.Timestamp(881250949, unit="s", tz="UTC")).all()


def test_items_with_unknown_genre_or_duplicate_key_are_quarantined() -> None:
    items = _items([1, 2, 2, 3])
    items[s.GENRES] = [["Drama"], ["Drama"], ["Drama"], ["Drama", "Cooking"]]
    result = v.validate_tables(
        v.RawTable(s.EVENTS, _events(GOOD)),
        v.RawTable(s.USERS, _users([1, 2])),
        v.RawTable(s.ITEMS, items),
        now=NOW,
    )
    assert result.reports[s.ITEMS].reasons == {v.DUPLICATE_KEY: 1, v.INVALID_VALUE: 1}
    assert result.dataset.items[s.ITEM_ID].tolist() == [1, 2]
    assert result.quarantine[s.ITEMS][s.GENRES].tolist()[-1] == "['Drama', 'Cooking']"


def test_null_keys_in_nullable_typed_columns() -> None:
    users = pd.DataFrame({s.USER_ID: pd.array([1, None, 2], dtype="Int64")})
    result = v.validate_tables(
        v.RawTable(s.EVENTS, _events(GOOD)),
        v.RawTable(s.USERS, users),
        v.RawTable(s.ITEMS, _items([1, 2])),
        now=NOW,
    )
    assert result.reports[s.USERS].reasons == {v.NULL_KEY: 1}
    assert str(result.dataset.users[s.USER_ID].dtype) == "int64"


def test_missing_canonical_column_raises_a_clear_error() -> None:
    with pytest.raises(ValidationError, match="lacks column"):
        _run(_events(GOOD).drop(columns=[s.RATING]))


def test_broken_accounting_is_refused() -> None:
    with pytest.raises(ValidationError, match="accounting"):
        v.TableReport(read=3, accepted=1, quarantined=1, reasons={v.NULL_KEY: 1})


def test_empty_tables_validate() -> None:
    result = _run(_events([]))
    assert result.reports[s.EVENTS].to_dict() == {
        "read": 0,
        "accepted": 0,
        "quarantined": 0,
        "reasons": {},
    }


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["1", "2", "3", "", "x", "1.5"]),
            st.sampled_from(["1", "2", "9", ""]),
            st.sampled_from(["1", "5", "0", "4.5", "", "nan", "six"]),
            st.sampled_from(["881250949", "4102444800", "1", "", "soon"]),
        ),
        max_size=30,
    ),
    st.lists(st.text(max_size=8), max_size=5),
)
def test_read_equals_accepted_plus_quarantined(
    rows: list[tuple[str, str, str, str]], garbage: list[str]
) -> None:
    frame = pd.DataFrame(rows, columns=s.EVENTS_SCHEMA.columns, dtype=object)
    rejects = pd.DataFrame(
        {
            v.LINE: pd.Series(range(len(garbage)), dtype="Int64"),
            v.RAW: pd.Series(garbage, dtype="string"),
            s.REASON: pd.Series([v.UNPARSEABLE_LINE] * len(garbage), dtype="string"),
        }
    )
    result = v.validate_tables(
        v.RawTable(s.EVENTS, frame, rejects=rejects),
        v.RawTable(s.USERS, _users([1, 2, 3])),
        v.RawTable(s.ITEMS, _items([1, 2])),
        now=NOW,
    )
    report = result.reports[s.EVENTS]
    assert report.read == len(rows) + len(garbage) == report.accepted + report.quarantined
    assert sum(report.reasons.values()) == report.quarantined
    accepted = result.dataset.events
    assert accepted[s.RATING].between(1, 5).all()
    assert not accepted.duplicated(list(s.EVENTS_SCHEMA.key)).any()


def test_large_typed_frames_are_vectorised() -> None:
    """200k events validate quickly: a per-row Python loop would take far longer."""
    rng = np.random.default_rng(0)
    n = 200_000
    events = pd.DataFrame(
        {
            s.USER_ID: rng.integers(1, 1001, n),
            s.ITEM_ID: rng.integers(1, 501, n),
            s.RATING: rng.integers(1, 6, n).astype("float64"),
            s.TIMESTAMP: pd.to_datetime(
                rng.integers(10**9, 15 * 10**8, n), unit="s", utc=True
            ).astype("datetime64[ns, UTC]"),
        }
    )
    started = time.perf_counter()
    result = v.validate_tables(
        v.RawTable(s.EVENTS, events),
        v.RawTable(s.USERS, _users(list(range(1, 1001)))),
        v.RawTable(s.ITEMS, _items(list(range(1, 501)))),
        now=NOW,
    )
    assert time.perf_counter() - started < 5.0
    assert result.reports[s.EVENTS].read == n

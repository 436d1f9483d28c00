"""Validation with quarantine: every row read is either accepted or quarantined with a reason.

A source hands each table over as a :class:`RawTable`: the rows it could split
into columns (values as read, usually strings, plus the original line text),
the lines it could not split (already marked ``unparseable_line``) and, per
column, a parser that turns the read values into the canonical type.
:func:`validate_tables` applies the rules below to all three tables and returns
the accepted canonical frames, one quarantine frame per table (the original
content plus a ``reason``) and a :class:`TableReport` per table.

Rules, in the order a row's reason is decided (the first rule a row breaks is
its reason; each rule only looks at rows that passed the earlier ones):

1. ``unparseable_line``: the line could not be split into the expected fields.
2. ``null_key``: a key column (``schema.<TABLE>_SCHEMA.key``) is empty.
3. ``missing_value``: a required non-key column (events' ``rating``) is empty.
4. ``invalid_value``: a value cannot be coerced to its column's type.
5. ``rating_out_of_range``: rating outside the source's scale (events).
6. ``future_timestamp`` / ``timestamp_before_1995``: event time after ``now`` or
   before :data:`schema.EARLIEST_TIMESTAMP`.
7. ``unknown_user`` / ``unknown_item``: the event names a user or item that is
   not among the *accepted* users or items.
8. ``duplicate_key`` (users, items) / ``duplicate_event`` (events: same user,
   item and timestamp): the first occurrence is kept, later ones quarantined.

Everything is vectorised pandas/numpy, so ten million events validate in seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pandas as pd

from reelrank import schema as s
from reelrank.exceptions import ValidationError

# Reasons (the values of the quarantine frames' ``reason`` column).
UNPARSEABLE_LINE: Final = "unparseable_line"
NULL_KEY: Final = "null_key"
MISSING_VALUE: Final = "missing_value"
INVALID_VALUE: Final = "invalid_value"
RATING_OUT_OF_RANGE: Final = "rating_out_of_range"
FUTURE_TIMESTAMP: Final = "future_timestamp"
TIMESTAMP_BEFORE_1995: Final = "timestamp_before_1995"
UNKNOWN_USER: Final = "unknown_user"
UNKNOWN_ITEM: Final = "unknown_item"
DUPLICATE_KEY: Final = "duplicate_key"
DUPLICATE_EVENT: Final = "duplicate_event"
REASONS: Final[tuple[str, ...]] = (
    UNPARSEABLE_LINE,
    NULL_KEY,
    MISSING_VALUE,
    INVALID_VALUE,
    RATING_OUT_OF_RANGE,
    FUTURE_TIMESTAMP,
    TIMESTAMP_BEFORE_1995,
    UNKNOWN_USER,
    UNKNOWN_ITEM,
    DUPLICATE_KEY,
    DUPLICATE_EVENT,
)

# Provenance columns a source may attach; they go to quarantine, never to the lake.
RAW: Final = "raw"  # the original line text
LINE: Final = "line"  # 1-based line number in the source file
PROVENANCE_COLUMNS: Final = (LINE, RAW)

# Columns that must be present and non-empty beyond each table's key.
REQUIRED_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    s.EVENTS: (s.RATING,),
    s.USERS: (),
    s.ITEMS: (),
}

Parser = Callable[[pd.Series], pd.Series]
"""Turns read values into the canonical type; a value it cannot convert becomes NA."""

_ACCEPTED: Final = -1
_REASON_CODE: Final = {reason: code for code, reason in enumerate(REASONS)}


# --------------------------------------------------------------------------- parsers


def _is_text(values: pd.Series) -> bool:
    return values.dtype == object or isinstance(values.dtype, pd.StringDtype)


def _stripped(values: pd.Series) -> pd.Series:
    return values.astype("string").str.strip() if _is_text(values) else values


def parse_int(values: pd.Series) -> pd.Series:
    """Integers (nullable ``Int64``); non-numeric or fractional values become NA."""
    if pd.api.types.is_integer_dtype(values.dtype):
        return values
    numbers = pd.to_numeric(_stripped(values), errors="coerce").astype("Float64")
    integral = numbers.notna() & (numbers == numbers.round()) & (numbers.abs() < 2**62)
    return numbers.where(integral).astype("Int64")


def parse_float(values: pd.Series) -> pd.Series:
    """Floats; non-numeric and non-finite values become NaN."""
    if pd.api.types.is_float_dtype(values.dtype) and not isinstance(values.dtype, pd.Float64Dtype):
        return values.where(np.isfinite(values)).astype("float64")
    numbers = pd.to_numeric(_stripped(values), errors="coerce").astype("float64")
    return numbers.where(np.isfinite(numbers))


def _to_utc(values: pd.Series) -> pd.Series:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        out = values.dt.tz_convert("UTC")
    else:
        out = values.dt.tz_localize("UTC")
    return out.astype("datetime64[ns, UTC]")


def parse_epoch_seconds(values: pd.Series) -> pd.Series:
    """Unix seconds (or datetimes, naive ones taken as UTC) to UTC timestamps."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return _to_utc(values)
    seconds = parse_float(values)
    # Outside pandas' nanosecond range (about 1677-2262) -> invalid, not an overflow error.
    in_range = seconds.abs() < 9.2e9
    # Only finite values go to pandas: pandas 2.3's float path leaves the slots of NaN
    # inputs uninitialised and rounds them under errstate(over="raise"), so a NaN in
    # the input can raise FloatingPointError depending on whatever was in memory.
    ok = in_range.to_numpy()
    stamps = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    stamps[ok] = pd.to_datetime(seconds.to_numpy()[ok], unit="s", utc=True).as_unit("ns")
    return stamps


def parse_date(date_format: str) -> Parser:
    """A parser for dates written as ``date_format`` (datetimes pass through as UTC)."""

    def parse(values: pd.Series) -> pd.Series:
        if pd.api.types.is_datetime64_any_dtype(values.dtype):
            return _to_utc(values)
        parsed = pd.to_datetime(_stripped(values), format=date_format, errors="coerce", utc=True)
        return parsed.astype("datetime64[ns, UTC]")

    parse.__name__ = f"parse_date_{date_format}"
    return parse


def parse_string(values: pd.Series) -> pd.Series:
    """Text as pandas' ``string`` dtype; never invalid."""
    return values.astype("string")


GENRE_SEPARATOR: Final = "|"
_GENRES: Final = frozenset(s.GENRE_VOCAB)


def parse_genres(values: pd.Series) -> pd.Series:
    """Genre lists from lists or ``"A|B"`` strings; any genre outside ``GENRE_VOCAB`` -> NA."""

    def one(value: Any) -> list[str] | None:
        if isinstance(value, str):
            names = [g for g in value.strip().split(GENRE_SEPARATOR) if g]
        elif isinstance(value, list | tuple | np.ndarray):
            names = [str(g) for g in value]
        else:
            return None
        return names if _GENRES.issuperset(names) else None

    # One Python call per *item* (tens of thousands at most), never per event.
    return pd.Series([one(v) for v in values], index=values.index, dtype=object)


DEFAULT_PARSERS: Final[dict[str, dict[str, Parser]]] = {
    s.EVENTS: {
        s.USER_ID: parse_int,
        s.ITEM_ID: parse_int,
        s.RATING: parse_float,
        s.TIMESTAMP: parse_epoch_seconds,
    },
    s.USERS: {s.USER_ID: parse_int},
    s.ITEMS: {
        s.ITEM_ID: parse_int,
        s.TITLE: parse_string,
        s.GENRES: parse_genres,
        s.RELEASE_DATE: parse_epoch_seconds,
    },
}


# --------------------------------------------------------------------------- inputs/outputs


def empty_rejects() -> pd.DataFrame:
    """An empty frame of lines a source could not split (``line``, ``raw``, ``reason``)."""
    return pd.DataFrame(
        {
            LINE: pd.Series(dtype="Int64"),
            RAW: pd.Series(dtype="string"),
            s.REASON: pd.Series(dtype="string"),
        }
    )


@dataclass
class RawTable:
    """One table as a source read it, before validation.

    Attributes:
        name: ``events``, ``users`` or ``items``.
        frame: the rows split into columns, values as read (strings or typed),
            optionally with ``line``/``raw`` provenance columns.
        parsers: column -> parser; columns without one fall back to
            :data:`DEFAULT_PARSERS`, then are kept as they are.
        rejects: lines that could not be split (``line``, ``raw``, ``reason``).
    """

    name: str
    frame: pd.DataFrame
    parsers: dict[str, Parser] = field(default_factory=dict)
    rejects: pd.DataFrame = field(default_factory=empty_rejects)

    def parser_for(self, column: str) -> Parser | None:
        return self.parsers.get(column, DEFAULT_PARSERS[self.name].get(column))

    @property
    def read(self) -> int:
        return len(self.frame) + len(self.rejects)


@dataclass(frozen=True)
class TableReport:
    """Row accounting of one table: ``read == accepted + quarantined``."""

    read: int
    accepted: int
    quarantined: int
    reasons: dict[str, int]

    def __post_init__(self) -> None:
        if self.read != self.accepted + self.quarantined:
            raise ValidationError(
                f"row accounting is broken: read {self.read} != accepted {self.accepted} "
                f"+ quarantined {self.quarantined}; this is a bug in reelrank.data.validation."
            )
        if sum(self.reasons.values()) != self.quarantined:
            raise ValidationError(
                f"reasons {self.reasons} do not add up to {self.quarantined} quarantined rows; "
                "this is a bug in reelrank.data.validation."
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "accepted": self.accepted,
            "quarantined": self.quarantined,
            "reasons": dict(self.reasons),
        }


@dataclass(frozen=True)
class ValidationResult:
    """Accepted canonical frames, quarantined rows and the accounting, per table."""

    dataset: s.Dataset
    quarantine: dict[str, pd.DataFrame]
    reports: dict[str, TableReport]

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: report.to_dict() for name, report in self.reports.items()}


# --------------------------------------------------------------------------- validation


@dataclass
class _Outcome:
    accepted: pd.DataFrame
    quarantine: pd.DataFrame
    report: TableReport


class _Verdicts:
    """The reason code of each row (``_ACCEPTED`` while it passes every rule)."""

    def __init__(self, n_rows: int) -> None:
        self.codes = np.full(n_rows, _ACCEPTED, dtype=np.int8)

    @property
    def ok(self) -> np.ndarray:
        return self.codes == _ACCEPTED

    def reject(self, mask: np.ndarray | pd.Series, reason: str) -> None:
        bad = np.asarray(mask, dtype=bool) & self.ok
        self.codes[bad] = _REASON_CODE[reason]


def _blank(values: pd.Series) -> np.ndarray:
    missing = values.isna().to_numpy(dtype=bool)
    if _is_text(values):
        text = values.astype("string").str.strip()
        missing |= (text == "").fillna(True).to_numpy(dtype=bool)
    return missing


def _duplicated_keep_first(keys: pd.DataFrame) -> np.ndarray:
    """``keys.duplicated(keep="first")``, several times faster on millions of rows.

    Rows whose 64-bit row hash is unique cannot be duplicates; the exact check
    then runs only on the (usually few) rows whose hash repeats, so a hash
    collision can never wrongly quarantine a row.
    """
    out = np.zeros(len(keys), dtype=bool)
    if len(keys) < 2:
        return out
    hashes = pd.util.hash_pandas_object(keys, index=False).to_numpy()
    ordered = np.sort(hashes)
    repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    if len(repeated):
        candidates = pd.Series(hashes).isin(repeated).to_numpy()
        out[candidates] = keys[candidates].duplicated(keep="first").to_numpy()
    return out


def _check_columns(table: RawTable) -> None:
    expected = s.SCHEMAS[table.name].columns
    missing = [c for c in expected if c not in table.frame.columns]
    if missing:
        raise ValidationError(
            f"table {table.name!r} lacks column(s) {missing}; a source must provide every "
            f"canonical column {expected} (see reelrank/schema.py)."
        )


def _as_quarantine_text(values: pd.Series) -> pd.Series:
    """Original values as text, NA kept, so every quarantine frame has one schema."""
    if isinstance(values.dtype, pd.StringDtype):
        return values
    text = values.astype(object).map(str, na_action="ignore")
    return text.astype("string")


def _quarantine_frame(
    table: RawTable, columns: list[str], rows: pd.DataFrame, codes: np.ndarray
) -> pd.DataFrame:
    content: dict[str, pd.Series] = {}
    line = rows[LINE] if LINE in rows else pd.Series(pd.NA, index=rows.index)
    raw = rows[RAW] if RAW in rows else pd.Series(pd.NA, index=rows.index)
    content[LINE] = line.astype("Int64")
    content[RAW] = _as_quarantine_text(raw)
    for column in columns:
        content[column] = _as_quarantine_text(rows[column])
    reasons = np.asarray(REASONS, dtype=object)[codes] if len(codes) else []
    content[s.REASON] = pd.Series(reasons, index=rows.index, dtype="string")
    flagged = pd.DataFrame(content).reset_index(drop=True)

    rejects = table.rejects
    if rejects.empty:
        return flagged
    unparsed = pd.DataFrame(
        {
            LINE: rejects[LINE].astype("Int64") if LINE in rejects else pd.NA,
            RAW: _as_quarantine_text(rejects[RAW]),
            **{c: pd.Series(pd.NA, index=rejects.index, dtype="string") for c in columns},
            s.REASON: rejects[s.REASON].astype("string"),
        }
    ).reset_index(drop=True)
    if flagged.empty:
        return unparsed.astype(flagged.dtypes.to_dict())
    merged = pd.concat([unparsed, flagged], ignore_index=True)
    return merged.sort_values(LINE, kind="stable", na_position="last", ignore_index=True)


def _validate_table(
    table: RawTable,
    *,
    rating_min: float = 1.0,
    rating_max: float = 5.0,
    now: pd.Timestamp | None = None,
    known_users: pd.Series | None = None,
    known_items: pd.Series | None = None,
) -> _Outcome:
    _check_columns(table)
    table_schema = s.SCHEMAS[table.name]
    frame = table.frame
    if not frame.index.equals(pd.RangeIndex(len(frame))):
        frame = frame.reset_index(drop=True)
    data_columns = [c for c in frame.columns if c not in PROVENANCE_COLUMNS]
    verdicts = _Verdicts(len(frame))

    # Rejects arrive already decided (unparseable lines); check their reasons are known.
    unknown = set(table.rejects[s.REASON].astype(str)) - set(REASONS)
    if unknown:
        raise ValidationError(f"unknown quarantine reason(s) {sorted(unknown)} in {table.name}.")

    blanks = {c: _blank(frame[c]) for c in data_columns}
    for column in table_schema.key:
        verdicts.reject(blanks[column], NULL_KEY)
    for column in REQUIRED_COLUMNS[table.name]:
        verdicts.reject(blanks[column], MISSING_VALUE)

    typed: dict[str, pd.Series] = {}
    for column in data_columns:
        parser = table.parser_for(column)
        if parser is None:
            typed[column] = frame[column]
            continue
        values = parser(frame[column])
        if len(values) != len(frame):
            raise ValidationError(f"parser for {table.name}.{column} changed the row count.")
        verdicts.reject(values.isna().to_numpy(dtype=bool) & ~blanks[column], INVALID_VALUE)
        typed[column] = values

    if table.name == s.EVENTS:
        rating = typed[s.RATING].to_numpy(dtype="float64", na_value=np.nan)
        with np.errstate(invalid="ignore"):
            verdicts.reject((rating < rating_min) | (rating > rating_max), RATING_OUT_OF_RANGE)
        stamp = typed[s.TIMESTAMP]
        current = now if now is not None else pd.Timestamp.now(tz="UTC")
        verdicts.reject((stamp > current).fillna(False).to_numpy(), FUTURE_TIMESTAMP)
        verdicts.reject(
            (stamp < s.EARLIEST_TIMESTAMP).fillna(False).to_numpy(), TIMESTAMP_BEFORE_1995
        )
        if known_users is not None:
            verdicts.reject(~typed[s.USER_ID].isin(known_users).to_numpy(dtype=bool), UNKNOWN_USER)
        if known_items is not None:
            verdicts.reject(~typed[s.ITEM_ID].isin(known_items).to_numpy(dtype=bool), UNKNOWN_ITEM)

    duplicate_reason = DUPLICATE_EVENT if table.name == s.EVENTS else DUPLICATE_KEY
    ok = verdicts.ok
    all_ok = bool(ok.all())
    keys = pd.DataFrame({c: typed[c] for c in table_schema.key}, copy=False)
    duplicated = np.zeros(len(frame), dtype=bool)
    duplicated[ok] = _duplicated_keep_first(keys if all_ok else keys[ok])
    verdicts.reject(duplicated, duplicate_reason)

    ok = verdicts.ok
    all_ok = bool(ok.all())
    order = table_schema.columns + [c for c in data_columns if c not in table_schema.dtypes]
    columns: dict[str, pd.Series] = {}
    for column in order:
        values = typed[column] if all_ok else typed[column][ok].reset_index(drop=True)
        dtype = table_schema.dtypes.get(column)
        if dtype is not None and column != s.GENRES and str(values.dtype) != dtype:
            values = values.astype(pd.api.types.pandas_dtype(dtype))
        columns[column] = values
    accepted = pd.DataFrame(columns, copy=False)

    bad = ~ok
    quarantine = _quarantine_frame(table, data_columns, frame.loc[bad], verdicts.codes[bad])
    counts = quarantine[s.REASON].value_counts()
    reasons = {r: int(counts[r]) for r in REASONS if r in counts.index}
    report = TableReport(
        read=table.read,
        accepted=len(accepted),
        quarantined=len(quarantine),
        reasons=reasons,
    )
    return _Outcome(accepted=accepted, quarantine=quarantine, report=report)


def validate_tables(
    events: RawTable,
    users: RawTable,
    items: RawTable,
    *,
    rating_min: float = 1.0,
    rating_max: float = 5.0,
    now: pd.Timestamp | None = None,
    name: str = "dataset",
) -> ValidationResult:
    """Validate the three tables of one source (users and items first, then events).

    Args:
        events, users, items: the tables as read (see :class:`RawTable`).
        rating_min, rating_max: the source's rating scale, inclusive.
        now: events after this instant are ``future_timestamp`` (default: now, UTC).
        name: the dataset's name, carried into the returned :class:`~schema.Dataset`.

    Returns:
        Accepted canonical frames, per-table quarantine frames and reports.

    Raises:
        ValidationError: a table lacks a canonical column (nothing to quarantine).
    """
    if rating_min > rating_max:
        raise ValidationError(f"rating scale is empty: min {rating_min} > max {rating_max}.")
    for expected, table in ((s.EVENTS, events), (s.USERS, users), (s.ITEMS, items)):
        if table.name != expected:
            raise ValidationError(f"expected the {expected!r} table, got {table.name!r}.")
    now_utc = None if now is None else pd.Timestamp(now).tz_convert("UTC")
    user_outcome = _validate_table(users)
    item_outcome = _validate_table(items)
    event_outcome = _validate_table(
        events,
        rating_min=rating_min,
        rating_max=rating_max,
        now=now_utc,
        known_users=user_outcome.accepted[s.USER_ID],
        known_items=item_outcome.accepted[s.ITEM_ID],
    )
    outcomes: Mapping[str, _Outcome] = {
        s.EVENTS: event_outcome,
        s.USERS: user_outcome,
        s.ITEMS: item_outcome,
    }
    dataset = s.Dataset(
        events=event_outcome.accepted,
        users=user_outcome.accepted,
        items=item_outcome.accepted,
        rating_min=float(rating_min),
        rating_max=float(rating_max),
        name=name,
    )
    return ValidationResult(
        dataset=dataset,
        quarantine={t: o.quarantine for t, o in outcomes.items()},
        reports={t: o.report for t, o in outcomes.items()},
    )

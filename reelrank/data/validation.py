"""Validation with quarantine: every row read is either accepted or quarantined with a reason.

A source hands each table over as a :class:`RawTable`: the rows it could split
into columns (values as read, usually strings, plus the original line text),
the lines it could not split (already marked ``unparseable_line``) and the
domains where it differs from the canonical declaration of
:mod:`reelrank.data.domains` (a parser, a vocabulary, ...). :func:`validate_tables`
applies the rules below to all three tables and returns the accepted canonical
frames, one quarantine frame per table (the original content plus a ``reason``)
and a :class:`TableReport` per table.

Rules, in the order a row's reason is decided (the first rule a row breaks is
its reason; each rule only looks at rows that passed the earlier ones). Rules 3-7
are derived from the columns' declared domains, by one loop per kind of constraint
over the columns in declaration order:

1. ``unparseable_line``: the line could not be split into the expected fields
   (including a MovieLens-100K item without its 19 genre flags).
2. ``null_key``: a key column (``schema.<TABLE>_SCHEMA.key``) is empty.
3. ``missing_value``: a column declared ``required`` is empty (events' rating;
   users' age, gender, occupation, zip code; items' title).
4. ``invalid_value``: a value its column's parser cannot read (not a number, a
   fractional id, an unknown genre, a genre flag other than 0/1, a date pandas
   cannot hold).
5. Outside the declared inclusive range: ``rating_out_of_range`` (events' rating,
   on the source's scale); ``future_timestamp`` / ``timestamp_before_1995`` (event
   time after ``now`` or before :data:`schema.EARLIEST_TIMESTAMP`); ``out_of_range``
   (users' age, items' release date).
6. ``not_in_vocabulary``: a value outside its column's declared vocabulary (gender,
   occupation; MovieLens-1M's age codes).
7. ``bad_format``: a text that does not match its column's declared pattern (zip codes).
8. ``unknown_user`` / ``unknown_item``: the event names a user or item that is
   not among the *accepted* users or items.
9. ``duplicate_key`` (users, items) / ``duplicate_event`` (events: same user,
   item and timestamp): the first occurrence is kept, later ones quarantined.

Everything is vectorised pandas/numpy, so ten million events validate in seconds.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pandas as pd

from reelrank import schema as s
from reelrank.data.domains import (
    BAD_FORMAT,
    FUTURE_TIMESTAMP,
    INVALID_VALUE,
    MISSING_VALUE,
    NOT_IN_VOCABULARY,
    OUT_OF_RANGE,
    RATING_OUT_OF_RANGE,
    TIMESTAMP_BEFORE_1995,
    Domain,
    TableDomains,
    required_columns,
    table_domains,
)
from reelrank.data.parsers import Parser, is_text
from reelrank.exceptions import ValidationError

# Reasons (the values of the quarantine frames' ``reason`` column), in rule order.
UNPARSEABLE_LINE: Final = "unparseable_line"
NULL_KEY: Final = "null_key"
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
    OUT_OF_RANGE,
    NOT_IN_VOCABULARY,
    BAD_FORMAT,
    UNKNOWN_USER,
    UNKNOWN_ITEM,
    DUPLICATE_KEY,
    DUPLICATE_EVENT,
)

# Provenance columns a source may attach; they go to quarantine, never to the lake.
RAW: Final = "raw"  # the original line text
LINE: Final = "line"  # 1-based line number in the source file
PROVENANCE_COLUMNS: Final = (LINE, RAW)

#: Canonical non-key columns that must be non-empty (derived from the declared domains).
REQUIRED_COLUMNS: Final[dict[str, tuple[str, ...]]] = {t: required_columns(t) for t in s.TABLES}

_ACCEPTED: Final = -1
_REASON_CODE: Final = {reason: code for code, reason in enumerate(REASONS)}


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
        domains: column -> domain where the source differs from
            :data:`reelrank.data.domains.DOMAINS` (or adds a column); columns
            declared nowhere are kept as they are.
        rejects: lines that could not be split (``line``, ``raw``, ``reason``).
    """

    name: str
    frame: pd.DataFrame
    domains: TableDomains = field(default_factory=dict)
    rejects: pd.DataFrame = field(default_factory=empty_rejects)

    def domains_of_columns(self) -> dict[str, Domain]:
        """The domain of every column of ``frame`` that has one, in declaration order."""
        return {c: d for c, d in table_domains(self.name, self.domains).items() if c in self.frame}

    def parser_for(self, column: str) -> Parser | None:
        domain = table_domains(self.name, self.domains).get(column)
        return None if domain is None else domain.parser

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
    if is_text(values):
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


def _parse(
    table: RawTable,
    frame: pd.DataFrame,
    columns: list[str],
    blanks: Mapping[str, np.ndarray],
    verdicts: _Verdicts,
) -> dict[str, pd.Series]:
    """Rule 4: each column through its declared parser; a present value it cannot read is
    ``invalid_value``. Returns the typed columns."""
    typed: dict[str, pd.Series] = {}
    for column in columns:
        parser = table.parser_for(column)
        if parser is None:
            typed[column] = frame[column]
            continue
        values = parser(frame[column])
        if len(values) != len(frame):
            raise ValidationError(f"parser for {table.name}.{column} changed the row count.")
        verdicts.reject(values.isna().to_numpy(dtype=bool) & ~blanks[column], INVALID_VALUE)
        typed[column] = values
    return typed


def _flags(values: pd.Series) -> np.ndarray:
    if values.dtype == bool:
        return values.to_numpy()
    return values.to_numpy(dtype=bool, na_value=False)


def _beyond(values: pd.Series, bound: Any, compare: Callable[[Any, Any], Any]) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return _flags(compare(values, bound))


def _present(broken: np.ndarray, blank: np.ndarray) -> np.ndarray:
    """``broken`` without the blank rows (no copy when nothing is blank, as in most tables)."""
    return broken & ~blank if blank.any() else broken


def _check_domains(
    verdicts: _Verdicts,
    table: str,
    domains: Mapping[str, Domain],
    typed: Mapping[str, pd.Series],
    blanks: Mapping[str, np.ndarray],
    run: Mapping[str, Any],
) -> None:
    """Rules 5-7 (range, vocabulary, pattern), kind by kind, columns in declaration order."""
    for broken, reason in _domain_rules(table, domains, typed, blanks, run):
        verdicts.reject(broken, reason)


def _domain_rules(
    table: str,
    domains: Mapping[str, Domain],
    typed: Mapping[str, pd.Series],
    blanks: Mapping[str, np.ndarray],
    run: Mapping[str, Any],
) -> Iterator[tuple[np.ndarray, str]]:
    """The rows breaking each of rules 5-7, with the reason; a blank value breaks none."""
    for column, domain in domains.items():
        if domain.range is None:
            continue
        bounds = domain.range.resolve(run)
        try:
            if bounds.high is not None:
                above = _beyond(typed[column], bounds.high, operator.gt)
                yield _present(above, blanks[column]), bounds.above
            if bounds.low is not None:
                below = _beyond(typed[column], bounds.low, operator.lt)
                yield _present(below, blanks[column]), bounds.below
        except TypeError as error:
            raise ValidationError(
                f"{table}.{column} ({typed[column].dtype}) cannot be compared with its declared "
                f"range {bounds} ({error}); fix the domain in reelrank/data/domains.py."
            ) from error
    for column, domain in domains.items():
        if domain.vocabulary is not None:
            values = typed[column]
            outside = _flags(values.notna() & ~values.isin(list(domain.vocabulary)))
            yield _present(outside, blanks[column]), NOT_IN_VOCABULARY
    for column, domain in domains.items():
        if domain.pattern is not None:
            matches = typed[column].astype("string").str.fullmatch(domain.pattern)
            mismatched = ~matches.to_numpy(dtype=bool, na_value=True)
            yield _present(mismatched, blanks[column]), BAD_FORMAT


def _labelled(typed: dict[str, pd.Series], domains: Mapping[str, Domain]) -> None:
    """Replace codes by their labels where a column's vocabulary is a code -> label mapping."""
    for column, domain in domains.items():
        if isinstance(domain.vocabulary, Mapping):
            values = typed[column]
            typed[column] = values.map(dict(domain.vocabulary)).astype(values.dtype)


def _accepted_frame(
    table: RawTable, typed: Mapping[str, pd.Series], columns: list[str], ok: np.ndarray
) -> pd.DataFrame:
    table_schema = s.SCHEMAS[table.name]
    all_ok = bool(ok.all())
    order = table_schema.columns + [c for c in columns if c not in table_schema.dtypes]
    accepted: dict[str, pd.Series] = {}
    for column in order:
        values = typed[column] if all_ok else typed[column][ok].reset_index(drop=True)
        dtype = table_schema.dtypes.get(column)
        if dtype is not None and column != s.GENRES and str(values.dtype) != dtype:
            values = values.astype(pd.api.types.pandas_dtype(dtype))
        accepted[column] = values
    return pd.DataFrame(accepted, copy=False)


def _validate_table(
    table: RawTable,
    run: Mapping[str, Any],
    known_users: pd.Series | None = None,
    known_items: pd.Series | None = None,
) -> _Outcome:
    _check_columns(table)
    key = s.SCHEMAS[table.name].key
    frame = table.frame
    if not frame.index.equals(pd.RangeIndex(len(frame))):
        frame = frame.reset_index(drop=True)
    data_columns = [c for c in frame.columns if c not in PROVENANCE_COLUMNS]
    domains = table.domains_of_columns()
    verdicts = _Verdicts(len(frame))

    # Rejects arrive already decided (unparseable lines); check their reasons are known.
    unknown = set(table.rejects[s.REASON].astype(str)) - set(REASONS)
    if unknown:
        raise ValidationError(f"unknown quarantine reason(s) {sorted(unknown)} in {table.name}.")

    blanks = {c: _blank(frame[c]) for c in data_columns}
    for column in key:
        verdicts.reject(blanks[column], NULL_KEY)
    for column, domain in domains.items():
        if domain.required and column not in key:
            verdicts.reject(blanks[column], MISSING_VALUE)
    typed = _parse(table, frame, data_columns, blanks, verdicts)
    _check_domains(verdicts, table.name, domains, typed, blanks, run)
    _labelled(typed, domains)

    if known_users is not None:
        verdicts.reject(~typed[s.USER_ID].isin(known_users).to_numpy(dtype=bool), UNKNOWN_USER)
    if known_items is not None:
        verdicts.reject(~typed[s.ITEM_ID].isin(known_items).to_numpy(dtype=bool), UNKNOWN_ITEM)

    ok = verdicts.ok
    keys = pd.DataFrame({c: typed[c] for c in key}, copy=False)
    duplicated = np.zeros(len(frame), dtype=bool)
    duplicated[ok] = _duplicated_keep_first(keys if ok.all() else keys[ok])
    verdicts.reject(duplicated, DUPLICATE_EVENT if table.name == s.EVENTS else DUPLICATE_KEY)

    ok = verdicts.ok
    accepted = _accepted_frame(table, typed, data_columns, ok)
    bad = ~ok
    quarantine = _quarantine_frame(table, data_columns, frame.loc[bad], verdicts.codes[bad])
    counts = quarantine[s.REASON].value_counts()
    report = TableReport(
        read=table.read,
        accepted=len(accepted),
        quarantined=len(quarantine),
        reasons={r: int(counts[r]) for r in REASONS if r in counts.index},
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
        rating_min, rating_max: the source's rating scale, inclusive (the bounds of the
            events' rating domain).
        now: events after this instant are ``future_timestamp``, release dates more than
            :data:`~reelrank.data.domains.RELEASE_DATE_LEAD` after it ``out_of_range``
            (default: now, UTC).
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
    run: dict[str, Any] = {
        "now": pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now).tz_convert("UTC"),
        "rating_min": rating_min,
        "rating_max": rating_max,
    }
    user_outcome = _validate_table(users, run)
    item_outcome = _validate_table(items, run)
    event_outcome = _validate_table(
        events,
        run,
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

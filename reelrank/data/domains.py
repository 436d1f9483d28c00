"""Every canonical column's domain, declared once: validation derives its rules from here.

A :class:`Domain` says how one column's read values are parsed and which typed values
are allowed. Each constraint is one rule of :mod:`reelrank.data.validation`, with its
reason (the order in which rules decide a row's reason is in that module's docstring):

- ``parser``: read values -> the canonical type (:mod:`reelrank.data.parsers`); a present
  value it cannot read is ``invalid_value``. A date outside pandas' nanosecond range
  (before 1677-09-21 or after 2262-04-11) cannot be held, so it is ``invalid_value`` too.
- ``required``: a blank value (NA, or text empty after stripping) is ``missing_value``.
  Key columns (``schema.<TABLE>_SCHEMA.key``) are always required (``null_key``).
- ``range``: inclusive bounds (:class:`Range`); a value below is its ``below`` reason, above
  its ``above`` reason (``out_of_range`` unless the column names its own). A bound may be
  known only when validation runs (:class:`FromRun`: ``now``, the source's rating scale).
- ``vocabulary``: the allowed values, compared exactly with the parsed value (case-sensitive;
  the text parsers strip surrounding whitespace, nothing else is normalised); anything else
  is ``not_in_vocabulary``. A mapping (code -> label) allows its codes and the accepted value
  becomes the label (MovieLens-1M's occupation codes).
- ``pattern``: a regular expression the whole text must match; else ``bad_format``.

A blank value passes range, vocabulary and pattern: whether it may be blank is ``required``'s
business. A declared column that a source does not provide is not checked (the synthetic
world has no zip codes); the columns of ``schema.<TABLE>_SCHEMA`` must be provided.

:data:`DOMAINS` is the canonical declaration, one mapping per table; the synthetic world's
tables use it as it is. A source that differs overrides single columns (the override
replaces the whole :class:`Domain` of the column, usually built with
:func:`dataclasses.replace` from the canonical one): :data:`ML100K_DOMAINS` and
:data:`ML1M_DOMAINS`. MovieLens-100K's occupation vocabulary is its own ``u.occupation``,
read from the zip by :func:`reelrank.data.movielens.read_movielens`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

import pandas as pd

from reelrank import schema as s
from reelrank.data.parsers import (
    Parser,
    parse_date,
    parse_epoch_seconds,
    parse_float,
    parse_genre_flags,
    parse_genres,
    parse_int,
    parse_string,
    parse_token,
)

# Reasons of the domain rules (the values of the quarantine frames' ``reason`` column).
MISSING_VALUE: Final = "missing_value"
INVALID_VALUE: Final = "invalid_value"
RATING_OUT_OF_RANGE: Final = "rating_out_of_range"
FUTURE_TIMESTAMP: Final = "future_timestamp"
TIMESTAMP_BEFORE_1995: Final = "timestamp_before_1995"
OUT_OF_RANGE: Final = "out_of_range"
NOT_IN_VOCABULARY: Final = "not_in_vocabulary"
BAD_FORMAT: Final = "bad_format"

RunValue = Literal["now", "rating_min", "rating_max"]
"""What :func:`~reelrank.data.validation.validate_tables` knows when it runs."""


@dataclass(frozen=True)
class FromRun:
    """A bound known only when validation runs: ``validate_tables``' ``name``, plus ``offset``."""

    name: RunValue
    offset: pd.Timedelta | None = None

    def resolve(self, run: Mapping[str, Any]) -> Any:
        value = run[self.name]
        return value if self.offset is None else value + self.offset


@dataclass(frozen=True)
class Range:
    """Inclusive bounds (``None``: open on that side) and the reason of a value beyond each."""

    low: Any = None
    high: Any = None
    below: str = OUT_OF_RANGE
    above: str = OUT_OF_RANGE

    def resolve(self, run: Mapping[str, Any]) -> Range:
        """The same range with every :class:`FromRun` bound replaced by its value."""
        low, high = (b.resolve(run) if isinstance(b, FromRun) else b for b in (self.low, self.high))
        return replace(self, low=low, high=high)


@dataclass(frozen=True)
class Domain:
    """One column's parser and allowed values (see the module docstring for each rule)."""

    parser: Parser | None = None
    required: bool = False
    range: Range | None = None
    vocabulary: frozenset[Any] | Mapping[Any, Any] | None = None
    pattern: str | None = None


TableDomains = Mapping[str, Domain]
"""Column -> domain, for one table."""

# --------------------------------------------------------------------------- canonical values

#: Ages in years (MovieLens-100K's run from 7 to 73).
AGE_YEARS: Final = Range(1, 100)
GENDERS: Final[tuple[str, ...]] = ("M", "F")
#: MovieLens-100K's ``u.occupation``, in file order; the synthetic world draws from it.
OCCUPATIONS: Final[tuple[str, ...]] = (
    "administrator", "artist", "doctor", "educator", "engineer", "entertainment", "executive",
    "healthcare", "homemaker", "lawyer", "librarian", "marketing", "none", "other", "programmer",
    "retired", "salesman", "scientist", "student", "technician", "writer",
)  # fmt: skip
#: Letters or digits, optionally a hyphen or space and more: every zip of the official
#: files (ml-100k: 5 characters, some Canadian-style like ``T8H1N``; ml-1m: 5 to 9 digits
#: and ZIP+4 ``98107-2117``), and ``T8H 1N5``; not junk, not empty.
ZIP_CODE_PATTERN: Final = r"[0-9A-Za-z]{3,10}(?:[- ][0-9A-Za-z]{2,6})?"
#: Films predate 1890 only as curiosities; MovieLens' oldest is from 1919.
EARLIEST_RELEASE_DATE: Final = pd.Timestamp("1890-01-01", tz="UTC")
#: How far after ``now`` a release date may lie (a catalogue lists coming films). Items are
#: validated before events, so the bound is ``now``, not the dataset's last event.
RELEASE_DATE_LEAD: Final = pd.Timedelta(days=2 * 365)

# --------------------------------------------------------------------------- the declaration

DOMAINS: Final[dict[str, dict[str, Domain]]] = {
    s.EVENTS: {
        s.USER_ID: Domain(parse_int),
        s.ITEM_ID: Domain(parse_int),
        s.RATING: Domain(
            parse_float,
            required=True,
            range=Range(
                FromRun("rating_min"),
                FromRun("rating_max"),
                below=RATING_OUT_OF_RANGE,
                above=RATING_OUT_OF_RANGE,
            ),
        ),
        s.TIMESTAMP: Domain(
            parse_epoch_seconds,
            range=Range(
                s.EARLIEST_TIMESTAMP,
                FromRun("now"),
                below=TIMESTAMP_BEFORE_1995,
                above=FUTURE_TIMESTAMP,
            ),
        ),
    },
    s.USERS: {
        s.USER_ID: Domain(parse_int),
        s.AGE: Domain(parse_int, required=True, range=AGE_YEARS),
        s.GENDER: Domain(parse_token, required=True, vocabulary=frozenset(GENDERS)),
        s.OCCUPATION: Domain(parse_token, required=True, vocabulary=frozenset(OCCUPATIONS)),
        s.ZIP_CODE: Domain(parse_token, required=True, pattern=ZIP_CODE_PATTERN),
    },
    s.ITEMS: {
        s.ITEM_ID: Domain(parse_int),
        s.TITLE: Domain(parse_string, required=True),
        s.GENRES: Domain(parse_genres),
        s.RELEASE_DATE: Domain(
            parse_epoch_seconds,
            range=Range(EARLIEST_RELEASE_DATE, FromRun("now", RELEASE_DATE_LEAD)),
        ),
    },
}

# --------------------------------------------------------------------------- MovieLens overrides

#: MovieLens-100K genre flags, in file order (``u.genre``); ``unknown`` sets no genre.
ML100K_GENRE_FLAGS: Final[tuple[str, ...]] = ("unknown", *s.GENRE_VOCAB)
UNKNOWN_GENRE: Final = "unknown"

#: MovieLens-1M age codes (ml-1m/README): 1 = under 18, 18 = 18-24, ..., 56 = 56+.
ML1M_AGE_CODES: Final[tuple[int, ...]] = (1, 18, 25, 35, 45, 50, 56)
#: MovieLens-1M occupation codes (ml-1m/README).
ML1M_OCCUPATIONS: Final[Mapping[str, str]] = {
    "0": "other",
    "1": "academic/educator",
    "2": "artist",
    "3": "clerical/admin",
    "4": "college/grad student",
    "5": "customer service",
    "6": "doctor/health care",
    "7": "executive/managerial",
    "8": "farmer",
    "9": "homemaker",
    "10": "K-12 student",
    "11": "lawyer",
    "12": "programmer",
    "13": "retired",
    "14": "sales/marketing",
    "15": "scientist",
    "16": "self-employed",
    "17": "technician/engineer",
    "18": "tradesman/craftsman",
    "19": "unemployed",
    "20": "writer",
}

_USERS, _ITEMS = DOMAINS[s.USERS], DOMAINS[s.ITEMS]

ML100K_DOMAINS: Final[dict[str, dict[str, Domain]]] = {
    s.USERS: {},  # ages in years; occupations: the zip's u.occupation (set by the reader)
    s.ITEMS: {
        s.RELEASE_DATE: replace(_ITEMS[s.RELEASE_DATE], parser=parse_date("%d-%b-%Y")),
        s.GENRES: replace(
            _ITEMS[s.GENRES], parser=parse_genre_flags(ML100K_GENRE_FLAGS, UNKNOWN_GENRE)
        ),
        s.IMDB_URL: Domain(parse_string),
    },
}
ML1M_DOMAINS: Final[dict[str, dict[str, Domain]]] = {
    s.USERS: {
        s.AGE: replace(_USERS[s.AGE], vocabulary=frozenset(ML1M_AGE_CODES)),
        s.OCCUPATION: replace(_USERS[s.OCCUPATION], vocabulary=ML1M_OCCUPATIONS),
    },
    # The release year is the "(1995)" at the end of the title.
    s.ITEMS: {s.RELEASE_DATE: replace(_ITEMS[s.RELEASE_DATE], parser=parse_date("%Y"))},
}


def table_domains(table: str, overrides: TableDomains | None = None) -> dict[str, Domain]:
    """The domains of ``table``'s columns: the canonical ones, then ``overrides``."""
    return {**DOMAINS[table], **(overrides or {})}


def required_columns(table: str) -> tuple[str, ...]:
    """The canonical non-key columns of ``table`` that must not be blank."""
    key = s.SCHEMAS[table].key
    return tuple(c for c, d in DOMAINS[table].items() if d.required and c not in key)

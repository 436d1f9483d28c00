"""Column parsers: values as a source read them (text or typed) to the canonical type.

A parser never raises on a bad value: a value it cannot convert becomes NA, which
validation reports as ``invalid_value`` (a blank value is ``null_key`` or
``missing_value`` before that). Every parser is vectorised, except the genre
parsers, which make one Python call per *item* (tens of thousands at most),
never per event. Which parser a column uses is declared with its domain in
:mod:`reelrank.data.domains`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

import numpy as np
import pandas as pd

from reelrank import schema as s

Parser = Callable[[pd.Series], pd.Series]
"""Turns read values into the canonical type; a value it cannot convert becomes NA."""

GENRE_SEPARATOR: Final = "|"
_GENRES: Final = frozenset(s.GENRE_VOCAB)
_FLAG_ON: Final = "1"
_FLAG_OFF: Final = "0"


def is_text(values: pd.Series) -> bool:
    """Whether ``values`` holds text (``object`` or pandas' ``string`` dtype)."""
    return values.dtype == object or isinstance(values.dtype, pd.StringDtype)


def _stripped(values: pd.Series) -> pd.Series:
    return values.astype("string").str.strip() if is_text(values) else values


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
    """Text as pandas' ``string`` dtype, as written (titles, URLs); never invalid."""
    return values.astype("string")


def parse_token(values: pd.Series) -> pd.Series:
    """Text stripped of surrounding whitespace, blank -> NA (codes, vocabulary words, zips)."""
    tokens = values.astype("string").str.strip()
    return tokens.mask(tokens == "")


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

    return pd.Series([one(v) for v in values], index=values.index, dtype=object)


def parse_genre_flags(flags: Sequence[str], no_genre: str) -> Parser:
    """A parser for genres written as one ``0``/``1`` flag per name of ``flags``, ``|``-separated.

    The value must hold exactly ``len(flags)`` flags, each ``0`` or ``1`` (surrounding
    whitespace allowed), else it is NA; the flag named ``no_genre`` sets no genre.
    """
    names = tuple(flags)
    genres = tuple(name if name in _GENRES else None for name in names)
    unknown = sorted(set(names) - _GENRES - {no_genre})
    if unknown:
        raise ValueError(f"genre flags {unknown} are neither in GENRE_VOCAB nor {no_genre!r}.")

    def one(value: Any) -> list[str] | None:
        if not isinstance(value, str):
            return None
        fields = [f.strip() for f in value.split(GENRE_SEPARATOR)]
        if len(fields) != len(names) or not set(fields) <= {_FLAG_ON, _FLAG_OFF}:
            return None
        return [g for g, f in zip(genres, fields, strict=True) if g is not None and f == _FLAG_ON]

    def parse(values: pd.Series) -> pd.Series:
        return pd.Series([one(v) for v in values], index=values.index, dtype=object)

    parse.__name__ = f"parse_genre_flags_{len(names)}"
    return parse

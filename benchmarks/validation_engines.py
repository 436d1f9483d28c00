"""Validation engines: ``reelrank.data.validation`` against the same rules as pandera schemas.

Issue 12, item 8 (ADR 0008). The same ordered quarantine rules (the first rule a row
breaks is its reason; duplicates are looked for among the rows every other rule
accepted) written twice:

- ``ours``: ``reelrank.data.validation.validate_tables`` (vectorised pandas/numpy);
- ``pandera``: one pandera ``DataFrameSchema`` per table holding every row rule as a
  check named after its reason (``lazy=True``: every failure of every check is
  collected), the reasons then taken per row from ``SchemaErrors.failure_cases`` in rule
  order, and a second schema (``unique=key, report_duplicates="exclude_first"``) over the
  surviving rows for ``duplicate_key`` / ``duplicate_event``; blanks and unreadable values
  are column checks reading a "value present" mask computed once per column;
- ``pandera-wide``: the same with the raw values as extra columns of the validated frame,
  blanks checked on them and ``invalid_value`` as one frame-wide check per parsed column
  (everything inside the schema).

Both share what is not a rule: the column parsers (text or typed values to the canonical
types; pandera's own coercion cannot read epoch seconds, ``01-Jan-1995`` dates or genre
lists, and does not tell a blank from an unreadable value) and the assembly of the
accepted and quarantine frames. What differs is how the rules are declared and evaluated.

Behaviour: accepted frames, quarantine frames (with reasons) and reports must be
identical, on the MovieLens-style fixtures of ``tests/data/movielens_fixtures.py`` (every
malformed line at once, and each on its own with the reason the tests expect), and on
synthetic worlds with corrupted rows (typed, as the synthetic source hands them over; and
written as ml-100k text, as MovieLens arrives). Cost: wall time and the peak memory added
by validation (``VmHWM`` after resetting it, so loading the input does not count), each
run in a fresh process, engines alternating.

Usage (from the repository root; inputs are generated once into a cache under the
temporary directory, about 3 minutes for the 10M-event worlds)::

    .venv/bin/python benchmarks/validation_engines.py --runs 3 \
        --out design_docs/results/validation_engines.json \
        --markdown design_docs/results/validation_engines.md

``--render FILE.json`` rewrites ``--markdown`` from an earlier ``--out`` without measuring.

pandera is optional (``pip install pandera``): without it only ``ours`` is measured.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reelrank import schema as s  # noqa: E402
from reelrank.data import validation as v  # noqa: E402

NOW = pd.Timestamp("2026-01-01", tz="UTC")
CACHE = Path(tempfile.gettempdir()) / "reelrank-validation-bench"
RATING_MIN, RATING_MAX = 1.0, 5.0
_NO_REASON = np.int8(127)


# --------------------------------------------------------------------------- pandera engine


def _not_blank(values: pd.Series) -> pd.Series:
    """True where a value is present: not NA and, for text, not only whitespace."""
    present = values.notna()
    if values.dtype == object or isinstance(values.dtype, pd.StringDtype):
        present &= values.astype("string").str.strip().ne("").fillna(False)
    return present


def _raw(column: str) -> str:
    return f"{column}__raw"


def table_schema(
    table: str,
    parsed: list[str],
    *,
    present: dict[str, pd.Series] | None = None,
    rating_min: float = RATING_MIN,
    rating_max: float = RATING_MAX,
    now: pd.Timestamp | None = None,
    known_users: pd.Series | None = None,
    known_items: pd.Series | None = None,
) -> Any:
    """Rules 2-7 of one table as a pandera schema; every check's name or error (pandera's
    ``check`` in the failure cases) is the reason a row breaking it gets.

    ``parsed`` are the columns a parser produced (``invalid_value``: a present value the
    parser could not read needs both the raw and the parsed value). Two forms:

    - ``present=None`` ("pandera-wide"): the frame holds the typed columns and
      ``<column>__raw``; blanks are checked on the raw columns, ``invalid_value`` with one
      frame-wide check per parsed column;
    - ``present`` given ("pandera"): the frame holds the typed columns only; the checks
      read the per-column "value present" masks computed once (column checks only).
    """
    import pandera.pandas as pa

    key = s.SCHEMAS[table].key
    required = v.REQUIRED_COLUMNS[table]
    columns: dict[str, Any] = {}
    frame_checks = []
    checks_by_column: dict[str, list[Any]] = {c: [] for c in dict.fromkeys([*key, *parsed])}
    if present is None:
        for column in key:
            columns[_raw(column)] = pa.Column(
                checks=pa.Check(_not_blank, ignore_na=False, name=v.NULL_KEY), nullable=True
            )
        for column in required:
            columns[_raw(column)] = pa.Column(
                checks=pa.Check(_not_blank, ignore_na=False, name=v.MISSING_VALUE),
                nullable=True,
            )
        frame_checks = [
            pa.Check(
                lambda df, c=column: df[c].notna() | ~_not_blank(df[_raw(c)]),
                ignore_na=False,
                name=v.INVALID_VALUE,
            )
            for column in parsed
        ]
    else:
        for column in key:
            checks_by_column[column].append(
                pa.Check(lambda _, p=present[column]: p, ignore_na=False, name=v.NULL_KEY)
            )
        for column in required:
            checks_by_column.setdefault(column, []).append(
                pa.Check(lambda _, p=present[column]: p, ignore_na=False, name=v.MISSING_VALUE)
            )
        for column in parsed:
            checks_by_column[column].append(
                pa.Check(
                    lambda x, p=present[column]: x.notna() | ~p,
                    ignore_na=False,
                    name=v.INVALID_VALUE,
                )
            )
    if table == s.EVENTS:
        current = now if now is not None else pd.Timestamp.now(tz="UTC")
        checks_by_column.setdefault(s.RATING, []).append(
            pa.Check.in_range(rating_min, rating_max, error=v.RATING_OUT_OF_RANGE)
        )
        checks_by_column.setdefault(s.TIMESTAMP, []).extend(
            [
                pa.Check.le(current, error=v.FUTURE_TIMESTAMP),
                pa.Check.ge(s.EARLIEST_TIMESTAMP, error=v.TIMESTAMP_BEFORE_1995),
            ]
        )
        if known_users is not None:
            checks_by_column[s.USER_ID].append(pa.Check.isin(known_users, error=v.UNKNOWN_USER))
        if known_items is not None:
            checks_by_column[s.ITEM_ID].append(pa.Check.isin(known_items, error=v.UNKNOWN_ITEM))
    for column, checks in checks_by_column.items():
        if checks:
            columns[column] = pa.Column(checks=checks, nullable=True)
    return pa.DataFrameSchema(columns, checks=frame_checks)


def duplicate_schema(table: str) -> Any:
    import pandera.pandas as pa

    return pa.DataFrameSchema(unique=list(s.SCHEMAS[table].key), report_duplicates="exclude_first")


def _reason_codes(failure_cases: pd.DataFrame, n_rows: int, default: str) -> np.ndarray:
    """Per row, the code of the earliest reason among its failures (``_NO_REASON``: none)."""
    codes = np.full(n_rows, _NO_REASON, dtype=np.int8)
    if failure_cases.empty:
        return codes
    names = failure_cases["check"].astype(str)
    reason = names.map(lambda n: n if n in v._REASON_CODE else default)
    reason_code = reason.map(v._REASON_CODE).to_numpy(dtype=np.int8)
    index = failure_cases["index"].to_numpy()
    known = ~pd.isna(index)
    np.minimum.at(codes, index[known].astype(np.int64), reason_code[known])
    return codes


def _pandera_validate_table(
    table: v.RawTable,
    *,
    wide: bool = False,
    rating_min: float = RATING_MIN,
    rating_max: float = RATING_MAX,
    now: pd.Timestamp | None = None,
    known_users: pd.Series | None = None,
    known_items: pd.Series | None = None,
) -> v._Outcome:
    import pandera.pandas as pa

    v._check_columns(table)
    key = s.SCHEMAS[table.name].key
    frame = table.frame
    if not frame.index.equals(pd.RangeIndex(len(frame))):
        frame = frame.reset_index(drop=True)
    data_columns = [c for c in frame.columns if c not in v.PROVENANCE_COLUMNS]
    unknown = set(table.rejects[s.REASON].astype(str)) - set(v.REASONS)
    if unknown:
        raise v.ValidationError(f"unknown quarantine reason(s) {sorted(unknown)}")

    typed: dict[str, pd.Series] = {}
    parsed: list[str] = []
    for column in data_columns:
        parser = table.parser_for(column)
        if parser is None:
            typed[column] = frame[column]
            continue
        typed[column] = parser(frame[column])
        parsed.append(column)
    present: dict[str, pd.Series] | None = None
    if wide:
        raw_needed = dict.fromkeys([*key, *v.REQUIRED_COLUMNS[table.name], *parsed])
        checked = pd.DataFrame({**typed, **{_raw(c): frame[c] for c in raw_needed}}, copy=False)
    else:
        needed = dict.fromkeys([*key, *v.REQUIRED_COLUMNS[table.name], *parsed])
        present = {c: _not_blank(frame[c]) for c in needed}
        checked = pd.DataFrame(typed, copy=False)
    schema = table_schema(
        table.name,
        parsed,
        present=present,
        rating_min=rating_min,
        rating_max=rating_max,
        now=now,
        known_users=known_users,
        known_items=known_items,
    )
    try:
        schema.validate(checked, lazy=True, inplace=True)
        codes = np.full(len(frame), _NO_REASON, dtype=np.int8)
    except pa.errors.SchemaErrors as errors:
        codes = _reason_codes(errors.failure_cases, len(frame), v.INVALID_VALUE)

    duplicate = v.DUPLICATE_EVENT if table.name == s.EVENTS else v.DUPLICATE_KEY
    ok = codes == _NO_REASON
    keys = pd.DataFrame({c: typed[c] for c in key}, copy=False)
    try:
        duplicate_schema(table.name).validate(keys if ok.all() else keys[ok], lazy=True)
    except pa.errors.SchemaErrors as errors:
        index = errors.failure_cases["index"].dropna().to_numpy(dtype=np.int64)
        codes[np.unique(index)] = v._REASON_CODE[duplicate]

    codes[codes == _NO_REASON] = v._ACCEPTED
    return _assemble(table, frame, typed, data_columns, codes)


def _assemble(
    table: v.RawTable,
    frame: pd.DataFrame,
    typed: dict[str, pd.Series],
    data_columns: list[str],
    codes: np.ndarray,
) -> v._Outcome:
    """Accepted frame, quarantine frame and report from the reason codes (as ours does)."""
    table_schema_ = s.SCHEMAS[table.name]
    ok = codes == v._ACCEPTED
    all_ok = bool(ok.all())
    order = table_schema_.columns + [c for c in data_columns if c not in table_schema_.dtypes]
    columns: dict[str, pd.Series] = {}
    for column in order:
        values = typed[column] if all_ok else typed[column][ok].reset_index(drop=True)
        dtype = table_schema_.dtypes.get(column)
        if dtype is not None and column != s.GENRES and str(values.dtype) != dtype:
            values = values.astype(pd.api.types.pandas_dtype(dtype))
        columns[column] = values
    accepted = pd.DataFrame(columns, copy=False)
    bad = ~ok
    quarantine = v._quarantine_frame(table, data_columns, frame.loc[bad], codes[bad])
    counts = quarantine[s.REASON].value_counts()
    reasons = {r: int(counts[r]) for r in v.REASONS if r in counts.index}
    report = v.TableReport(
        read=table.read, accepted=len(accepted), quarantined=len(quarantine), reasons=reasons
    )
    return v._Outcome(accepted=accepted, quarantine=quarantine, report=report)


def validate_tables_pandera(
    events: v.RawTable,
    users: v.RawTable,
    items: v.RawTable,
    *,
    rating_min: float = RATING_MIN,
    rating_max: float = RATING_MAX,
    now: pd.Timestamp | None = None,
    name: str = "dataset",
    wide: bool = False,
) -> v.ValidationResult:
    """``validate_tables`` with the rules evaluated by pandera (same arguments, same result)."""
    now_utc = None if now is None else pd.Timestamp(now).tz_convert("UTC")
    user_outcome = _pandera_validate_table(users, wide=wide)
    item_outcome = _pandera_validate_table(items, wide=wide)
    event_outcome = _pandera_validate_table(
        events,
        wide=wide,
        rating_min=rating_min,
        rating_max=rating_max,
        now=now_utc,
        known_users=user_outcome.accepted[s.USER_ID],
        known_items=item_outcome.accepted[s.ITEM_ID],
    )
    outcomes = {s.EVENTS: event_outcome, s.USERS: user_outcome, s.ITEMS: item_outcome}
    dataset = s.Dataset(
        events=event_outcome.accepted,
        users=user_outcome.accepted,
        items=item_outcome.accepted,
        rating_min=float(rating_min),
        rating_max=float(rating_max),
        name=name,
    )
    return v.ValidationResult(
        dataset=dataset,
        quarantine={t: o.quarantine for t, o in outcomes.items()},
        reports={t: o.report for t, o in outcomes.items()},
    )


def validate_tables_pandera_wide(*args: Any, **kwargs: Any) -> v.ValidationResult:
    return validate_tables_pandera(*args, wide=True, **kwargs)


ENGINES: dict[str, Callable[..., v.ValidationResult]] = {
    "ours": v.validate_tables,
    "pandera": validate_tables_pandera,
    "pandera-wide": validate_tables_pandera_wide,
}


def pandera_missing() -> str | None:
    try:
        import pandera.pandas  # noqa: F401
    except ImportError as error:
        return f"pandera not installed ({error})"
    return None


# --------------------------------------------------------------------------- comparing


def fingerprint(result: v.ValidationResult) -> dict[str, Any]:
    """Reports plus a content hash of every accepted and quarantine frame (values,
    dtypes, column order, row order)."""
    digests = {}
    for table in s.TABLES:
        for kind, frame in (
            ("accepted", result.dataset.table(table)),
            ("quarantine", result.quarantine[table]),
        ):
            digest = hashlib.sha256()
            digest.update(json.dumps([[c, str(t)] for c, t in frame.dtypes.items()]).encode())
            if len(frame):
                hashable = frame.assign(
                    **{
                        c: frame[c].map(lambda g: "|".join(g), na_action="ignore")
                        for c in frame.columns
                        if frame[c].dtype == object and c == s.GENRES
                    }
                )
                hashes = pd.util.hash_pandas_object(hashable, index=False)
                digest.update(hashes.to_numpy(dtype="uint64").tobytes())
            digests[f"{table}.{kind}"] = digest.hexdigest()[:16]
    return {"reports": result.to_dict(), "hashes": digests}


def assert_same(a: v.ValidationResult, b: v.ValidationResult) -> None:
    assert a.to_dict() == b.to_dict(), (a.to_dict(), b.to_dict())
    for table in s.TABLES:
        pd.testing.assert_frame_equal(a.dataset.table(table), b.dataset.table(table))
        pd.testing.assert_frame_equal(a.quarantine[table], b.quarantine[table])


# --------------------------------------------------------------------------- inputs


def movielens_fixture_checks(workdir: Path) -> list[dict[str, Any]]:
    """Both engines on the test fixtures: all bad lines at once, and each on its own."""
    from reelrank.data.movielens import read_movielens
    from tests.data import movielens_fixtures as f

    rows = []
    layouts = {
        "ml-100k": (
            f.write_ml100k_zip,
            f.ML100K_CASES,
            f.ML100K_EVENTS,
            f.ML100K_USERS,
            f.ML100K_ITEMS,
        ),
        "ml-1m": (f.write_ml1m_zip, f.ML1M_CASES, f.ML1M_EVENTS, f.ML1M_USERS, f.ML1M_ITEMS),
    }
    for variant, (write, cases, events, users, items) in layouts.items():
        tables = {"events": list(events), "users": list(users), "items": list(items)}
        for case in cases:
            tables[case.table].append(case.line)
        path = write(
            workdir / f"{variant}-all.zip", tables["events"], tables["users"], tables["items"]
        )
        results = {}
        for engine, validate in ENGINES.items():
            if engine.startswith("pandera") and pandera_missing():
                continue
            raw = read_movielens(path)
            results[engine] = validate(raw.events, raw.users, raw.items, now=NOW, name=variant)
        identical = True
        for result in results.values():
            try:
                assert_same(results["ours"], result)
            except AssertionError:
                identical = False
        reports = results["ours"].to_dict()
        rows.append(
            {
                "input": f"{variant}: every bad line at once",
                "rows": sum(r["read"] for r in reports.values()),
                "quarantined": sum(r["quarantined"] for r in reports.values()),
                "identical": identical,
                "reasons": {t: r["reasons"] for t, r in reports.items()},
            }
        )
        expected_ok = dict.fromkeys(ENGINES, 0)
        for case in cases:
            ev, us, it, line = f.with_bad_line(case, events, users, items)
            path = write(workdir / f"{variant}-{case.name}.zip", ev, us, it)
            for engine, validate in ENGINES.items():
                if engine.startswith("pandera") and pandera_missing():
                    continue
                raw = read_movielens(path)
                result = validate(raw.events, raw.users, raw.items, now=NOW, name=variant)
                quarantine = result.quarantine[case.table]
                hit = quarantine[quarantine[v.LINE] == line]
                expected_ok[engine] += int(list(hit[s.REASON]) == [case.reason])
        rows.append(
            {
                "input": f"{variant}: each bad line alone ({len(cases)} cases)",
                "rows": len(cases),
                "quarantined": len(cases),
                "identical": all(n == len(cases) for n in expected_ok.values()),
                "reasons": {
                    e: f"{n}/{len(cases)} as the tests expect" for e, n in expected_ok.items()
                },
            }
        )
    return rows


def _world(n_events: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    from reelrank.data.synthetic import SyntheticConfig, generate_world

    n_users = max(2_000, n_events // 100)
    n_items = max(1_500, min(20_000, n_events // 500))
    world = generate_world(
        SyntheticConfig(n_users=n_users, n_items=n_items, n_events=n_events, seed=7)
    )
    from reelrank.data.ingest import _collect_events

    events = _collect_events(world.iter_events(1_000_000), n_events, None)
    return events, world.users.copy(), world.items.copy()


def corrupt(
    events: pd.DataFrame, users: pd.DataFrame, items: pd.DataFrame, share: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Typed tables with ``share`` of the events broken, one rule each (several rules at
    once for some, so the order matters), plus a few bad users and items."""
    rng = np.random.default_rng(seed)
    n = len(events)
    events = events.copy()
    events[s.USER_ID] = events[s.USER_ID].astype("Int64")
    events[s.ITEM_ID] = events[s.ITEM_ID].astype("Int64")
    bad = rng.choice(n, size=int(n * share), replace=False)
    kinds = np.array_split(bad, 10)
    far = pd.Timestamp("2100-01-01", tz="UTC")
    old = pd.Timestamp("1990-01-01", tz="UTC")
    events.loc[kinds[0], s.USER_ID] = pd.NA  # null_key
    events.loc[kinds[1], s.RATING] = np.nan  # missing_value
    events.loc[kinds[2], s.RATING] = np.inf  # invalid_value
    events.loc[kinds[3], s.RATING] = rng.choice([0.0, 6.0, -1.0], len(kinds[3]))  # out of range
    events.loc[kinds[4], s.TIMESTAMP] = far  # future
    events.loc[kinds[5], s.TIMESTAMP] = old  # before 1995
    events.loc[kinds[6], s.USER_ID] = (
        int(users[s.USER_ID].max()) + 1 + rng.integers(0, 50, len(kinds[6]))
    )
    events.loc[kinds[7], s.ITEM_ID] = (
        int(items[s.ITEM_ID].max()) + 1 + rng.integers(0, 50, len(kinds[7]))
    )
    # several rules at once: out of range and future and unknown user -> out of range
    multi = kinds[8]
    events.loc[multi, s.RATING] = 9.0
    events.loc[multi, s.TIMESTAMP] = far
    events.loc[multi, s.USER_ID] = -5
    # duplicates: a later row takes an earlier row's key; for half of the pairs the earlier
    # row is itself quarantined (rating 7), so the later one is its first accepted copy
    partners = rng.choice(np.setdiff1d(np.arange(n), bad), len(kinds[9]), replace=False)
    earlier, later = np.sort(np.stack([kinds[9], partners]), axis=0)
    for column in s.EVENTS_SCHEMA.key:
        events.loc[later, column] = events.loc[earlier, column].to_numpy()
    events.loc[later, s.RATING] = rng.choice([1.0, 2.0, 3.0], len(later))
    events.loc[earlier[: len(earlier) // 2], s.RATING] = 7.0

    users = users.copy()
    users[s.USER_ID] = users[s.USER_ID].astype("Int64")
    users.loc[users.index[:3], s.USER_ID] = pd.NA  # null_key (their events: unknown_user)
    users = pd.concat([users, users.iloc[[5, 6]]], ignore_index=True)  # duplicate_key
    items = items.copy()
    items[s.ITEM_ID] = items[s.ITEM_ID].astype("Int64")
    items[s.GENRES] = items[s.GENRES].astype(object)
    items.at[items.index[0], s.GENRES] = ["Cooking"]  # invalid_value
    items.loc[items.index[1], s.RELEASE_DATE] = pd.NaT  # allowed: release date unknown
    items = pd.concat([items, items.iloc[[7]]], ignore_index=True)  # duplicate_key
    return events, users, items


def ml100k_text(
    events: pd.DataFrame, users: pd.DataFrame, items: pd.DataFrame, share: float, seed: int
) -> tuple[list[str], list[str], list[str]]:
    """The typed world as ml-100k text lines, with ``share`` of the event lines broken the
    ways text breaks (blanks, words, fractions, wrong field counts) on top of the typed
    corruptions (other rows than those: another random stream)."""
    rng = np.random.default_rng([seed, 1])
    seconds = events[s.TIMESTAMP].astype("int64") // 1_000_000_000
    text = pd.DataFrame(
        {
            "u": events[s.USER_ID].astype("string").fillna(""),
            "i": events[s.ITEM_ID].astype("string").fillna(""),
            "r": events[s.RATING].map(lambda x: "" if np.isnan(x) else f"{x:g}"),
            "t": seconds.where(events[s.TIMESTAMP].notna())
            .astype("Int64")
            .astype("string")
            .fillna(""),
        }
    )
    bad = rng.choice(len(text), size=int(len(text) * share), replace=False)
    kinds = np.array_split(bad, 5)
    text.loc[kinds[0], "u"] = " "  # null_key (whitespace)
    text.loc[kinds[1], "r"] = "five"  # invalid_value
    text.loc[kinds[2], "u"] = text.loc[kinds[2], "u"] + ".5"  # invalid_value (fractional)
    text.loc[kinds[3], "t"] = "yesterday"  # invalid_value
    lines = (text["u"] + "\t" + text["i"] + "\t" + text["r"] + "\t" + text["t"]).tolist()
    for k in kinds[4]:
        lines[k] = "<html>not a rating</html>" if k % 2 else lines[k] + "\t7"  # unparseable
    user_lines = [
        f"{'' if pd.isna(u) else u}|{a}|{g}|{o}|{10000 + int(i)}"
        for i, (u, a, g, o) in enumerate(
            zip(users[s.USER_ID], users[s.AGE], users[s.GENDER], users[s.OCCUPATION], strict=True)
        )
    ]
    user_lines[10] = user_lines[10].replace(f"|{users[s.AGE].iloc[10]}|", "|old|")
    flags = np.array(["unknown", *s.GENRE_VOCAB])
    item_lines = []
    for item, title, genres, release in zip(
        items[s.ITEM_ID], items[s.TITLE], items[s.GENRES], items[s.RELEASE_DATE], strict=True
    ):
        on = ["1" if g in set(genres) else "0" for g in flags]
        date = "" if pd.isna(release) else release.strftime("%d-%b-%Y")
        item_lines.append(
            f"{'' if pd.isna(item) else item}|{title}|{date}||http://x|{'|'.join(on)}"
        )
    item_lines[20] = item_lines[20].rsplit("|", 1)[0] + "|x"  # a genre flag that is no flag
    return lines, user_lines, item_lines


def prepare_inputs(
    sizes: list[int], text_size: int | None, share: float, clean: list[int] | None = None
) -> list[dict[str, Any]]:
    """Write each input once to the cache (parquet for typed tables, a zip for text);
    ``clean`` sizes also get the world as generated, with nothing to quarantine."""
    CACHE.mkdir(parents=True, exist_ok=True)
    clean = clean or []
    inputs = []
    for n in sorted(set(sizes) | set(clean)):
        folders = {"corrupted": CACHE / f"typed-{n}-{share}", "clean": CACHE / f"typed-{n}-0"}
        wanted = {k for k, on in (("corrupted", n in sizes), ("clean", n in clean)) if on}
        if any(not (folders[k] / "events.parquet").exists() for k in wanted):
            started = time.perf_counter()
            world = _world(n)
            versions = {"clean": world}
            if "corrupted" in wanted:
                versions["corrupted"] = corrupt(*world, share=share, seed=n)
            for kind in wanted:
                folders[kind].mkdir(parents=True, exist_ok=True)
                for name, frame in zip(s.TABLES, versions[kind], strict=True):
                    frame.to_parquet(folders[kind] / f"{name}.parquet")
            print(f"prepared {n:,} events in {time.perf_counter() - started:.0f} s", flush=True)
        for kind in ("corrupted", "clean"):
            if kind in wanted:
                label = "synthetic typed" if kind == "corrupted" else "synthetic typed, clean,"
                inputs.append(
                    {
                        "name": f"{label} {n:,} events",
                        "kind": "typed",
                        "path": str(folders[kind]),
                        "events": n,
                    }
                )
    if text_size:
        path = CACHE / f"ml-100k-text-{text_size}-{share}.zip"
        if not path.exists():
            started = time.perf_counter()
            events, users, items = corrupt(*_world(text_size), share=share, seed=text_size)
            lines, user_lines, item_lines = ml100k_text(events, users, items, share, text_size)
            from tests.data.movielens_fixtures import write_ml100k_zip

            write_ml100k_zip(path, lines, user_lines, item_lines)
            print(f"prepared {path} in {time.perf_counter() - started:.0f} s", flush=True)
        inputs.append(
            {
                "name": f"ml-100k text {text_size:,} events",
                "kind": "text",
                "path": str(path),
                "events": text_size,
            }
        )
    return inputs


# --------------------------------------------------------------------------- one run


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def run_child(engine: str, kind: str, path: str) -> dict[str, Any]:
    """In a fresh process: load the input, reset the peak-RSS mark, validate, report."""
    if kind == "typed":
        folder = Path(path)
        raw = {t: pd.read_parquet(folder / f"{t}.parquet") for t in s.TABLES}
        tables = {t: v.RawTable(t, frame) for t, frame in raw.items()}
        load = lambda: tables  # noqa: E731
    else:
        from reelrank.data.movielens import read_movielens

        movielens = read_movielens(Path(path))
        tables = {s.EVENTS: movielens.events, s.USERS: movielens.users, s.ITEMS: movielens.items}
        load = lambda: tables  # noqa: E731
    if engine.startswith("pandera"):
        import pandera.pandas  # noqa: F401  (import time is not validation time)
    tables = load()
    baseline = _status_kib("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        reset = True
    except OSError:
        reset = False
    started = time.perf_counter()
    cpu = time.process_time()
    result = ENGINES[engine](
        tables[s.EVENTS], tables[s.USERS], tables[s.ITEMS], now=NOW, name="bench"
    )
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu
    peak = _status_kib("VmHWM")
    return {
        "engine": engine,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "baseline_mib": baseline / 1024,
        "peak_mib": peak / 1024,
        "added_mib": (peak - baseline) / 1024 if reset else None,
        **fingerprint(result),
    }


def _child(engine: str, item: dict[str, Any]) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        json.dumps([engine, item["kind"], item["path"]]),
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        raise SystemExit(f"{engine} on {item['name']} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(inputs: list[dict[str, Any]], engines: list[str], runs: int) -> list[dict[str, Any]]:
    rows = []
    for item in inputs:
        samples: dict[str, list[dict[str, Any]]] = {e: [] for e in engines}
        for run in range(runs):
            order = engines if run % 2 == 0 else engines[::-1]
            for engine in order:
                sample = _child(engine, item)
                samples[engine].append(sample)
                print(
                    f"  {item['name']:<42} {engine:<12} {sample['seconds']:7.2f} s  "
                    f"+{sample['added_mib']:,.0f} MiB",
                    flush=True,
                )
        reference = samples[engines[0]][0]
        ours_s = float(np.median([x["seconds"] for x in samples[engines[0]]]))
        ours_cpu = float(np.median([x["cpu_seconds"] for x in samples[engines[0]]]))
        for engine in engines:
            got = samples[engine]
            same = all(
                x["reports"] == reference["reports"] and x["hashes"] == reference["hashes"]
                for x in got
            )
            seconds = float(np.median([x["seconds"] for x in got]))
            rows.append(
                {
                    "input": item["name"],
                    "engine": engine,
                    "runs": len(got),
                    "seconds": seconds,
                    "seconds_all": [round(x["seconds"], 2) for x in got],
                    "cpu_seconds": float(np.median([x["cpu_seconds"] for x in got])),
                    "vs_ours": seconds / ours_s,
                    "cpu_vs_ours": float(np.median([x["cpu_seconds"] for x in got])) / ours_cpu,
                    "added_mib": float(np.median([x["added_mib"] for x in got])),
                    "baseline_mib": float(np.median([x["baseline_mib"] for x in got])),
                    "identical_to_ours": same,
                    "reports": reference["reports"],
                }
            )
    return rows


# --------------------------------------------------------------------------- report


def markdown(result: dict[str, Any], command: str) -> str:
    lines = [
        "# Results: validation engines (ours against pandera)",
        "",
        "Written by `benchmarks/validation_engines.py --markdown` (raw figures with `--out`); "
        "not typed by hand. Command:",
        "",
        "```bash",
        command,
        "```",
        "",
        f"{result['machine']}; {result['versions']}. ADR: "
        "`design_docs/adr/0008-validation-engine.md`.",
        "",
        "## Behaviour",
        "",
        "| input | rows | quarantined | identical | reasons |",
        "|---|---|---|---|---|",
    ]
    for row in result["fixtures"]:
        lines.append(
            f"| {row['input']} | {row['rows']:,} | {row['quarantined']:,} | "
            f"{'yes' if row['identical'] else 'NO'} | {_reasons(row['reasons'])} |"
        )
    for row in result["runs"]:
        if row["engine"] != "ours":
            continue
        reports = row["reports"]
        quarantined = sum(r["quarantined"] for r in reports.values())
        read = sum(r["read"] for r in reports.values())
        same = all(r["identical_to_ours"] for r in result["runs"] if r["input"] == row["input"])
        lines.append(
            f"| {row['input']} | {read:,} | {quarantined:,} | {'yes' if same else 'NO'} | "
            f"{_reasons({t: r['reasons'] for t, r in reports.items()})} |"
        )
    lines += [
        "",
        '"identical": the same reports and the same accepted and quarantine frames '
        "(values, dtypes, order; SHA-256 of `pandas.util.hash_pandas_object`, or "
        "`assert_frame_equal` for the fixtures) from both engines.",
        "",
        "## Cost (each run a fresh process; engines alternate)",
        "",
        "`added MiB`: peak resident memory during validation above the resident memory "
        "before it (the input loaded), from `VmHWM` after resetting it. Seconds are wall "
        "time (median of the runs; every run listed) and CPU time of the validating "
        "process (median; steadier than wall time on a shared machine). `x ours`: the "
        "engine's median over ours, same input, same run.",
        "",
        "| input | engine | runs | wall s (median) | runs' wall s | CPU s | wall x ours "
        "| CPU x ours | added MiB | input MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["runs"]:
        lines.append(
            f"| {row['input']} | {row['engine']} | {row['runs']} | {row['seconds']:.2f} | "
            f"{', '.join(f'{x:.2f}' for x in row['seconds_all'])} | {row['cpu_seconds']:.2f} | "
            f"{row['vs_ours']:.2f} | {row['cpu_vs_ours']:.2f} | {row['added_mib']:,.0f} | "
            f"{row['baseline_mib']:,.0f} |"
        )
    if result.get("skipped"):
        lines += ["", f"Skipped: {result['skipped']}"]
    return "\n".join(lines) + "\n"


def _reasons(reasons: dict[str, Any]) -> str:
    parts = []
    for table, value in reasons.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{k} {n:,}" for k, n in value.items()) or "none"
            parts.append(f"{table}: {inner}")
        else:
            parts.append(f"{table}: {value}")
    return "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000_000, 10_000_000])
    parser.add_argument("--text-size", type=int, default=1_000_000, help="0: no text input")
    parser.add_argument("--share", type=float, default=0.01, help="share of corrupted events")
    parser.add_argument(
        "--clean-sizes", type=int, nargs="*", default=[10_000_000], help="uncorrupted worlds too"
    )
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per engine and input")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--markdown", type=Path)
    parser.add_argument(
        "--render", type=Path, help="only write --markdown from the JSON of an earlier --out"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        engine, kind, path = json.loads(args.child)
        print(json.dumps(run_child(engine, kind, path)))
        return
    if args.render:
        result = json.loads(args.render.read_text())
        if args.markdown:
            args.markdown.write_text(markdown(result, result["command"]))
            print(f"wrote {args.markdown}")
        return

    skipped = pandera_missing()
    engines = ["ours"] if skipped else list(ENGINES)
    if skipped:
        print(f"skipping pandera: {skipped}")
    with tempfile.TemporaryDirectory(prefix="reelrank-validation-") as tmp:
        fixtures = movielens_fixture_checks(Path(tmp))
    for row in fixtures:
        print(f"fixture {row['input']:<48} identical {row['identical']}  {row['reasons']}")
    inputs = prepare_inputs(args.sizes, args.text_size or None, args.share, args.clean_sizes)
    runs = measure(inputs, engines, args.runs)
    versions = ", ".join(
        f"{name} {_version(name)}" for name in ("pandas", "numpy", "pandera", "pyarrow")
    )
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "versions": versions,
        "fixtures": fixtures,
        "runs": runs,
        "skipped": skipped,
    }
    print()
    for row in runs:
        print(
            f"{row['input']:<42} {row['engine']:<12} {row['seconds']:7.2f} s "
            f"(x{row['vs_ours']:.2f},"
            f" CPU x{row['cpu_vs_ours']:.2f})"
            f"  +{row['added_mib']:,.0f} MiB  identical {row['identical_to_ours']}"
        )
    command = "python benchmarks/validation_engines.py " + " ".join(
        shlex.quote(a) for a in sys.argv[1:]
    )
    result["command"] = command
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown(result, command))
        print(f"wrote {args.markdown}")


def _version(name: str) -> str:
    import importlib.metadata as md

    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return "not installed"


if __name__ == "__main__":
    main()

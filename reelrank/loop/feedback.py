"""The service's logs as a data source: ``reelrank ingest-feedback``.

Reads the served-slate log (``impressions-*.jsonl``) and the feedback log
(``feedback-*.jsonl``) from their watermarks, validates every new line
(:mod:`reelrank.loop.checks`: accepted, or quarantined with a reason; per log
``read == accepted + quarantined``), and writes, as one
:class:`~reelrank.data.io.AtomicBatch` (the watermark last, so a run killed before the end
reads the same lines again and the duplicate rules, not the lake, absorb a repeat):

* ``<lake>/impressions.parquet``: one row per shown item of every accepted slate
  (:data:`IMPRESSION_COLUMNS`; ``shown_at`` is the client's time of its impression event);
* ``<lake>/feedback.parquet``: the training rows (:data:`FEEDBACK_COLUMNS`), ``kind`` one
  of ``play``, ``click``, ``rating`` (from the feedback log, ``origin`` ``feedback_log``)
  and ``impression_no_action`` (a shown item no click, play or rating came back for,
  ``origin`` ``impression_log``: the ranker's explicit negatives, :func:`read_negatives`);
  an action arriving in a later run turns its slot's negative into a positive;
* ``<lake>/events.parquet``: the source's events plus one event per acted-on slot in the
  canonical format, ``origin`` ``feedback`` (the source's rows: ``source``), rating the
  explicit rating when one was given, else the implicit one (:func:`implicit_rating`: a
  play 75 % and a click 50 % of the way up the source's scale, 4 and 3 on 1..5), time the
  strongest action's, so the next ``reelrank train`` learns from them;
* ``<lake>/summary.json``: ``data_version`` and ``content_sha256`` of the new lake, and a
  ``feedback`` section (this run's summary);
* ``<quarantine>/impression_log.parquet``, ``<quarantine>/feedback_log.parquet``: every
  refused line ever, with file, line number, text, ``reason`` and ``detail``;
* ``<lake>/feedback_state.json``: the watermark (per log file: bytes and lines consumed)
  and the lake identity it belongs to. Running again reads only what is new, so a second
  run over the same logs adds nothing.

Feedback lines received in the last ``grace`` seconds wait for the next run (their slate's
record may still be in the service's queue for the impression log). The events table is
always rebuilt as source events plus the feedback table's positives, so re-ingesting the
source (``reelrank run``) and then the feedback gives the same lake.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from reelrank import schema as s
from reelrank.config import Settings
from reelrank.data.ingest import (
    DATA_VERSION_CHARS,
    SUMMARY_FILE,
    TABLE_FILES,
    lake_content_hash,
    read_lake,
    read_summary,
)
from reelrank.data.io import AtomicBatch
from reelrank.data.validation import TableReport
from reelrank.exceptions import DataSourceError
from reelrank.loop import checks
from reelrank.loop.logs import (
    FEEDBACK_PREFIX,
    IMPRESSIONS_PREFIX,
    LogLine,
    advance,
    log_files,
    read_new_lines,
)
from reelrank.loop.records import FeedbackEvent, ServedSlate

logger = logging.getLogger(__name__)

IMPRESSIONS_TABLE: Final = "impressions.parquet"
FEEDBACK_TABLE: Final = "feedback.parquet"
STATE_FILE: Final = "feedback_state.json"
QUARANTINE_FILES: Final = {
    "impressions": "impression_log.parquet",
    "feedback": "feedback_log.parquet",
}
FORMAT_VERSION: Final = 1
DEFAULT_GRACE_SECONDS: Final = 2.0

# Columns of the loop's tables (beside reelrank.schema's user_id, item_id, rating, timestamp).
REQUEST_ID: Final = "request_id"
POSITION: Final = "position"
KIND: Final = "kind"
ORIGIN: Final = "origin"
SERVED_AT: Final = "served_at"
SHOWN_AT: Final = "shown_at"
PROPENSITY: Final = "propensity"
MARGINAL_PROPENSITY: Final = "marginal_propensity"
SLATE_PROPENSITY: Final = "slate_propensity"
SLATE_ATTRIBUTES: Final = ("model_version", "experiment", "design", "arm", "policy")

PLAY: Final = "play"
CLICK: Final = "click"
RATING_KIND: Final = "rating"
IMPRESSION_NO_ACTION: Final = "impression_no_action"
KINDS: Final = (PLAY, CLICK, RATING_KIND, IMPRESSION_NO_ACTION)
FROM_FEEDBACK_LOG: Final = "feedback_log"
FROM_IMPRESSION_LOG: Final = "impression_log"
SOURCE_ORIGIN: Final = "source"
FEEDBACK_ORIGIN: Final = "feedback"
IMPLICIT_SHARE: Final = {PLAY: 0.75, CLICK: 0.5}
"""Where on the source's rating scale an implicit positive sits (0 = min, 1 = max)."""
STRENGTH: Final = {RATING_KIND: 3, PLAY: 2, CLICK: 1}
"""Which action of a slot becomes its lake event: an explicit rating, else a play, else a click."""

IMPRESSION_COLUMNS: Final = {
    REQUEST_ID: "string",
    SERVED_AT: "datetime64[ns, UTC]",
    SHOWN_AT: "datetime64[ns, UTC]",
    s.USER_ID: "int64",
    POSITION: "int64",
    s.ITEM_ID: "int64",
    s.SCORE: "float64",
    PROPENSITY: "float64",
    MARGINAL_PROPENSITY: "float64",
    SLATE_PROPENSITY: "float64",
    **dict.fromkeys(SLATE_ATTRIBUTES, "string"),
    "team": "string",
}
FEEDBACK_COLUMNS: Final = {
    s.USER_ID: "int64",
    s.ITEM_ID: "int64",
    s.TIMESTAMP: "datetime64[ns, UTC]",
    KIND: "string",
    s.RATING: "float64",
    REQUEST_ID: "string",
    POSITION: "int64",
    s.SCORE: "float64",
    "model_version": "string",
    "experiment": "string",
    "arm": "string",
    "policy": "string",
    PROPENSITY: "float64",
    MARGINAL_PROPENSITY: "float64",
    SLATE_PROPENSITY: "float64",
    ORIGIN: "string",
}
QUARANTINE_COLUMNS: Final = {
    "file": "string",
    "line": "int64",
    "raw": "string",
    s.REASON: "string",
    "detail": "string",
}
NEGATIVE_COLUMNS: Final = tuple(c for c in FEEDBACK_COLUMNS if c not in (KIND, s.RATING))

Progress = Callable[[str], None]
Watermark = dict[str, tuple[int, int]]


def implicit_rating(kind: str, rating_min: float, rating_max: float) -> float:
    """The rating a play or click stands for on the source's scale (see the module)."""
    return rating_min + IMPLICIT_SHARE[kind] * (rating_max - rating_min)


def empty(columns: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in columns.items()})


def _cast(values: pd.Series, dtype: str) -> pd.Series:
    if dtype.startswith("datetime64") and not isinstance(values.dtype, pd.DatetimeTZDtype):
        values = pd.to_datetime(values, utc=True)
    return values.astype(pd.api.types.pandas_dtype(dtype))


def typed(frame: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """``frame`` with exactly ``columns``, in order, as those dtypes."""
    if frame.empty:
        return empty(columns)
    return pd.DataFrame(
        {name: _cast(frame[name], dtype) for name, dtype in columns.items()}, copy=False
    ).reset_index(drop=True)


# ------------------------------------------------------------------------------ state
@dataclass(frozen=True)
class FeedbackState:
    """The watermark of both logs and the lake it was ingested into."""

    identity: dict[str, Any]
    impressions: Watermark
    feedback: Watermark

    @classmethod
    def load(cls, lake_dir: Path) -> FeedbackState:
        path = Path(lake_dir) / STATE_FILE
        if not path.exists():
            return cls({}, {}, {})
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format_version") != FORMAT_VERSION:
            raise DataSourceError(
                f"{path} has format_version {data.get('format_version')}; this code reads "
                f"{FORMAT_VERSION}. Move the lake's feedback files away to start over."
            )

        def marks(name: str) -> Watermark:
            return {file: (int(v[0]), int(v[1])) for file, v in data[name].items()}

        return cls(data["identity"], marks("impressions"), marks("feedback"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "identity": self.identity,
            "impressions": {f: list(v) for f, v in sorted(self.impressions.items())},
            "feedback": {f: list(v) for f, v in sorted(self.feedback.items())},
        }


def lake_identity(summary: dict[str, Any]) -> dict[str, Any]:
    """Which world the lake holds (feedback of another one must never be mixed in): the
    dataset and its source's SHA-256 (MovieLens) or the synthetic world's config hash (the
    name of its ground-truth folder), so a copied data dir is still the same world."""
    source = summary.get("source_sha256") or Path(str(summary.get("source", ""))).name
    return {"dataset": summary.get("dataset"), "source": source}


# ------------------------------------------------------------------------------ summary
@dataclass(frozen=True)
class FeedbackIngestSummary:
    """What one ingestion read, accepted and quarantined per log, and what it added."""

    impressions: TableReport
    feedback: TableReport
    deferred: int
    added: dict[str, int]
    totals: dict[str, int]
    data_version: str
    wrote: bool
    lake_dir: Path
    quarantine_dir: Path

    def to_dict(self) -> dict[str, Any]:
        return {
            "impressions": self.impressions.to_dict(),
            "feedback": {**self.feedback.to_dict(), "deferred": self.deferred},
            "added": dict(self.added),
            "totals": dict(self.totals),
            "data_version": self.data_version,
            "wrote": self.wrote,
            "lake_dir": str(self.lake_dir),
            "quarantine_dir": str(self.quarantine_dir),
        }


def _report(checked: checks.Checked[Any]) -> TableReport:
    return TableReport(
        read=checked.read,
        accepted=len(checked.accepted),
        quarantined=len(checked.rejected),
        reasons=checked.reasons(),
    )


# ------------------------------------------------------------------------------ tables
def _read_table(path: Path, columns: dict[str, str]) -> pd.DataFrame:
    if not path.exists():
        return empty(columns)
    return typed(pd.read_parquet(path, engine="pyarrow"), columns)


def _slate_rows(accepted: list[tuple[LogLine, ServedSlate]]) -> pd.DataFrame:
    rows = [
        {
            REQUEST_ID: slate.request_id,
            SERVED_AT: slate.served_at,
            SHOWN_AT: pd.NaT,
            s.USER_ID: slate.user_id,
            POSITION: item.position,
            s.ITEM_ID: item.item_id,
            s.SCORE: item.score,
            PROPENSITY: item.propensity,
            MARGINAL_PROPENSITY: np.nan
            if item.marginal_propensity is None
            else item.marginal_propensity,
            SLATE_PROPENSITY: slate.slate_propensity,
            "model_version": slate.model_version,
            "experiment": slate.experiment,
            "design": slate.design,
            "arm": slate.arm,
            "policy": slate.policy,
            "team": item.team,
        }
        for _, slate in accepted
        for item in slate.items
    ]
    return typed(pd.DataFrame(rows), IMPRESSION_COLUMNS)


def _slate_index(impressions: pd.DataFrame) -> dict[str, checks.SlateRef]:
    ordered = impressions.sort_values([REQUEST_ID, POSITION], kind="stable")
    out: dict[str, checks.SlateRef] = {}
    for request_id, group in ordered.groupby(REQUEST_ID, sort=False):
        out[str(request_id)] = checks.SlateRef(
            int(group[s.USER_ID].iloc[0]), tuple(group[s.ITEM_ID].astype(int).tolist())
        )
    return out


def _seen_keys(impressions: pd.DataFrame, feedback: pd.DataFrame) -> set[tuple[str, int, str]]:
    actions = feedback[feedback[KIND] != IMPRESSION_NO_ACTION]
    seen = set(zip(actions[REQUEST_ID], actions[POSITION].astype(int), actions[KIND], strict=True))
    shown = impressions[impressions[SHOWN_AT].notna()]
    seen |= {
        (r, int(p), "impression") for r, p in zip(shown[REQUEST_ID], shown[POSITION], strict=True)
    }
    return seen


def _with_client_impressions(
    impressions: pd.DataFrame, events: list[FeedbackEvent]
) -> pd.DataFrame:
    """``shown_at`` filled from the client's impression events (the first one counts)."""
    shown = [e for e in events if e.event == "impression"]
    if not shown:
        return impressions
    times = pd.DataFrame(
        {
            REQUEST_ID: [e.request_id for e in shown],
            POSITION: [e.position for e in shown],
            "client_time": pd.to_datetime([e.time for e in shown], utc=True),
        }
    ).drop_duplicates([REQUEST_ID, POSITION])
    merged = impressions.merge(
        times.astype({REQUEST_ID: "string"}), how="left", on=[REQUEST_ID, POSITION]
    )
    merged[SHOWN_AT] = merged[SHOWN_AT].fillna(merged["client_time"])
    return typed(merged, IMPRESSION_COLUMNS)


def _action_rows(events: list[FeedbackEvent], impressions: pd.DataFrame) -> pd.DataFrame:
    """Feedback-table rows of accepted clicks, plays and ratings, with their slate's facts."""
    acted = [e for e in events if e.event != "impression"]
    if not acted:
        return empty(FEEDBACK_COLUMNS)
    frame = pd.DataFrame(
        {
            REQUEST_ID: pd.array([e.request_id for e in acted], dtype="string"),
            POSITION: [int(e.position or 0) for e in acted],
            s.TIMESTAMP: pd.to_datetime([e.time for e in acted], utc=True),
            KIND: [e.event for e in acted],
            s.RATING: [np.nan if e.rating is None else e.rating for e in acted],
        }
    )
    slate = impressions.drop(columns=[SERVED_AT, SHOWN_AT, "design", "team"])
    merged = frame.merge(slate, how="left", on=[REQUEST_ID, POSITION], validate="many_to_one")
    merged[ORIGIN] = FROM_FEEDBACK_LOG
    return typed(merged, FEEDBACK_COLUMNS)


def _negative_rows(impressions: pd.DataFrame, actions: pd.DataFrame) -> pd.DataFrame:
    """Every shown slot no action came back for, timed when the client showed it (else
    at the slate's first client event, else when it was served)."""
    acted = pd.MultiIndex.from_frame(actions[[REQUEST_ID, POSITION]])
    shown = pd.MultiIndex.from_frame(impressions[[REQUEST_ID, POSITION]])
    quiet = impressions[~shown.isin(acted)].copy()
    first_action = actions.groupby(REQUEST_ID)[s.TIMESTAMP].min()
    fallback = quiet[REQUEST_ID].map(first_action).astype("datetime64[ns, UTC]")
    quiet[s.TIMESTAMP] = quiet[SHOWN_AT].fillna(fallback).fillna(quiet[SERVED_AT])
    quiet[KIND] = IMPRESSION_NO_ACTION
    quiet[s.RATING] = np.nan
    quiet[ORIGIN] = FROM_IMPRESSION_LOG
    return typed(quiet, FEEDBACK_COLUMNS)


def _positive_events(actions: pd.DataFrame, rating_min: float, rating_max: float) -> pd.DataFrame:
    """One canonical event per acted-on slot: its strongest action (see the module)."""
    if actions.empty:
        return empty({**s.EVENTS_SCHEMA.dtypes, ORIGIN: "string"})
    ranked = actions.assign(_strength=actions[KIND].map(STRENGTH))
    best = ranked.sort_values(
        [REQUEST_ID, POSITION, "_strength", s.TIMESTAMP], ascending=[True, True, False, True]
    ).drop_duplicates([REQUEST_ID, POSITION])
    implicit = best[KIND].map(
        lambda kind: (
            implicit_rating(kind, rating_min, rating_max) if kind in IMPLICIT_SHARE else np.nan
        )
    )
    events = pd.DataFrame(
        {
            s.USER_ID: best[s.USER_ID].astype("int64"),
            s.ITEM_ID: best[s.ITEM_ID].astype("int64"),
            s.RATING: best[s.RATING].fillna(implicit).astype("float64"),
            s.TIMESTAMP: best[s.TIMESTAMP],
            ORIGIN: pd.array([FEEDBACK_ORIGIN] * len(best), dtype="string"),
        }
    )
    return events.sort_values([s.TIMESTAMP, s.USER_ID, s.ITEM_ID], kind="stable", ignore_index=True)


def merged_events(lake_events: pd.DataFrame, positives: pd.DataFrame) -> pd.DataFrame:
    """The source's events (whatever feedback events the lake held dropped) plus
    ``positives``; a positive identical to an earlier event (same user, item and time)
    is that event."""
    source = lake_events
    if ORIGIN in source.columns:
        source = source[source[ORIGIN] != FEEDBACK_ORIGIN]
    source = source.assign(**{ORIGIN: pd.array([SOURCE_ORIGIN] * len(source), dtype="string")})
    merged = pd.concat([source, positives], ignore_index=True)
    return merged.drop_duplicates(
        [s.USER_ID, s.ITEM_ID, s.TIMESTAMP], keep="first", ignore_index=True
    )


def _quarantine_rows(rejected: list[checks.Rejected]) -> pd.DataFrame:
    rows = [
        {
            "file": r.line.file,
            "line": r.line.line,
            "raw": r.line.text.decode("utf-8", errors="replace"),
            s.REASON: r.reason,
            "detail": r.detail,
        }
        for r in rejected
    ]
    return typed(pd.DataFrame(rows), QUARANTINE_COLUMNS)


# ------------------------------------------------------------------------------ ingestion
@dataclass(frozen=True)
class _Lake:
    """What the feedback source reads of the lake before a run."""

    dataset: s.Dataset
    summary: dict[str, Any]
    impressions: pd.DataFrame
    feedback: pd.DataFrame
    quarantine: dict[str, pd.DataFrame]
    state: FeedbackState


def _load_lake(settings: Settings) -> _Lake:
    lake_dir, quarantine_dir = settings.lake_path, settings.quarantine_path
    summary = read_summary(lake_dir)
    state = FeedbackState.load(lake_dir)
    identity = lake_identity(summary)
    if state.identity and state.identity != identity:
        raise DataSourceError(
            f"the feedback in {lake_dir} was ingested into another lake ({state.identity}); "
            f"this one holds {identity}. Feedback about one world must not train another: "
            f"move {IMPRESSIONS_TABLE}, {FEEDBACK_TABLE} and {STATE_FILE} out of {lake_dir} "
            "(and the service's logs, or point REELRANK_FEEDBACK_DIR and "
            "REELRANK_IMPRESSIONS_DIR elsewhere) to start over."
        )
    return _Lake(
        dataset=read_lake(lake_dir),
        summary=summary,
        impressions=_read_table(lake_dir / IMPRESSIONS_TABLE, IMPRESSION_COLUMNS),
        feedback=_read_table(lake_dir / FEEDBACK_TABLE, FEEDBACK_COLUMNS),
        quarantine={
            log: _read_table(quarantine_dir / name, QUARANTINE_COLUMNS)
            for log, name in QUARANTINE_FILES.items()
        },
        state=state,
    )


@dataclass(frozen=True)
class _Checked:
    slates: checks.Checked[ServedSlate]
    events: checks.Checked[FeedbackEvent]
    deferred: int
    impressions_mark: Watermark
    feedback_mark: Watermark


def _check_logs(
    settings: Settings, lake: _Lake, now: datetime, grace: timedelta
) -> tuple[_Checked, pd.DataFrame]:
    """Validate the new lines of both logs; also the impressions table with the new slates."""
    slate_lines = read_new_lines(
        settings.impressions_path, IMPRESSIONS_PREFIX, lake.state.impressions
    )
    slates = checks.check_slates(slate_lines, lake.impressions[REQUEST_ID].tolist(), now)
    impressions = pd.concat([lake.impressions, _slate_rows(slates.accepted)], ignore_index=True)
    impressions = typed(impressions, IMPRESSION_COLUMNS)
    parsed = checks.parse_events(
        read_new_lines(settings.feedback_path, FEEDBACK_PREFIX, lake.state.feedback)
    )
    settled = checks.settled_prefix(parsed, now - grace)
    dataset = lake.dataset
    context = checks.EventContext(
        slates=_slate_index(impressions),
        users=frozenset(dataset.users[s.USER_ID].astype(int).tolist()),
        items=frozenset(dataset.items[s.ITEM_ID].astype(int).tolist()),
        rating_min=dataset.rating_min,
        rating_max=dataset.rating_max,
        seen=frozenset(_seen_keys(lake.impressions, lake.feedback)),
        now=now,
    )
    events = checks.check_events(settled, context)
    result = _Checked(
        slates=slates,
        events=events,
        deferred=len(parsed) - len(settled),
        impressions_mark=advance(lake.state.impressions, slate_lines),
        feedback_mark=advance(lake.state.feedback, [line for line, _ in settled]),
    )
    return result, impressions


def _counts(feedback: pd.DataFrame, events: pd.DataFrame) -> dict[str, int]:
    kinds = feedback[KIND].value_counts()
    out = {kind: int(kinds.get(kind, 0)) for kind in KINDS}
    if ORIGIN in events.columns:
        out["events_from_feedback"] = int((events[ORIGIN] == FEEDBACK_ORIGIN).sum())
    else:
        out["events_from_feedback"] = 0
    return out


@dataclass(frozen=True)
class _Tables:
    impressions: pd.DataFrame
    feedback: pd.DataFrame
    dataset: s.Dataset


def _build_tables(lake: _Lake, checked: _Checked, impressions: pd.DataFrame) -> _Tables:
    """The lake's feedback, impressions and events after this run's accepted lines."""
    accepted = [event for _, event in checked.events.accepted]
    impressions = _with_client_impressions(impressions, accepted)
    earlier = lake.feedback[lake.feedback[KIND] != IMPRESSION_NO_ACTION]
    actions = typed(pd.concat([earlier, _action_rows(accepted, impressions)]), FEEDBACK_COLUMNS)
    feedback = pd.concat([actions, _negative_rows(impressions, actions)], ignore_index=True)
    feedback = feedback.sort_values([s.TIMESTAMP, REQUEST_ID, POSITION], kind="stable")
    old = lake.dataset
    positives = _positive_events(actions, old.rating_min, old.rating_max)
    dataset = s.Dataset(
        events=merged_events(old.events, positives),
        users=old.users,
        items=old.items,
        rating_min=old.rating_min,
        rating_max=old.rating_max,
        name=old.name,
    )
    return _Tables(impressions, typed(feedback, FEEDBACK_COLUMNS), dataset)


def ingest_feedback(
    settings: Settings,
    now: datetime | None = None,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    progress: Progress | None = None,
) -> FeedbackIngestSummary:
    """Ingest the new lines of the impression and feedback logs into the lake (see the
    module docstring).

    Args:
        settings: where the logs (``impressions_path``, ``feedback_path``), the lake and
            the quarantine are.
        now: the clock (default: now, UTC); later times are ``future_timestamp``.
        grace_seconds: feedback received this recently waits for the next run.
        progress: called with a short message at each step.

    Raises:
        DataSourceError: no lake yet, a log was truncated, or the feedback belongs to
            another lake.
    """
    now = now or datetime.now(UTC)
    say = progress or logger.info
    lake = _load_lake(settings)
    say("validating the new lines of the impression and feedback logs")
    checked, impressions = _check_logs(settings, lake, now, timedelta(seconds=grace_seconds))
    tables = _build_tables(lake, checked, impressions)
    before = _counts(lake.feedback, lake.dataset.events)
    totals = _counts(tables.feedback, tables.dataset.events)
    changed = (
        checked.slates.read + checked.events.read > 0
        or ORIGIN not in lake.dataset.events.columns
        or before != totals
    )
    content = (
        lake_content_hash(tables.dataset) if changed else lake.summary.get("content_sha256", "")
    )
    result = FeedbackIngestSummary(
        impressions=_report(checked.slates),
        feedback=_report(checked.events),
        deferred=checked.deferred,
        added={key: totals[key] - before[key] for key in totals},
        totals=totals,
        data_version=content[:DATA_VERSION_CHARS]
        if changed
        else lake.summary.get("data_version", ""),
        wrote=changed,
        lake_dir=settings.lake_path,
        quarantine_dir=settings.quarantine_path,
    )
    if changed:
        say(f"writing the feedback, impressions and events of {settings.lake_path}")
        state = FeedbackState(
            lake_identity(lake.summary), checked.impressions_mark, checked.feedback_mark
        )
        _write(settings, lake, tables, checked, state, result, content)
    return result


def _write(
    settings: Settings,
    lake: _Lake,
    tables: _Tables,
    checked: _Checked,
    state: FeedbackState,
    result: FeedbackIngestSummary,
    content: str,
) -> None:
    lake_dir, quarantine_dir = settings.lake_path, settings.quarantine_path
    summary = {
        **lake.summary,
        "data_version": result.data_version,
        "content_sha256": content,
        "feedback": result.to_dict(),
    }
    rejected = {"impressions": checked.slates.rejected, "feedback": checked.events.rejected}
    with AtomicBatch() as batch:
        batch.write_parquet(tables.impressions, lake_dir / IMPRESSIONS_TABLE)
        batch.write_parquet(tables.feedback, lake_dir / FEEDBACK_TABLE)
        batch.write_parquet(tables.dataset.events, lake_dir / TABLE_FILES[s.EVENTS])
        for log, name in QUARANTINE_FILES.items():
            frame = pd.concat(
                [lake.quarantine[log], _quarantine_rows(rejected[log])], ignore_index=True
            )
            batch.write_parquet(typed(frame, QUARANTINE_COLUMNS), quarantine_dir / name)
        batch.write_json(summary, lake_dir / SUMMARY_FILE)
        batch.write_json(state.to_dict(), lake_dir / STATE_FILE)


# ------------------------------------------------------------------------------ readers
def read_feedback_table(lake_dir: Path) -> pd.DataFrame:
    """``<lake>/feedback.parquet`` (:data:`FEEDBACK_COLUMNS`; empty before any ingestion)."""
    return _read_table(Path(lake_dir) / FEEDBACK_TABLE, FEEDBACK_COLUMNS)


def read_impressions(lake_dir: Path) -> pd.DataFrame:
    """``<lake>/impressions.parquet`` (:data:`IMPRESSION_COLUMNS`)."""
    return _read_table(Path(lake_dir) / IMPRESSIONS_TABLE, IMPRESSION_COLUMNS)


def read_slates(lake_dir: Path) -> pd.DataFrame:
    """The served slates as the ranker's slate window reads them
    (:data:`~reelrank.models.training_set.SLATE_COLUMNS`): one row per shown item,
    ``request_id, user_id, item_id`` and ``timestamp``, when the client showed it (its
    impression event; the serving time when none came back), in time order. What users
    then did is in the events, which label them."""
    table = read_impressions(lake_dir)
    when = table[SHOWN_AT].fillna(table[SERVED_AT])
    out = pd.DataFrame(
        {
            REQUEST_ID: table[REQUEST_ID],
            s.USER_ID: table[s.USER_ID],
            s.ITEM_ID: table[s.ITEM_ID],
            s.TIMESTAMP: when,
        }
    )
    return out.sort_values(s.TIMESTAMP, kind="stable", ignore_index=True)


def with_slates(dataset: s.Dataset, lake_dir: Path) -> s.Dataset:
    """``dataset`` with the lake's served slates (:func:`read_slates`) when it has any."""
    if not (Path(lake_dir) / IMPRESSIONS_TABLE).exists():
        return dataset
    slates = read_slates(lake_dir)
    return replace(dataset, slates=slates) if len(slates) else dataset


def read_negatives(lake_dir: Path) -> pd.DataFrame:
    """The ranker's explicit negatives: every shown item no click, play or rating came back
    for (``kind == "impression_no_action"``), one row per (slate, position).

    Columns (:data:`NEGATIVE_COLUMNS`): ``user_id``, ``item_id`` (int64); ``timestamp``
    (datetime64[ns, UTC]: when the client showed it); ``request_id`` (string),
    ``position`` (int64, from 1); ``score`` (float64: the serving ranker's score);
    ``model_version``, ``experiment``, ``arm``, ``policy`` (string; experiment and arm
    null outside an experiment); ``propensity``, ``marginal_propensity``,
    ``slate_propensity`` (float64, see :mod:`reelrank.loop.policy`; marginal NaN when not
    exact); ``origin`` (string, ``impression_log``). Sorted by time.
    """
    table = read_feedback_table(lake_dir)
    negatives = table[table[KIND] == IMPRESSION_NO_ACTION]
    return negatives.loc[:, list(NEGATIVE_COLUMNS)].reset_index(drop=True)


def logs_exist(settings: Settings) -> bool:
    """Whether there is feedback to ingest or merge: a log file, or an earlier ingestion."""
    return bool(
        log_files(settings.impressions_path, IMPRESSIONS_PREFIX)
        or log_files(settings.feedback_path, FEEDBACK_PREFIX)
        or (settings.lake_path / FEEDBACK_TABLE).exists()
    )

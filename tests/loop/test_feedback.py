"""The service's logs as a data source: every line accepted or quarantined with its reason,
``read == accepted + quarantined``, idempotent, atomic, and the positives reach the lake's
events."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pandas as pd
import pytest

from reelrank.data.ingest import read_lake, read_summary
from reelrank.exceptions import DataSourceError
from reelrank.loop import feedback as fb
from reelrank.loop.feedback import ingest_feedback, read_feedback_table, read_negatives
from tests.loop.conftest import NOW, event, slate, write_events, write_slates

SLATE = slate("r1", 3, [10, 11, 12])


def _ingest(settings, **kwargs):
    return ingest_feedback(settings, now=NOW, **kwargs)


def _reasons(report) -> dict[str, int]:
    assert report.read == report.accepted + report.quarantined
    return report.reasons


@pytest.mark.parametrize(
    ("reason", "line"),
    [
        ("malformed_line", b"{not json"),
        ("malformed_line", {**SLATE, "request_id": "r9", "items": [{"position": 2, "item_id": 1}]}),
        (
            "future_timestamp",
            {**SLATE, "request_id": "r9", "served_at": "2027-06-01T00:00:00+00:00"},
        ),
        ("duplicate_request_id", SLATE),
    ],
)
def test_each_served_slate_reason(lake_settings, reason, line):
    write_slates(lake_settings, SLATE, line)
    summary = _ingest(lake_settings)
    assert _reasons(summary.impressions) == {reason: 1}
    assert summary.impressions.accepted == 1
    quarantined = pd.read_parquet(lake_settings.quarantine_path / "impression_log.parquet")
    assert quarantined["reason"].tolist() == [reason]
    assert quarantined["line"].tolist() == [2]
    assert quarantined["detail"].iloc[0]


UNKNOWN_USER_SLATE = slate("r-new", 9999, [10])  # a cold-start user the lake does not know
UNKNOWN_ITEM_SLATE = slate("r-odd", 3, [4444])  # an item the lake does not know


@pytest.mark.parametrize(
    ("reason", "line"),
    [
        ("malformed_line", b"[1, 2]"),
        ("malformed_line", event("buy", "r1", 1, 3, 10)),
        ("malformed_line", event("click", "r1", 1, 3, 10, user_id=True)),
        ("future_timestamp", event("click", "r1", 1, 3, 10, timestamp="2027-01-01T00:00:00+00:00")),
        ("no_impression", event("click", None, None, 3, 10)),
        ("unknown_request_id", event("play", "r-never-served", 1, 3, 10)),
        ("position_outside_slate", event("click", "r1", 4, 3, 10)),
        ("position_outside_slate", event("click", "r1", None, 3, 10)),
        ("slate_mismatch", event("click", "r1", 1, 3, 11)),
        ("slate_mismatch", event("click", "r1", 1, 4, 10)),
        ("unknown_user", event("click", "r-new", 1, 9999, 10)),
        ("unknown_item", event("play", "r-odd", 1, 3, 4444)),
        ("rating_out_of_range", event("rating", "r1", 2, 3, 11, rating=0.5)),
        ("duplicate_event", event("click", "r1", 3, 3, 12)),
    ],
)
def test_each_feedback_reason(lake_settings, reason, line):
    write_slates(lake_settings, SLATE, UNKNOWN_USER_SLATE, UNKNOWN_ITEM_SLATE)
    write_events(lake_settings, event("click", "r1", 3, 3, 12), line)
    summary = _ingest(lake_settings)
    assert _reasons(summary.feedback) == {reason: 1}
    assert summary.feedback.accepted == 1
    quarantined = pd.read_parquet(lake_settings.quarantine_path / "feedback_log.parquet")
    assert quarantined["reason"].tolist() == [reason]
    assert quarantined["raw"].iloc[0]


def _digests(settings) -> dict[str, str]:
    files = [*settings.lake_path.iterdir(), *settings.quarantine_path.iterdir()]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files if p.is_file()}


def test_a_second_run_adds_nothing(lake_settings):
    write_slates(lake_settings, SLATE, slate("r2", 5, [1, 2]))
    write_events(
        lake_settings,
        *[event("impression", "r1", p, 3, i) for p, i in enumerate([10, 11, 12], start=1)],
        event("click", "r1", 2, 3, 11),
        event("play", "r1", 2, 3, 11),
        b"garbage",
    )
    first = _ingest(lake_settings)
    assert first.wrote
    assert first.added["play"] == 1
    assert first.added["impression_no_action"] == 4
    before = _digests(lake_settings)
    second = _ingest(lake_settings)
    assert not second.wrote
    assert second.impressions.read == second.feedback.read == 0
    assert set(second.added.values()) == {0}
    assert _digests(lake_settings) == before  # nothing rewritten
    assert (
        second.data_version
        == first.data_version
        == read_summary(lake_settings.lake_path)["data_version"]
    )


def test_positives_reach_the_lake_events_with_implicit_ratings(lake_settings):
    source_events = len(read_lake(lake_settings.lake_path).events)
    write_slates(lake_settings, SLATE)
    write_events(
        lake_settings,
        event("click", "r1", 1, 3, 10, timestamp="2016-01-02T10:00:10+00:00"),
        event("click", "r1", 2, 3, 11, timestamp="2016-01-02T10:00:20+00:00"),
        event("play", "r1", 2, 3, 11, timestamp="2016-01-02T10:00:40+00:00"),
        event("rating", "r1", 3, 3, 12, rating=2.0),
    )
    _ingest(lake_settings)
    lake = read_lake(lake_settings.lake_path)
    assert len(lake.events) == source_events + 3  # one per acted-on slot
    added = lake.events[lake.events["origin"] == "feedback"].set_index("item_id")
    assert added["rating"].to_dict() == {10: 3.0, 11: 4.0, 12: 2.0}  # click, play, rating
    assert added.loc[11, "timestamp"] == pd.Timestamp("2016-01-02T10:00:40", tz="UTC")
    assert (lake.events["origin"] == "source").sum() == source_events
    assert fb.implicit_rating("play", 1.0, 5.0) == 4.0
    assert fb.implicit_rating("click", 1.0, 5.0) == 3.0


def test_a_late_action_turns_a_negative_into_a_positive(lake_settings):
    write_slates(lake_settings, SLATE)
    write_events(lake_settings, event("impression", "r1", 1, 3, 10))
    first = _ingest(lake_settings)
    assert first.totals["impression_no_action"] == 3
    write_events(lake_settings, event("play", "r1", 1, 3, 10))
    second = _ingest(lake_settings)
    assert second.added["impression_no_action"] == -1
    assert second.added["play"] == 1
    negatives = read_negatives(lake_settings.lake_path)
    assert sorted(negatives["position"].tolist()) == [2, 3]


def test_the_negatives_frame(lake_settings):
    write_slates(lake_settings, slate("r1", 3, [10, 11], experiment="e1", arm="b", design="ab"))
    write_events(
        lake_settings,
        event("impression", "r1", 1, 3, 10, timestamp="2016-01-02T09:00:00+00:00"),
        event("click", "r1", 2, 3, 11),
    )
    _ingest(lake_settings)
    negatives = read_negatives(lake_settings.lake_path)
    assert list(negatives.columns) == list(fb.NEGATIVE_COLUMNS)
    assert negatives.dtypes.astype(str).to_dict() == {
        c: fb.FEEDBACK_COLUMNS[c] for c in fb.NEGATIVE_COLUMNS
    }
    row = negatives.iloc[0]
    assert (row["user_id"], row["item_id"], row["position"]) == (3, 10, 1)
    assert row["timestamp"] == pd.Timestamp("2016-01-02T09:00:00", tz="UTC")  # shown_at
    assert (row["experiment"], row["arm"], row["origin"]) == ("e1", "b", "impression_log")
    assert row["propensity"] == 1.0
    table = read_feedback_table(lake_settings.lake_path)
    assert sorted(table["kind"]) == ["click", "impression_no_action"]


def test_feedback_received_within_the_grace_period_waits(lake_settings):
    write_slates(lake_settings, SLATE)
    recent = (NOW - timedelta(seconds=2)).isoformat()
    write_events(
        lake_settings,
        event("click", "r1", 1, 3, 10),
        event("click", "r1", 2, 3, 11, received_at=recent),
        event("click", "r1", 3, 3, 12),  # after the held one in the file: waits too
    )
    first = _ingest(lake_settings, grace_seconds=5.0)
    assert (first.feedback.read, first.deferred) == (1, 2)
    later = ingest_feedback(lake_settings, now=NOW + timedelta(minutes=1))
    assert (later.feedback.read, later.feedback.accepted, later.deferred) == (2, 2, 0)


def test_reingesting_the_source_then_the_feedback_gives_the_same_lake(lake_settings):
    from reelrank.data.ingest import run_ingest
    from reelrank.data.synthetic import SyntheticConfig

    write_slates(lake_settings, SLATE)
    write_events(lake_settings, event("play", "r1", 1, 3, 10))
    _ingest(lake_settings)
    events = read_lake(lake_settings.lake_path).events
    config = SyntheticConfig(n_users=50, n_items=40, n_events=600, seed=1)
    run_ingest("synthetic", lake_settings, synthetic=config)  # what `reelrank run` does
    assert "origin" not in read_lake(lake_settings.lake_path).events.columns
    again = _ingest(lake_settings)
    assert again.wrote
    assert again.feedback.read == 0
    pd.testing.assert_frame_equal(read_lake(lake_settings.lake_path).events, events)


def test_feedback_of_another_lake_is_refused(lake_settings):
    write_slates(lake_settings, SLATE)
    _ingest(lake_settings)
    summary_path = lake_settings.lake_path / "summary.json"
    summary = summary_path.read_text().replace('"dataset": "synthetic"', '"dataset": "ml-100k"')
    summary_path.write_text(summary)
    with pytest.raises(DataSourceError, match="another lake"):
        _ingest(lake_settings)


def test_a_truncated_log_is_refused(lake_settings):
    write_slates(lake_settings, SLATE, slate("r2", 5, [1]))
    _ingest(lake_settings)
    (path,) = lake_settings.impressions_path.glob("impressions-*.jsonl")
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DataSourceError, match="truncated"):
        _ingest(lake_settings)


def test_a_failed_run_leaves_the_lake_and_the_watermark_as_they_were(lake_settings, monkeypatch):
    write_slates(lake_settings, SLATE)
    write_events(lake_settings, event("play", "r1", 1, 3, 10))
    before = _digests(lake_settings)

    def broken(rejected):
        raise OSError("disk full")

    monkeypatch.setattr(fb, "_quarantine_rows", broken)
    with pytest.raises(OSError, match="disk full"):
        _ingest(lake_settings)
    assert _digests(lake_settings) == before
    monkeypatch.undo()
    assert _ingest(lake_settings).feedback.accepted == 1  # the same lines, read again


def test_an_unterminated_last_line_waits_for_its_newline(lake_settings):
    import orjson

    write_slates(lake_settings, SLATE)
    (path,) = lake_settings.impressions_path.glob("impressions-*.jsonl")
    half = orjson.dumps(slate("r2", 5, [1]))
    with path.open("ab") as handle:
        handle.write(half[:30])
    assert _ingest(lake_settings).impressions.read == 1
    with path.open("ab") as handle:
        handle.write(half[30:] + b"\n")
    assert _ingest(lake_settings).impressions.accepted == 1

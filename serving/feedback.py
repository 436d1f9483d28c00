"""Durable, append-only feedback log: one JSON line per event, one file per UTC day.

The file format, the durable append (one ``write`` with ``O_APPEND`` under an exclusive
``flock``, then ``fsync`` before the API answers) and the incremental reader live in
:mod:`reelrank.loop.logs`, shared with the served-slate log (:mod:`serving.impressions`);
``reelrank ingest-feedback`` reads both back as a data source (:mod:`reelrank.loop.feedback`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson

from reelrank.loop.logs import FEEDBACK_PREFIX, SUFFIX, append_lines, log_file, log_files

FILE_PREFIX: Final = FEEDBACK_PREFIX
FILE_SUFFIX: Final = SUFFIX
RECEIVED_AT: Final = "received_at"


def feedback_file(directory: Path, day: datetime) -> Path:
    """``<directory>/feedback-YYYY-MM-DD.jsonl`` for the UTC day of ``day``."""
    return log_file(directory, FEEDBACK_PREFIX, day)


class FeedbackLog:
    """Appends feedback records under ``directory`` (created on first write)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def append(self, records: Iterable[Mapping[str, Any]], now: datetime | None = None) -> Path:
        """Append ``records`` (JSON-serialisable mappings) durably, each stamped with
        ``received_at``; returns the file."""
        received = now or datetime.now(UTC)
        stamp = received.isoformat()
        lines = [orjson.dumps({**record, RECEIVED_AT: stamp}, default=str) for record in records]
        return append_lines(self.directory, FEEDBACK_PREFIX, lines, received)


def read_feedback(directory: Path) -> list[dict[str, Any]]:
    """Every record of every day file under ``directory``, oldest file first."""
    records: list[dict[str, Any]] = []
    for path in log_files(directory, FEEDBACK_PREFIX):
        with path.open(encoding="utf-8") as handle:
            records.extend(json.loads(line) for line in handle if line.strip())
    return records

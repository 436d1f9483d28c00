"""Durable, append-only feedback log: one JSON line per event, one file per UTC day.

A batch is encoded first, then written with a single ``write`` on a file opened with
``O_APPEND`` while holding both a process-local lock and an exclusive ``flock`` (several
uvicorn workers append to the same file), then flushed to disk with ``fsync`` before the
API answers. A reader (the next training run) therefore sees whole lines only.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

FILE_PREFIX: Final = "feedback-"
FILE_SUFFIX: Final = ".jsonl"


def feedback_file(directory: Path, day: datetime) -> Path:
    """``<directory>/feedback-YYYY-MM-DD.jsonl`` for the UTC day of ``day``."""
    return directory / f"{FILE_PREFIX}{day.astimezone(UTC):%Y-%m-%d}{FILE_SUFFIX}"


class FeedbackLog:
    """Appends feedback records under ``directory`` (created on first write)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()

    def append(self, records: Iterable[Mapping[str, Any]], now: datetime | None = None) -> Path:
        """Append ``records`` (JSON-serialisable mappings) durably; returns the file."""
        received = now or datetime.now(UTC)
        stamp = received.isoformat()
        lines = [
            json.dumps({**record, "received_at": stamp}, default=str, separators=(",", ":"))
            for record in records
        ]
        payload = ("\n".join(lines) + "\n").encode("utf-8")
        path = feedback_file(self.directory, received)
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    view = memoryview(payload)
                    while view:
                        written = os.write(fd, view)
                        view = view[written:]
                    os.fsync(fd)
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        return path


def read_feedback(directory: Path) -> list[dict[str, Any]]:
    """Every record of every day file under ``directory``, oldest file first."""
    records: list[dict[str, Any]] = []
    for path in sorted(Path(directory).glob(f"{FILE_PREFIX}*{FILE_SUFFIX}")):
        with path.open(encoding="utf-8") as handle:
            records.extend(json.loads(line) for line in handle if line.strip())
    return records

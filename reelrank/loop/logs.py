"""Append-only JSON-lines logs, one file per UTC day: the format both of the service's logs
share (served slates, ``impressions-YYYY-MM-DD.jsonl``; feedback, ``feedback-YYYY-MM-DD.jsonl``).

Writing (:func:`append_lines`): a batch is encoded first, then written with a single
``write`` on a file opened with ``O_APPEND`` while holding an exclusive ``flock`` (several
uvicorn workers append to the same file), then flushed to disk with ``fsync``. A reader
that takes the shared lock (:func:`read_new_lines` does) therefore sees whole lines only.

Reading incrementally (:func:`read_new_lines`): a *watermark* maps each file name to the
byte offset up to which its lines were consumed; only the complete lines after it are
returned (a last line without its newline, a write caught half way by a reader that did
not lock, waits for the next read). Files only grow, so a file shorter than its watermark
was truncated or replaced, and reading refuses it.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from reelrank.exceptions import DataSourceError

IMPRESSIONS_PREFIX: Final = "impressions-"
FEEDBACK_PREFIX: Final = "feedback-"
SUFFIX: Final = ".jsonl"
NEWLINE: Final = b"\n"

_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def log_file(directory: Path, prefix: str, day: datetime) -> Path:
    """``<directory>/<prefix>YYYY-MM-DD.jsonl`` for the UTC day of ``day``."""
    return Path(directory) / f"{prefix}{day.astimezone(UTC):%Y-%m-%d}{SUFFIX}"


def log_files(directory: Path, prefix: str) -> list[Path]:
    """Every day file of one log under ``directory``, oldest first."""
    return sorted(Path(directory).glob(f"{prefix}*{SUFFIX}"))


def _process_lock(path: Path) -> threading.Lock:
    """One lock per file for the threads of this process (flock locks per open file)."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(path, threading.Lock())


def append_lines(directory: Path, prefix: str, lines: Sequence[bytes], now: datetime) -> Path:
    """Append ``lines`` (each without its newline) durably to the day file of ``now``.

    Raises:
        OSError: the file cannot be written (full or read-only disk); nothing was appended
            unless the kernel wrote part of the batch before failing.
    """
    path = log_file(directory, prefix, now)
    if not lines:
        return path
    payload = NEWLINE.join(lines) + NEWLINE
    with _process_lock(path):
        Path(directory).mkdir(parents=True, exist_ok=True)
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


@dataclass(frozen=True, slots=True)
class LogLine:
    """One complete line of a log file: where it is and what it says."""

    file: str
    line: int  # 1-based line number in the file
    offset: int  # byte offset of its first byte
    text: bytes  # without the newline


def _read_tail(path: Path, offset: int) -> bytes:
    with path.open("rb") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
        try:
            size = os.fstat(handle.fileno()).st_size
            if size < offset:
                raise DataSourceError(
                    f"{path} is {size:,} bytes, shorter than the {offset:,} bytes already "
                    "ingested: the log was truncated or replaced. Restore it; or, to start "
                    "the feedback over, move the lake's feedback tables and "
                    "feedback_state.json away."
                )
            handle.seek(offset)
            return handle.read()
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def read_new_lines(
    directory: Path, prefix: str, watermark: Mapping[str, tuple[int, int]]
) -> list[LogLine]:
    """The complete lines after the watermark of every day file of one log, oldest first.

    Args:
        directory: where the log's day files are.
        prefix: which log (:data:`IMPRESSIONS_PREFIX` or :data:`FEEDBACK_PREFIX`).
        watermark: file name -> ``(bytes consumed, lines consumed)``.

    Raises:
        DataSourceError: a file is shorter than its watermark.
    """
    out: list[LogLine] = []
    for path in log_files(directory, prefix):
        offset, seen = watermark.get(path.name, (0, 0))
        data = _read_tail(path, offset)
        end = data.rfind(NEWLINE) + 1  # an unterminated last line waits for the next read
        start = 0
        number = seen
        while start < end:
            stop = data.index(NEWLINE, start)
            number += 1
            out.append(LogLine(path.name, number, offset + start, data[start:stop]))
            start = stop + 1
    return out


def advance(
    watermark: Mapping[str, tuple[int, int]], consumed: Sequence[LogLine]
) -> dict[str, tuple[int, int]]:
    """The watermark after consuming ``consumed`` (a prefix of each file's new lines)."""
    out = dict(watermark)
    for line in consumed:
        out[line.file] = (line.offset + len(line.text) + 1, line.line)
    return out

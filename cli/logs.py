"""Console logging: expected errors read as one message, unexpected ones keep their traceback.

An error ReelRank raises on purpose (:class:`~reelrank.exceptions.ReelRankError`) says what
was wrong and what to do; its traceback is noise on a terminal. Prefect logs a failed
task's exception with its traceback; on the console (not with ``--verbose``) that
traceback is left out for ReelRank's own errors. Prefect's run log (its API handler) and
``--verbose`` keep it whole.
"""

from __future__ import annotations

import logging

from reelrank.exceptions import ReelRankError

CONSOLE_LOGGERS = ("prefect", "")  # Prefect's console handlers and the root's


class ExpectedErrorFormatter(logging.Formatter):
    """Formats like ``inner``, without the traceback of a ReelRank error."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, ReelRankError):
            return self.inner.format(record)
        saved = record.exc_info, record.exc_text
        record.exc_info, record.exc_text = None, None
        try:
            return self.inner.format(record)
        finally:  # other handlers (Prefect's run log) still get the traceback
            record.exc_info, record.exc_text = saved


def hide_expected_tracebacks() -> None:
    """Wrap every console handler's formatter (idempotent)."""
    for name in CONSOLE_LOGGERS:
        for handler in logging.getLogger(name).handlers:
            is_console = (
                isinstance(handler, logging.StreamHandler) or "Console" in type(handler).__name__
            )
            if is_console and not isinstance(handler.formatter, ExpectedErrorFormatter):
                handler.setFormatter(ExpectedErrorFormatter(handler.formatter))

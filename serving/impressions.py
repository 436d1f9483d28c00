"""The served-slate (impression) log: one record per slate answered, off the request's path.

The request path only puts ``(recommendation, time)`` on a bounded queue (``put_nowait``,
about a microsecond); a writer thread turns queued slates into records
(:class:`reelrank.loop.records.ServedSlate`: positions, scores, propensities, model
version, experiment, arm, policy; marginal propensities computed here, not on the request
path) and appends them in batches (up to :data:`BATCH_MAX` slates or
:data:`FLUSH_INTERVAL_S` after the first of a batch) with the same durability as the
feedback log (:func:`reelrank.loop.logs.append_lines`: ``O_APPEND``, ``flock``,
``fsync``), to ``<REELRANK_IMPRESSIONS_DIR>/impressions-YYYY-MM-DD.jsonl``.

Serving never waits for the log: a full queue (``REELRANK_IMPRESSION_QUEUE_SIZE``) drops
the slate, a failed write (a full or read-only disk) drops its batch, and both are counted
(``reelrank_impressions_dropped_total{reason}`` beside ``reelrank_impressions_written_total``);
the slate was still answered. A dropped slate's feedback is later quarantined as
``unknown_request_id`` by ``reelrank ingest-feedback``, so a loss is visible twice.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import numpy as np
import orjson

from reelrank.loop.logs import IMPRESSIONS_PREFIX, append_lines
from reelrank.loop.policy import marginal_propensities
from reelrank.loop.records import PoolItem, ServedSlate, ShownItem
from serving.service import Recommendation

logger = logging.getLogger(__name__)

BATCH_MAX: Final = 512
FLUSH_INTERVAL_S: Final = 0.05
WRITTEN: Final = "written"
QUEUE_FULL: Final = "queue_full"
WRITE_ERROR: Final = "write_error"
ENCODE_ERROR: Final = "encode_error"
DROP_REASONS: Final = (QUEUE_FULL, WRITE_ERROR, ENCODE_ERROR)

Counter = Callable[[str, int], None]
"""``(outcome, n)``: ``written`` or a drop reason, and how many slates."""


def served_slate(result: Recommendation, served_at: float) -> ServedSlate:
    """The log record of one answered recommendation (``served_at``: epoch seconds)."""
    if result.request_id is None:
        raise ValueError("a served slate needs its request id")
    n = len(result.items)
    propensity = np.ones(n)
    slate_propensity = 1.0
    marginal: np.ndarray | None = np.ones(n)
    pool: tuple[PoolItem, ...] | None = None
    if result.drawn is not None:
        draw = result.drawn.draw
        propensity, slate_propensity = draw.propensity, draw.slate_propensity
        marginal = marginal_propensities(result.policy, result.drawn.scores, draw)
        pool = tuple(
            PoolItem(int(item), float(score))
            for item, score in zip(
                result.drawn.item_ids[draw.pool].tolist(),
                result.drawn.scores[draw.pool].tolist(),
                strict=True,
            )
        )
    items = tuple(
        ShownItem(
            position=item.rank,
            item_id=item.item_id,
            score=item.score,
            propensity=float(propensity[i]),
            marginal_propensity=None if marginal is None else float(marginal[i]),
            team=None if result.teams is None else result.teams[i],
        )
        for i, item in enumerate(result.items)
    )
    return ServedSlate(
        request_id=result.request_id,
        served_at=datetime.fromtimestamp(served_at, UTC),
        user_id=result.user_id,
        k=result.k,
        exclude_seen=result.exclude_seen,
        genre=result.genre,
        model_version=result.model_version,
        experiment=result.experiment,
        design=result.design,
        arm=result.arm,
        policy=result.policy.label,
        fallback=result.fallback,
        slate_propensity=float(slate_propensity),
        items=items,
        pool=pool,
    )


def slate_json(result: Recommendation, served_at: float) -> bytes:
    """:func:`served_slate`'s JSON line, built directly for a greedy slate (the common
    case: a third of the writer's time per slate; byte-equal, tested) and through the
    record for an exploring policy."""
    if result.drawn is not None or result.teams is not None or result.request_id is None:
        return served_slate(result, served_at).to_json()
    items = [
        {"position": item.rank, "item_id": item.item_id, "score": item.score,
         "propensity": 1.0, "marginal_propensity": 1.0, "team": None}
        for item in result.items
    ]  # fmt: skip
    return orjson.dumps(
        {
            "request_id": result.request_id,
            "served_at": datetime.fromtimestamp(served_at, UTC),
            "user_id": result.user_id,
            "k": result.k,
            "exclude_seen": result.exclude_seen,
            "genre": result.genre,
            "model_version": result.model_version,
            "experiment": result.experiment,
            "design": result.design,
            "arm": result.arm,
            "policy": result.policy.label,
            "fallback": result.fallback,
            "slate_propensity": 1.0,
            "items": items,
            "pool": None,
        }
    )


class ImpressionLog:
    """Appends every served slate to the impression log, from a writer thread.

    Args:
        directory: where the day files go (created on first write).
        count: called with ``(outcome, n)`` for written and dropped slates (metrics).
        queue_size: slates that may wait for the writer; beyond, new ones are dropped.
        enabled: when False, :meth:`log` does nothing (``REELRANK_LOG_IMPRESSIONS``).
    """

    def __init__(
        self,
        directory: Path,
        count: Counter | None = None,
        queue_size: int = 10_000,
        enabled: bool = True,
    ) -> None:
        self.directory = Path(directory)
        self.enabled = enabled
        self._count = count or (lambda outcome, n: None)
        self._queue: queue.Queue[tuple[Recommendation, float] | None] = queue.Queue(queue_size)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    # ------------------------------------------------------------------ request path
    def log(self, result: Recommendation) -> None:
        """Queue one answered slate for the log (never blocks; drops and counts when full)."""
        if not self.enabled:
            return
        if self._thread is None:
            self._start()
        try:
            self._queue.put_nowait((result, time.time()))
        except queue.Full:
            self._count(QUEUE_FULL, 1)

    # ------------------------------------------------------------------ control
    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="impression-log", daemon=True
                )
                self._thread.start()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued slate is written or dropped; False on timeout."""
        done = self._queue.all_tasks_done
        with done:
            return done.wait_for(lambda: self._queue.unfinished_tasks == 0, timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the writer thread."""
        thread = self._thread
        if thread is None:
            return
        self.flush(timeout)
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            logger.warning("impression log writer did not drain; stopping without it")
            return
        thread.join(timeout)
        self._thread = None

    # ------------------------------------------------------------------ writer thread
    def _run(self) -> None:
        """Wake on the first slate of a batch, let the batch gather for
        :data:`FLUSH_INTERVAL_S`, then take everything queued at once: one wake-up per
        batch, not per slate (a wake-up per slate costs the request path the GIL, measured
        at 40 % of the service's throughput by ``benchmarks/serving.py``)."""
        while True:
            first = self._queue.get()
            batch: list[tuple[Recommendation, float]] = []
            stop = first is None
            if first is None:
                self._queue.task_done()
            else:
                batch.append(first)
                if self._queue.qsize() < BATCH_MAX:  # else a full batch is already waiting
                    time.sleep(FLUSH_INTERVAL_S)
            while not stop and len(batch) < BATCH_MAX:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.task_done()
                    stop = True
                    break
                batch.append(item)
            if batch:
                self._write(batch)
            if stop:
                return

    def _write(self, batch: list[tuple[Recommendation, float]]) -> None:
        lines: list[bytes] = []
        for result, served_at in batch:
            try:
                lines.append(slate_json(result, served_at))
            except Exception:  # a bug in one record must not lose the others
                logger.exception("impression record of request %s not encoded", result.request_id)
                self._count(ENCODE_ERROR, 1)
        if lines:
            try:
                append_lines(
                    self.directory,
                    IMPRESSIONS_PREFIX,
                    lines,
                    datetime.fromtimestamp(batch[0][1], UTC),
                )
                self._count(WRITTEN, len(lines))
            except OSError as error:
                logger.error(
                    "impression log write failed, %d slates dropped: %s", len(lines), error
                )
                self._count(WRITE_ERROR, len(lines))
        for _ in batch:
            self._queue.task_done()

"""Answers from the top-k table ``reelrank batch-recommend`` wrote (``REELRANK_SERVE_PRECOMPUTED``).

A stored list is served only when it was computed by the served model version and holds
at least the ``k`` asked for; the service asks only for the plain request (no genre
filter, seen titles excluded, the greedy policy), the one the batch job computed. Any
miss (no entry, another version, a shorter list, a store error) returns ``None`` and the
service takes the online path, so a stale or missing table never changes an answer.
"""

from __future__ import annotations

import logging
import threading
from typing import Final

import numpy as np

from reelrank.batch.topk import TopKStore, open_topk
from reelrank.config import Settings
from reelrank.models.catalogue import Catalogue

logger = logging.getLogger(__name__)

_MISSING: Final = -1


class PrecomputedLists:
    """Reads stored lists and turns a usable one into catalogue columns and scores."""

    def __init__(self, store: TopKStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._columns: tuple[int, dict[int, int]] | None = None  # (id(catalogue), id -> col)

    @classmethod
    def from_settings(cls, settings: Settings) -> PrecomputedLists:
        return cls(open_topk(settings))

    def _column_of(self, catalogue: Catalogue) -> dict[int, int]:
        cached = self._columns
        if cached is None or cached[0] != id(catalogue):
            with self._lock:
                index = {int(item): col for col, item in enumerate(catalogue.item_ids.tolist())}
                self._columns = cached = (id(catalogue), index)
        return cached[1]

    def lookup(
        self, user_id: int, version: str, k: int, catalogue: Catalogue
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """(catalogue columns, scores) of the user's first ``k``, or None (online path)."""
        try:
            entry = self.store.get(user_id)
        except Exception as error:  # a store failure must never fail the request
            logger.warning("precomputed lists unavailable (%s); answering online", error)
            return None
        if entry is None or entry.version != str(version) or entry.k < k:
            return None
        index = self._column_of(catalogue)
        columns = np.fromiter(
            (index.get(int(i), _MISSING) for i in entry.items[:k]), dtype=np.int64, count=k
        )
        if (columns == _MISSING).any():  # an item the served catalogue lacks: not ours
            return None
        return columns, entry.scores[:k]

    def close(self) -> None:
        self.store.close()

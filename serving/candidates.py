"""The candidate cache: each user's retrieved candidates, prepared for the scorer.

Retrieval does not depend on the request beyond ``(user, n, exclude_seen)``, so a loaded
model precomputes the default request's candidates for unknown users and for the most
active known users (``Settings.precomputed_users``) in batches at load, pinned for the
model's life; other users and variants are prepared on first use and kept in an LRU.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import numpy as np

from reelrank.models.retrieval import RetrievedBlock, retrieve_block
from serving.scoring.protocol import Candidates

if TYPE_CHECKING:
    from reelrank.models.recommender import Recommender

CacheKey = tuple[int, int, bool]
"""``(user id, candidates per source, exclude_seen)``."""
COLD_USER_KEY: Final = -1
"""Cache key of every unknown user (their retrieval does not depend on the id)."""
CACHE_SIZE: Final = 4096
PRECOMPUTE_CHUNK: Final = 1024


class CandidateCache:
    """A thread-safe LRU of prepared candidates, plus pinned precomputed entries.

    Args:
        size: entries kept beyond the pinned ones (other users, ``n`` or ``exclude_seen``).
    """

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._pinned: dict[CacheKey, Candidates] = {}
        self._data: OrderedDict[CacheKey, Candidates] = OrderedDict()
        self._lock = threading.Lock()

    def pin(self, entries: dict[CacheKey, Candidates]) -> None:
        """Add entries that are never evicted (done while the state is built)."""
        self._pinned.update(entries)

    def get(self, key: CacheKey) -> Candidates | None:
        pinned = self._pinned.get(key)
        if pinned is not None:
            return pinned
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: CacheKey, value: Candidates) -> None:
        with self._lock:
            self._data[key] = value
            if len(self._data) > self.size:
                self._data.popitem(last=False)

    def get_or_prepare(self, key: CacheKey, prepare: Callable[[], Candidates]) -> Candidates:
        """The cached entry, or ``prepare()``'s, cached."""
        candidates = self.get(key)
        if candidates is None:
            candidates = prepare()
            self.put(key, candidates)
        return candidates


def cache_key(user_id: int, known: bool, n: int, exclude_seen: bool) -> CacheKey:
    """Unknown users share one entry (their candidates are the non-personal ones)."""
    return (user_id, n, exclude_seen) if known else (COLD_USER_KEY, n, True)


def retrieve_one(
    recommender: Recommender, user_id: int, n: int, exclude_seen: bool
) -> RetrievedBlock:
    """One user's candidate union, as the model's sources retrieve it."""
    ids = np.array([user_id], dtype=np.int64)
    return retrieve_block(recommender.sources_, recommender.interactions_, ids, n, exclude_seen)


def precompute_retrieval(
    recommender: Recommender, max_users: int | None = None, chunk: int = PRECOMPUTE_CHUNK
) -> dict[CacheKey, RetrievedBlock]:
    """The default request's candidates (``n_candidates``, unseen) for known users and for
    unknown users, computed in batches at load: the in-memory candidate index.

    Args:
        recommender: the fitted model.
        max_users: at most this many known users, those with the longest histories (the
            most active, most likely to come back); None: every known user.
        chunk: users per retrieval batch.
    """
    matrix = recommender.interactions_
    n = recommender.n_candidates
    index: dict[CacheKey, RetrievedBlock] = {}
    user_ids = matrix.user_ids
    # An id no known user has (taken before the cap: a capped-out user is still known).
    unknown = np.array([int(user_ids.max(initial=0)) + 1], dtype=np.int64)
    if max_users is not None and max_users < len(user_ids):
        history = np.diff(matrix.seen.indptr)
        most_active = np.argsort(-history, kind="stable")[:max_users]
        user_ids = user_ids[np.sort(most_active)]
    for start in range(0, len(user_ids), chunk):
        ids = user_ids[start : start + chunk]
        block = retrieve_block(recommender.sources_, matrix, ids, n, True)
        bounds = np.searchsorted(block.rows, np.arange(len(ids) + 1))
        for offset, user in enumerate(ids.tolist()):
            lo, hi = bounds[offset], bounds[offset + 1]
            index[(user, n, True)] = RetrievedBlock(
                rows=np.zeros(hi - lo, dtype=block.rows.dtype),
                item_columns=block.item_columns[lo:hi],
                features=block.features[lo:hi],
                feature_names=block.feature_names,
            )
    index[(COLD_USER_KEY, n, True)] = retrieve_block(recommender.sources_, matrix, unknown, n, True)
    return index

"""Precompute the top-k of every active user with the champion, and store it.

:func:`batch_recommend` loads the registry's champion, picks the active users from the
lake (an event in the last ``active_days`` days of dataset time; every user with an event
when ``None``), computes their lists and writes them with the champion's version
(:mod:`reelrank.batch.topk`). The lists are ``Recommender.recommend(exclude_seen=True)``
with the model's own feature snapshot, which is what the online store holds after
materialization: the list the service's online path returns for that user.

Locally the users go through ``recommend`` in chunks in this process; under the Ray
engine they are a Ray Data dataset mapped by model actors on the cluster
(:mod:`reelrank.engines.ray_batch`), the same chunks, the same function.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from reelrank.batch.topk import chunks, lists_from_recommendations, write_lists
from reelrank.config import Settings
from reelrank.data.ingest import TABLE_FILES
from reelrank.exceptions import DataSourceError
from reelrank.models.reranking import RerankConfig
from reelrank.schema import EVENTS, TIMESTAMP, USER_ID

logger = logging.getLogger(__name__)

DEFAULT_CHUNK: Final = 1_000
Progress = Callable[[str], None]


@dataclass(frozen=True)
class BatchResult:
    """What one batch run did, and how fast."""

    users: int
    k: int
    version: str
    engine: str
    compute_seconds: float
    write_seconds: float

    @property
    def users_per_second(self) -> float:
        """Users whose lists were computed per second of compute (writing excluded)."""
        return self.users / self.compute_seconds if self.compute_seconds > 0 else float("nan")


def active_users(settings: Settings, active_days: int | None = None) -> np.ndarray:
    """Sorted ids of the users with an event in the last ``active_days`` days of the lake
    (dataset time: before its newest event); every user with an event when ``None``."""
    path = settings.lake_path / TABLE_FILES[EVENTS]
    if not path.exists():
        raise DataSourceError(f"no events at {path}; run `reelrank data` (or `reelrank run`).")
    events = pq.read_table(path, columns=[USER_ID, TIMESTAMP]).to_pandas()
    if active_days is not None:
        since = events[TIMESTAMP].max() - pd.Timedelta(days=active_days)
        events = events[events[TIMESTAMP] > since]
    return np.sort(events[USER_ID].unique().astype("int64"))


def recommend_lists(
    model: Any,
    users: np.ndarray,
    k: int,
    rerank: RerankConfig | None = None,
    now: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """One chunk: ``user_id, items, scores`` of ``model``'s row of ``k`` for ``users``
    (through the re-ranking stage ``rerank`` as of ``now``, when given: the stored rows must
    be the ones the service would re-rank at serving time, freshness boost included)."""
    found = model.recommend(users, k=k, exclude_seen=True, rerank=rerank, now=now)
    return lists_from_recommendations(found)


def recommend_in_chunks(
    model: Any,
    users: np.ndarray,
    k: int,
    chunk_size: int,
    rerank: RerankConfig | None = None,
    now: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Every user's list, ``chunk_size`` users at a time, in this process."""
    parts = [recommend_lists(model, part, k, rerank, now) for part in chunks(users, chunk_size)]
    return (
        pd.concat(parts, ignore_index=True)
        if parts
        else recommend_lists(model, users, k, rerank, now)
    )


def batch_recommend(
    settings: Settings,
    k: int = 10,
    active_days: int | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    progress: Progress | None = None,
) -> BatchResult:
    """Precompute and store the champion's top ``k`` of every active user."""
    from reelrank.engines import uses_ray
    from reelrank.registry.aliases import Alias
    from reelrank.registry.models import load_recommender

    say = progress or logger.info
    model, version = load_recommender(settings, Alias.CHAMPION)
    number = str(getattr(version, "version", version))
    users = active_users(settings, active_days)
    say(f"{len(users):,} active users, champion version {number}, k={k}")
    rerank = settings.rerank.config()  # the rows the service serves by default
    now = pd.Timestamp.now(tz="UTC")  # re-ranked as of this run, as the service would
    started = time.perf_counter()
    if uses_ray(settings):
        from reelrank.engines.ray_batch import recommend_on_ray

        lists = recommend_on_ray(settings, model, users, k, chunk_size, rerank, now)
        engine = "ray"
    else:
        lists = recommend_in_chunks(model, users, k, chunk_size, rerank, now)
        engine = "local"
    compute = time.perf_counter() - started
    rows, write_seconds = write_lists(settings, lists, number)
    say(f"{rows:,} lists written to the {settings.online_store} online store")
    return BatchResult(rows, k, number, engine, compute, write_seconds)

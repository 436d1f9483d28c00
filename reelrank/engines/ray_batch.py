"""Batch inference on Ray Data: the active users as a dataset, mapped by model actors.

The model goes into the object store once; one actor per CPU of the cluster loads it and
maps chunks of ``chunk_size`` users through :func:`reelrank.batch.inference.recommend_lists`
(the function the local engine runs); the lists come back to the driver, which writes them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from reelrank.batch.inference import recommend_lists
from reelrank.batch.topk import chunks
from reelrank.config import Settings
from reelrank.engines import ray_cluster
from reelrank.models.reranking import RerankConfig
from reelrank.schema import USER_ID


class _ModelActor:
    """Holds the model (fetched once per actor); maps a batch of users to their lists."""

    def __init__(
        self, model: Any, k: int, rerank: RerankConfig | None, now: pd.Timestamp | None
    ) -> None:
        self.model = ray_cluster.get(model)
        self.k = k
        self.rerank = rerank
        self.now = now

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        users = batch[USER_ID].to_numpy("int64")
        return recommend_lists(self.model, users, self.k, self.rerank, self.now)


def recommend_on_ray(
    settings: Settings,
    model: Any,
    users: np.ndarray,
    k: int,
    chunk_size: int,
    rerank: RerankConfig | None = None,
    now: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Every user's list (``user_id, items, scores``, by user id), computed on the cluster
    (re-ranked as of ``now``, one clock for every actor)."""
    import ray.data

    with ray_cluster.connected(settings):
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        actors = ray_cluster.cluster_cpus()
        per_block = max(1, math.ceil(len(users) / max(actors, 1)))
        blocks = [pd.DataFrame({USER_ID: part}) for part in chunks(users, per_block)]
        # Blocks made here, not by a repartition: its tasks would wait for the CPUs the
        # model actors hold.
        mapped = ray.data.from_pandas(blocks).map_batches(
            _ModelActor,
            fn_constructor_args=(ray_cluster.put(model), k, rerank, now),
            batch_size=chunk_size,
            batch_format="pandas",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=1,
        )
        lists = mapped.to_pandas()
    return lists.sort_values(USER_ID, kind="stable").reset_index(drop=True)

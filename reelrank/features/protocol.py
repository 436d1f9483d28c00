"""The seam between features and models: where a model gets its features from.

Training inside ``Recommender.fit`` uses features computed by the library in memory
(:mod:`reelrank.features.in_memory`); the pipeline uses Feast's historical retrieval
(offline store, point-in-time) and the API Feast's online store
(:mod:`reelrank.features.feast.providers`). All satisfy :class:`FeatureProvider`, so the
ranker code is the same on every path (training/serving parity).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd


@runtime_checkable
class FeatureProvider(Protocol):
    """Returns entity features as they were known at ``as_of``.

    Both methods return a frame indexed by the entity id (``user_id`` / ``item_id``), one row
    per requested id in the order given, with the feature columns of the ``ranker_v1``
    feature service. Unknown ids get a row of NaN (never an error). Online providers
    ignore ``as_of`` (the online store holds the latest values).
    """

    def user_features(self, user_ids: Sequence[int], as_of: pd.Timestamp) -> pd.DataFrame: ...

    def item_features(self, item_ids: Sequence[int], as_of: pd.Timestamp) -> pd.DataFrame: ...


def to_utc(ts: pd.Timestamp | Any) -> pd.Timestamp:
    stamp = pd.Timestamp(ts)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def as_feature_frame(
    frame: pd.DataFrame, key: str, ids: Sequence[int], features: tuple[str, ...]
) -> pd.DataFrame:
    """``frame`` (one row per id, column ``key``) as float64 features indexed by ``ids``."""
    values = frame.drop_duplicates(key, keep="last").set_index(key)[list(features)]
    out = values.astype("float64").reindex(pd.Index(np.asarray(ids, dtype="int64"), name=key))
    return out

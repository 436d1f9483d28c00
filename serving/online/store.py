"""Opening the online store for a model: the catalogue's item rows and a user reader."""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from reelrank.config import Settings
from reelrank.exceptions import FeatureStoreError
from reelrank.features import columns as cols
from serving.online.protocol import UserFeatureReader

ITEM_LOAD_TIMEOUT_MS: Final = 60_000.0
"""Deadline of the one-off catalogue read at model load (off the request path)."""


def load_item_features(settings: Settings, item_ids: np.ndarray) -> pd.DataFrame:
    """Every catalogue item's stored features from the online store (Feast's SDK: it needs
    seconds for thousands of items, so this runs once per model load).

    Raises:
        FeatureStoreError: the store cannot be read or holds nothing for the catalogue.
    """
    from reelrank.features.feast.providers import FeastOnlineProvider
    from reelrank.features.feast.store import get_feature_store

    try:
        provider = FeastOnlineProvider(
            get_feature_store(settings),
            timeout_ms=max(settings.online_timeout_ms, ITEM_LOAD_TIMEOUT_MS),
        )
        frame = provider.item_features(list(map(int, item_ids)), pd.Timestamp.now(tz="UTC"))
    except FeatureStoreError:
        raise
    except Exception as error:  # Feast / SQLite / Redis errors of every kind
        raise FeatureStoreError(f"the Feast online store cannot be read: {error}") from error
    if frame.isna().all(axis=None):
        raise FeatureStoreError(
            "the Feast online store holds no item features for the model's catalogue; "
            "run `reelrank features` (materialize) first."
        )
    return frame


def open_user_reader(settings: Settings) -> UserFeatureReader:
    """The fastest reader of the configured store (direct SQLite or Redis, else the SDK)."""
    from reelrank.features.feast.repo_config import PROJECT, sqlite_path

    if settings.online_store == "sqlite":
        from serving.online.sqlite import SqliteUserFeatureReader

        return SqliteUserFeatureReader(
            sqlite_path(settings),
            f"{PROJECT}_{cols.USER_VIEW}",
            timeout_ms=settings.online_timeout_ms,
        )
    if settings.online_store == "redis":
        from serving.online.redis import RedisUserFeatureReader

        return RedisUserFeatureReader(
            settings.redis_url, PROJECT, cols.USER_VIEW, timeout_ms=settings.online_timeout_ms
        )
    from reelrank.features.feast.providers import FeastOnlineProvider
    from reelrank.features.feast.store import get_feature_store
    from serving.online.sdk import FeastUserFeatureReader

    provider = FeastOnlineProvider(
        get_feature_store(settings), timeout_ms=settings.online_timeout_ms
    )
    return FeastUserFeatureReader(provider)

"""User rows through Feast's SDK (``get_online_features``): works with every online store."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from reelrank.exceptions import FeatureStoreError

if TYPE_CHECKING:
    from reelrank.features.feast.providers import FeastOnlineProvider


class FeastUserFeatureReader:
    """User rows through Feast's ``get_online_features`` (works with every online store)."""

    def __init__(self, provider: FeastOnlineProvider) -> None:
        self.provider = provider

    def read(self, user_id: int) -> np.ndarray:
        try:
            frame = self.provider.user_features([user_id], pd.Timestamp.now(tz="UTC"))
        except FeatureStoreError:
            raise
        except Exception as error:  # Redis/SQLite driver errors of every kind
            raise FeatureStoreError(
                f"online feature read for user {user_id} failed: {error}"
            ) from error
        return frame.to_numpy(dtype=np.float64, na_value=np.nan)[0]

    def close(self) -> None:
        pool = getattr(self.provider, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

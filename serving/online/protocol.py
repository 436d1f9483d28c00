"""What the hot path needs from an online feature store: one user's stored row."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class UserFeatureReader(Protocol):
    """Reads one user's stored features (``USER_FEATURES`` order, NaN where absent)."""

    def read(self, user_id: int) -> np.ndarray: ...

    def close(self) -> None: ...

"""Direct reads of Feast's SQLite online table (one indexed ``SELECT`` per request)."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np

from reelrank.exceptions import FeatureStoreError
from reelrank.features import columns as cols
from serving.online.codec import decode_value, user_key_serializer

PROGRESS_OPCODES: Final = 2_000
"""SQLite virtual-machine steps between two deadline checks."""


class SqliteUserFeatureReader:
    """Direct reads of Feast's SQLite online store table for the user view.

    Args:
        path: the SQLite file (``repo_config.sqlite_path(settings)``).
        table: the view's table name (``<project>_<view>``).
        features: stored feature names in the order the model expects.
        timeout_ms: deadline of one read; exceeded -> ``FeatureStoreError``.
        key_serialization_version: Feast's entity key serialisation version.
    """

    def __init__(
        self,
        path: Path,
        table: str,
        features: Sequence[str] = cols.USER_FEATURES,
        timeout_ms: float = 50.0,
        key_serialization_version: int = 3,
    ) -> None:
        self.path = Path(path)
        self.table = table
        self.features = tuple(features)
        self.timeout_s = timeout_ms / 1000.0
        self._positions = {name: i for i, name in enumerate(self.features)}
        self._key = user_key_serializer(key_serialization_version)
        self._local = threading.local()
        self._query = f'SELECT feature_name, value FROM "{table}" WHERE entity_key = ?'

    def _connection(self) -> tuple[sqlite3.Connection, list[float]]:
        try:
            stat = os.stat(self.path)
        except OSError as error:
            self._drop()
            raise FeatureStoreError(
                f"the SQLite online store {self.path} is missing ({error.strerror}); "
                "run `reelrank features` to materialize it."
            ) from error
        identity = (stat.st_dev, stat.st_ino)
        local = self._local
        if getattr(local, "identity", None) != identity:
            self._drop()
            try:
                conn = sqlite3.connect(
                    f"file:{self.path}?mode=ro",
                    uri=True,
                    timeout=self.timeout_s,
                    check_same_thread=False,
                )
            except sqlite3.Error as error:
                raise FeatureStoreError(
                    f"cannot open the SQLite online store {self.path}: {error}"
                ) from error
            deadline = [0.0]
            conn.set_progress_handler(
                lambda: 1 if time.perf_counter() > deadline[0] else 0, PROGRESS_OPCODES
            )
            local.conn, local.deadline, local.identity = conn, deadline, identity
        return local.conn, local.deadline

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None
        self._local.identity = None

    def read(self, user_id: int) -> np.ndarray:
        conn, deadline = self._connection()
        blob = self._key(user_id)
        deadline[0] = time.perf_counter() + self.timeout_s
        try:
            rows = conn.execute(self._query, (blob,)).fetchall()
        except sqlite3.Error as error:
            self._drop()
            raise FeatureStoreError(
                f"online feature read for user {user_id} failed or exceeded "
                f"{self.timeout_s * 1000:.0f} ms: {error}"
            ) from error
        out = np.full(len(self.features), np.nan, dtype=np.float64)
        positions = self._positions
        for name, payload in rows:
            position = positions.get(name)
            if position is not None:
                out[position] = decode_value(payload)
        return out

    def close(self) -> None:
        self._drop()

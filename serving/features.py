"""Online features for the request path: user rows per request, item rows cached.

Item features change only at materialization, so they are read once per model load (from
the Feast online store, the model's own snapshot when the store cannot be read) and held as
a float32 matrix aligned with the model's catalogue columns. User features are read per
request with a deadline (``Settings.online_timeout_ms``); a reader raises
:class:`~reelrank.exceptions.FeatureStoreError` on a missing, unreachable or slow store,
which the service turns into a ``degraded`` answer.

Two user readers:

* :class:`SqliteUserFeatureReader`: reads Feast's SQLite online table directly (one indexed
  ``SELECT``, Feast's own key serialisation and value protos), with the deadline enforced
  inside SQLite by a progress handler. A few hundred microseconds instead of Feast's
  generic ``get_online_features`` path.
* :class:`RedisUserFeatureReader`: reads Feast's Redis hash for the user directly (one
  ``HMGET`` with Feast's own key layout: entity key + project, murmur3 field names), with a
  socket timeout as the deadline: the production store without the SDK's per-call overhead.
* :class:`FeastUserFeatureReader`: Feast's ``get_online_features`` through
  :class:`~reelrank.features.FeastOnlineProvider` (any online store, e.g. Redis), with the
  provider's thread-pool deadline.
"""

from __future__ import annotations

import functools
import logging
import os
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

import numpy as np
import pandas as pd

from reelrank.data.schema import USER_ID
from reelrank.exceptions import FeatureStoreError
from reelrank.features import columns as cols

if TYPE_CHECKING:
    from reelrank.features.providers import FeastOnlineProvider

logger = logging.getLogger(__name__)

PROGRESS_OPCODES = 2_000
"""SQLite virtual-machine steps between two deadline checks."""
KEY_CACHE_SIZE: Final = 65_536
"""Users whose serialised Feast entity keys a reader keeps (about 200 bytes each)."""


class UserFeatureReader(Protocol):
    """Reads one user's stored features (``USER_FEATURES`` order, NaN where absent)."""

    def read(self, user_id: int) -> np.ndarray: ...

    def close(self) -> None: ...


def _value(proto: Any) -> float:
    kind = proto.WhichOneof("val")
    if kind is None or kind == "null_val":
        return float("nan")
    value = getattr(proto, kind)
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


_FLOAT32: Final = struct.Struct("<f").unpack_from
_FLOAT64: Final = struct.Struct("<d").unpack_from
_FIXED32_TAGS: Final = {0x35}  # float_val (field 6, fixed32)
_FIXED64_TAGS: Final = {0x29}  # double_val (field 5, fixed64)
_VARINT_TAGS: Final = {0x18, 0x20, 0x38, 0x40}  # int32, int64, bool, unix_timestamp


def decode_scalar(payload: bytes) -> float | None:
    """A Feast ``Value`` proto holding one numeric scalar, decoded without protobuf.

    Feast writes each stored feature as a serialised ``Value`` message; for the scalar
    types the bytes are one tag and the number. Decoding those directly is several times
    faster than building a protobuf message per feature. Returns NaN for an empty message
    (no value) and ``None`` for anything else (lists, strings, unusual encodings): the
    caller then parses the message with protobuf.
    """
    size = len(payload)
    if size == 0:
        return float("nan")
    tag = payload[0]
    if tag in _FIXED32_TAGS and size == 5:
        return float(_FLOAT32(payload, 1)[0])
    if tag in _FIXED64_TAGS and size == 9:
        return float(_FLOAT64(payload, 1)[0])
    if tag in _VARINT_TAGS and size <= 11:
        value = shift = 0
        for position in range(1, size):
            byte = payload[position]
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                if position != size - 1:
                    return None
                if value >= 1 << 63:  # negative numbers: 64-bit two's complement
                    value -= 1 << 64
                return float(value)
    return None


def _decode(payload: bytes | None) -> float:
    """One stored feature value: the scalar fast path, else protobuf; None -> NaN."""
    if payload is None:
        return float("nan")
    value = decode_scalar(payload)
    if value is None:
        from feast.protos.feast.types.Value_pb2 import Value

        parsed = Value()
        parsed.ParseFromString(payload)
        value = _value(parsed)
    return value


def _user_key_serializer(version: int) -> Callable[[int], bytes]:
    """Feast's serialised entity key of a user id (the key both online stores use)."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    # Building and serialising the protobuf key is a tenth of a read; a user's key never
    # changes, so recent ones are kept.
    @functools.lru_cache(maxsize=KEY_CACHE_SIZE)
    def serialize(user_id: int) -> bytes:
        key = EntityKey(join_keys=[USER_ID], entity_values=[Value(int64_val=user_id)])
        return bytes(serialize_entity_key(key, entity_key_serialization_version=version))

    return serialize


class SqliteUserFeatureReader:
    """Direct reads of Feast's SQLite online store table for the user view.

    Args:
        path: the SQLite file (``feast_config.sqlite_path(settings)``).
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
        self._key = _user_key_serializer(key_serialization_version)
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
                out[position] = _decode(payload)
        return out

    def close(self) -> None:
        self._drop()


class RedisUserFeatureReader:
    """Direct reads of Feast's Redis online store for the user view.

    Feast keeps one Redis hash per entity: key = serialised entity key + project name,
    fields = murmur3 of ``"<view>:<feature>"`` holding serialised ``Value`` protos
    (``feast.infra.online_stores.redis``). One ``HMGET`` reads the user's row.

    Args:
        url: ``redis://host:port/db`` (``Settings.redis_url``).
        project: the Feast project.
        view: the user feature view's name.
        features: stored feature names in the order the model expects.
        timeout_ms: deadline of one read (connect and socket timeout); exceeded ->
            ``FeatureStoreError``.
        key_serialization_version: Feast's entity key serialisation version.
    """

    def __init__(
        self,
        url: str,
        project: str,
        view: str,
        features: Sequence[str] = cols.USER_FEATURES,
        timeout_ms: float = 50.0,
        key_serialization_version: int = 3,
    ) -> None:
        import redis
        from feast.infra.online_stores.helpers import _mmh3

        self.features = tuple(features)
        self.timeout_s = timeout_ms / 1000.0
        self._project = project.encode("utf-8")
        self._fields = [_mmh3(f"{view}:{name}") for name in self.features]
        self._key = _user_key_serializer(key_serialization_version)
        self._redis_errors = (redis.RedisError, OSError)
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=self.timeout_s,
            socket_connect_timeout=self.timeout_s,
            retry_on_timeout=False,
        )

    def read(self, user_id: int) -> np.ndarray:
        name = self._key(user_id) + self._project
        try:
            payloads = cast("list[bytes | None]", self._client.hmget(name, self._fields))  # type: ignore[arg-type]
        except self._redis_errors as error:
            raise FeatureStoreError(
                f"online feature read for user {user_id} from Redis failed or exceeded "
                f"{self.timeout_s * 1000:.0f} ms: {error}"
            ) from error
        return np.array([_decode(p) for p in payloads], dtype=np.float64)

    def close(self) -> None:
        self._client.close()


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

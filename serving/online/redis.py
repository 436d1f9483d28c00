"""Direct reads of Feast's Redis online store (one ``HMGET`` per request)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np

from reelrank.exceptions import FeatureStoreError
from reelrank.features import columns as cols
from serving.online.codec import decode_value, user_key_serializer


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
        self._key = user_key_serializer(key_serialization_version)
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
        return np.array([decode_value(p) for p in payloads], dtype=np.float64)

    def close(self) -> None:
        self._client.close()

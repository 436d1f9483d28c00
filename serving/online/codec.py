"""Feast's online-store encodings, read without its SDK: entity keys and scalar values.

Feast writes each stored feature as a serialised ``Value`` protobuf and keys rows by a
serialised ``EntityKey``; both online stores (SQLite and Redis) use the same encodings.
Decoding the scalar values by hand is several times faster than building a protobuf
message per feature (``tests/serving/test_parts.py`` checks it against protobuf).
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable
from typing import Any, Final

from reelrank.schema import USER_ID

KEY_CACHE_SIZE: Final = 65_536
"""Users whose serialised Feast entity keys a reader keeps (about 200 bytes each)."""


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


def decode_value(payload: bytes | None) -> float:
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


def user_key_serializer(version: int) -> Callable[[int], bytes]:
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

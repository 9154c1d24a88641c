"""Records of Kafka's internal topics: a version prefix, then a declared struct.

Theory of operation
-------------------
Outside request and response frames Kafka writes a few structs of its own into record
keys and values: the group coordinator's facts in ``__consumer_offsets``, the transaction
coordinator's in ``__transaction_state``, the commit/abort markers of control batches,
and the consumer protocol's subscription and assignment that clients tuck into
JoinGroup/SyncGroup as opaque bytes. Each is one of Kafka's "data" schemas, serialised as
a big-endian int16 *version* followed by the struct's fields at that version (compact
lengths and tagged fields from the schema's first flexible version on).

``VersionedSchema`` is that shape: a struct class declared with the same DSL as the
APIs (``protocol.schema``), its valid versions and its first flexible version. The codec
(``protocol.codec``) derives the body's encoder and decoder, so these records have no
reader or writer of their own.

A coordinator record's *key* uses the prefix differently: it names the record type
(Kafka's ``apiKey`` of a ``coordinator-key`` schema: 1 for an offset commit, 2 for group
metadata, ...), and the key struct behind it is always read at version 0.
``CoordinatorRecordType`` pairs a record type with its key struct and value schema;
``CoordinatorRecords`` is one internal topic's table of them, which decodes a key by its
type and then the value that belongs to it.

Decoding untrusted bytes raises ``ProtocolError`` (truncated, trailing bytes, an unknown
version, a null where none is allowed), as the API decoders do.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

from ..codec import decode_body, encode_body
from ..errors import ProtocolError
from ..schema import Message, Versions

__all__ = ["CoordinatorRecordType", "CoordinatorRecords", "VersionedSchema"]

_VERSION = struct.Struct(">h")


class VersionedSchema:
    """A struct written as an int16 version and the struct's fields at that version."""

    __slots__ = ("cls", "versions", "flexible")

    def __init__(self, cls: type[Message], versions: str, flexible: str = "none") -> None:
        self.cls = cls
        self.versions = Versions.parse(versions)
        self.flexible = Versions.parse(flexible)

    def __repr__(self) -> str:
        return f"<VersionedSchema {self.cls.__name__} v{self.versions!r}>"

    def is_flexible(self, version: int) -> bool:
        return version in self.flexible

    def encode(self, obj: Message, version: int) -> bytes:
        if version not in self.versions:
            raise ValueError(f"{self.cls.__name__} has no version {version}")
        b = bytearray(_VERSION.pack(version))
        encode_body(self.cls, version, self.is_flexible(version), obj, b, [])
        return bytes(b)

    def decode(self, raw: bytes | memoryview, *, exact: bool = True) -> tuple[int, Any]:
        """(version, struct). ``exact=False`` ignores bytes after the struct (the
        consumer protocol allows newer versions to append fields)."""
        buf = memoryview(raw)
        version = read_version(buf, self.cls.__name__)
        if version not in self.versions:
            raise ProtocolError(f"unknown {self.cls.__name__} version {version}")
        return version, decode_body(self.cls, version, self.is_flexible(version), buf, 2, exact=exact)


def read_version(buf: memoryview, what: str) -> int:
    if len(buf) < 2:
        raise ProtocolError(f"{what}: {len(buf)} bytes cannot hold a version")
    return _VERSION.unpack_from(buf, 0)[0]


class CoordinatorRecordType:
    """One kind of fact in an internal topic: its key (type id + key struct at version 0)
    and the versioned value that belongs to that key."""

    __slots__ = ("record_type", "key", "value")

    def __init__(self, record_type: int, key: type[Message], value: VersionedSchema) -> None:
        self.record_type = record_type
        self.key = key
        self.value = value

    def __repr__(self) -> str:
        return f"<CoordinatorRecordType {self.record_type} {self.key.__name__}>"

    def encode_key(self, key: Message) -> bytes:
        b = bytearray(_VERSION.pack(self.record_type))
        encode_body(self.key, 0, False, key, b, [])
        return bytes(b)

    def encode_value(self, value: Message | None, version: int) -> bytes | None:
        """The value bytes; None stays None (a tombstone deletes the key's fact)."""
        return None if value is None else self.value.encode(value, version)

    def decode_value(self, raw: bytes | memoryview | None) -> tuple[int, Any] | None:
        """(version, struct), or None for a tombstone."""
        return None if raw is None else self.value.decode(raw)


class CoordinatorRecords:
    """The record types of one internal topic, by the type id that starts each key."""

    __slots__ = ("name", "types")

    def __init__(self, name: str, types: Iterable[CoordinatorRecordType]) -> None:
        self.name = name
        self.types: dict[int, CoordinatorRecordType] = {}
        for t in types:
            if t.record_type in self.types:
                raise ValueError(f"{name}: record type {t.record_type} declared twice")
            self.types[t.record_type] = t

    def record_type(self, raw_key: bytes | memoryview) -> CoordinatorRecordType | None:
        """The key's record type, or None for one not declared here (a newer Kafka's).
        A negative type id is not a key at all."""
        type_id = read_version(memoryview(raw_key), f"{self.name} key")
        if type_id < 0:
            raise ProtocolError(f"{self.name}: negative record type {type_id}")
        return self.types.get(type_id)

    def decode_key(self, raw_key: bytes | memoryview) -> tuple[CoordinatorRecordType, Any] | None:
        """(record type, key struct), or None for an undeclared record type."""
        rt = self.record_type(raw_key)
        if rt is None:
            return None
        return rt, decode_body(rt.key, 0, False, memoryview(raw_key), 2)

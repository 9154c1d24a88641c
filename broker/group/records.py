"""The records of ``__consumer_offsets``, in Kafka's own byte formats.

Theory of operation
-------------------
The group coordinator persists two kinds of facts in the compacted internal topic
``__consumer_offsets``, each as one record whose *key* says what the fact is about (so
compaction keeps the latest fact per key) and whose *value* is the fact (a null value, a
tombstone, deletes it):

* a committed offset: key ``OffsetCommitKey`` (group, topic, partition), value
  ``OffsetCommitValue`` (offset, leader epoch, metadata, commit timestamp and, only in
  value version 1, an explicit expire timestamp);
* a group's membership after a rebalance: key ``GroupMetadataKey`` (group), value
  ``GroupMetadataValue`` (protocol type, generation, chosen protocol, leader, when the
  group entered its current state, and every member with its subscription and assignment).

Both key and value start with a big-endian int16 *version*; the key version tells the two
kinds apart (0 and 1 are offset commits, 2 is group metadata; 3 and above belong to the
KIP-848 consumer-group records, which this coordinator neither writes nor reads). The
bodies use the classic non-flexible encoding (int16-length strings, int32-length bytes and
arrays) up to value version 3, and the flexible one (unsigned-varint lengths, tagged
fields) from version 4. We write what a Kafka 3.x broker writes (OffsetCommitKey v1,
OffsetCommitValue v3, or v1 when an expire timestamp was requested, GroupMetadataKey v2,
GroupMetadataValue v3), so a data directory is readable by Kafka tooling, and we read every
version Kafka ever wrote. Decoding untrusted bytes raises ``RecordFormatError``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

__all__ = [
    "GroupMetadataKey",
    "GroupMetadataValue",
    "MemberMetadata",
    "OffsetCommitKey",
    "OffsetCommitValue",
    "RecordFormatError",
    "decode_key",
    "decode_record",
    "decode_value",
    "encode_group_metadata",
    "encode_group_tombstone",
    "encode_offset_commit",
    "encode_offset_tombstone",
]

OFFSET_COMMIT_KEY_VERSION = 1
GROUP_METADATA_KEY_VERSION = 2
GROUP_METADATA_VALUE_VERSION = 3
OFFSET_COMMIT_VALUE_VERSION = 3
OFFSET_COMMIT_VALUE_VERSION_WITH_EXPIRY = 1


class RecordFormatError(ValueError):
    """A ``__consumer_offsets`` key or value that is not one of Kafka's formats."""


@dataclass(frozen=True, slots=True)
class OffsetCommitKey:
    group: str
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class GroupMetadataKey:
    group: str


@dataclass(frozen=True, slots=True)
class OffsetCommitValue:
    offset: int
    metadata: str
    commit_timestamp_ms: int
    leader_epoch: int = -1
    expire_timestamp_ms: int = -1  # -1: none (only value version 1 can carry one)


@dataclass(frozen=True, slots=True)
class MemberMetadata:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    subscription: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True)
class GroupMetadataValue:
    protocol_type: str
    generation: int
    protocol: str | None
    leader: str | None
    current_state_timestamp_ms: int = -1
    members: tuple[MemberMetadata, ...] = field(default_factory=tuple)


# ---------------------------------------------------------------------------------- writer
class _Writer:
    """Big-endian writer for the non-flexible encoding (all we ever write)."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def int16(self, v: int) -> None:
        self.parts.append(struct.pack(">h", v))

    def int32(self, v: int) -> None:
        self.parts.append(struct.pack(">i", v))

    def int64(self, v: int) -> None:
        self.parts.append(struct.pack(">q", v))

    def string(self, v: str | None) -> None:
        if v is None:
            self.int16(-1)
            return
        raw = v.encode("utf-8")
        if len(raw) > 0x7FFF:
            raise RecordFormatError(f"string of {len(raw)} bytes does not fit an int16 length")
        self.int16(len(raw))
        self.parts.append(raw)

    def bytes_(self, v: bytes) -> None:
        self.int32(len(v))
        self.parts.append(bytes(v))

    def getvalue(self) -> bytes:
        return b"".join(self.parts)


def encode_offset_commit(key: OffsetCommitKey, value: OffsetCommitValue) -> tuple[bytes, bytes]:
    w = _Writer()
    if value.expire_timestamp_ms >= 0:
        # Only value version 1 has room for an explicit expiry (OffsetCommit v2-v4's
        # retention_time_ms); it has no leader epoch.
        w.int16(OFFSET_COMMIT_VALUE_VERSION_WITH_EXPIRY)
        w.int64(value.offset)
        w.string(value.metadata)
        w.int64(value.commit_timestamp_ms)
        w.int64(value.expire_timestamp_ms)
    else:
        w.int16(OFFSET_COMMIT_VALUE_VERSION)
        w.int64(value.offset)
        w.int32(value.leader_epoch)
        w.string(value.metadata)
        w.int64(value.commit_timestamp_ms)
    return _offset_key_bytes(key), w.getvalue()


def encode_offset_tombstone(key: OffsetCommitKey) -> tuple[bytes, None]:
    return _offset_key_bytes(key), None


def encode_group_metadata(key: GroupMetadataKey, value: GroupMetadataValue) -> tuple[bytes, bytes]:
    w = _Writer()
    w.int16(GROUP_METADATA_VALUE_VERSION)
    w.string(value.protocol_type)
    w.int32(value.generation)
    w.string(value.protocol)
    w.string(value.leader)
    w.int64(value.current_state_timestamp_ms)
    w.int32(len(value.members))
    for m in value.members:
        w.string(m.member_id)
        w.string(m.group_instance_id)
        w.string(m.client_id)
        w.string(m.client_host)
        w.int32(m.rebalance_timeout_ms)
        w.int32(m.session_timeout_ms)
        w.bytes_(m.subscription)
        w.bytes_(m.assignment)
    return _group_key_bytes(key), w.getvalue()


def encode_group_tombstone(key: GroupMetadataKey) -> tuple[bytes, None]:
    return _group_key_bytes(key), None


def _offset_key_bytes(key: OffsetCommitKey) -> bytes:
    w = _Writer()
    w.int16(OFFSET_COMMIT_KEY_VERSION)
    w.string(key.group)
    w.string(key.topic)
    w.int32(key.partition)
    return w.getvalue()


def _group_key_bytes(key: GroupMetadataKey) -> bytes:
    w = _Writer()
    w.int16(GROUP_METADATA_KEY_VERSION)
    w.string(key.group)
    return w.getvalue()


# ---------------------------------------------------------------------------------- reader
class _Reader:
    """Bounds-checked big-endian reader; ``flexible`` switches to compact lengths."""

    __slots__ = ("buf", "pos", "flexible")

    def __init__(self, buf: bytes | memoryview, flexible: bool = False) -> None:
        self.buf = memoryview(buf)
        self.pos = 0
        self.flexible = flexible

    def _take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise RecordFormatError(f"truncated: need {n} bytes at {self.pos} of {len(self.buf)}")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def int16(self) -> int:
        return struct.unpack(">h", self._take(2))[0]

    def int32(self) -> int:
        return struct.unpack(">i", self._take(4))[0]

    def int64(self) -> int:
        return struct.unpack(">q", self._take(8))[0]

    def uvarint(self) -> int:
        value = shift = 0
        while True:
            b = self._take(1)[0]
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7
            if shift > 28:
                raise RecordFormatError("unsigned varint longer than 5 bytes")

    def _length(self, wide: bool) -> int:
        """A length, -1 meaning null (compact lengths are stored plus one)."""
        if self.flexible:
            return self.uvarint() - 1
        return self.int32() if wide else self.int16()

    def string(self, nullable: bool = False) -> str | None:
        n = self._length(wide=False)
        if n < 0:
            if n == -1 and nullable:
                return None
            raise RecordFormatError(f"bad string length {n}")
        try:
            return str(self._take(n), "utf-8")
        except UnicodeDecodeError as exc:
            raise RecordFormatError("string is not UTF-8") from exc

    def bytes_(self) -> bytes:
        n = self._length(wide=True)
        if n < 0:
            raise RecordFormatError(f"bad bytes length {n}")
        return bytes(self._take(n))

    def array_length(self) -> int:
        n = self._length(wide=True)
        if n < 0:
            raise RecordFormatError(f"bad array length {n}")
        return n

    def tagged_fields(self) -> None:
        """Skip tagged fields: none of them is one we need."""
        if self.flexible:
            for _ in range(self.uvarint()):
                self.uvarint()  # tag
                self._take(self.uvarint())

    def end(self) -> None:
        if self.pos != len(self.buf):
            raise RecordFormatError(f"{len(self.buf) - self.pos} trailing bytes")


def decode_key(raw: bytes | memoryview) -> OffsetCommitKey | GroupMetadataKey | None:
    """The key's fact, or None for a record kind this coordinator does not use."""
    r = _Reader(raw)
    version = r.int16()
    if version in (0, 1):
        key: OffsetCommitKey | GroupMetadataKey = OffsetCommitKey(r.string(), r.string(), r.int32())
    elif version == 2:
        key = GroupMetadataKey(r.string())
    elif version >= 3:
        return None  # KIP-848 / share-group records
    else:
        raise RecordFormatError(f"negative key version {version}")
    r.end()
    return key


def decode_value(
    key: OffsetCommitKey | GroupMetadataKey, raw: bytes | memoryview | None
) -> OffsetCommitValue | GroupMetadataValue | None:
    """Decode the value belonging to ``key``; None for a tombstone."""
    if raw is None:
        return None
    if isinstance(key, OffsetCommitKey):
        return _decode_offset_value(raw)
    return _decode_group_value(raw)


def decode_record(
    raw_key: bytes | memoryview | None, raw_value: bytes | memoryview | None
) -> tuple[OffsetCommitKey | GroupMetadataKey, OffsetCommitValue | GroupMetadataValue | None] | None:
    """(key, value or None for a tombstone), or None for a record kind we skip."""
    if raw_key is None:
        raise RecordFormatError("record without a key")
    key = decode_key(raw_key)
    if key is None:
        return None
    return key, decode_value(key, raw_value)


def _decode_offset_value(raw: bytes | memoryview) -> OffsetCommitValue:
    r = _Reader(raw)
    version = r.int16()
    if not 0 <= version <= 4:
        raise RecordFormatError(f"unknown OffsetCommitValue version {version}")
    r.flexible = version >= 4
    offset = r.int64()
    leader_epoch = r.int32() if version >= 3 else -1
    metadata = r.string()
    commit_ts = r.int64()
    expire_ts = r.int64() if version == 1 else -1
    r.tagged_fields()
    r.end()
    return OffsetCommitValue(offset, metadata, commit_ts, leader_epoch, expire_ts)


def _decode_group_value(raw: bytes | memoryview) -> GroupMetadataValue:
    r = _Reader(raw)
    version = r.int16()
    if not 0 <= version <= 4:
        raise RecordFormatError(f"unknown GroupMetadataValue version {version}")
    r.flexible = version >= 4
    protocol_type = r.string()
    generation = r.int32()
    protocol = r.string(nullable=True)
    leader = r.string(nullable=True)
    state_ts = r.int64() if version >= 2 else -1
    members = []
    for _ in range(r.array_length()):
        member_id = r.string()
        instance_id = r.string(nullable=True) if version >= 3 else None
        client_id = r.string()
        client_host = r.string()
        # version 0 had one timeout for both
        rebalance_timeout = r.int32() if version >= 1 else None
        session_timeout = r.int32()
        subscription = r.bytes_()
        assignment = r.bytes_()
        r.tagged_fields()
        if rebalance_timeout is None:
            rebalance_timeout = session_timeout
        members.append(
            MemberMetadata(member_id, instance_id, client_id, client_host, rebalance_timeout,
                           session_timeout, subscription, assignment)
        )
    r.tagged_fields()
    r.end()
    return GroupMetadataValue(protocol_type, generation, protocol, leader, state_ts, tuple(members))

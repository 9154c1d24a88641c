"""The group coordinator's facts and their ``__consumer_offsets`` records.

Theory of operation
-------------------
The group coordinator persists two kinds of facts in the compacted internal topic
``__consumer_offsets``, each as one record whose *key* says what the fact is about (so
compaction keeps the latest fact per key) and whose *value* is the fact (a null value, a
tombstone, deletes it):

* a committed offset: ``OffsetCommitKey`` (group, topic, partition) and
  ``OffsetCommitValue`` (offset, leader epoch, metadata, commit timestamp and, only in
  value version 1, an explicit expire timestamp);
* a group's membership after a rebalance: ``GroupMetadataKey`` (group) and
  ``GroupMetadataValue`` (protocol type, generation, chosen protocol, leader, when the
  group entered its current state, and every member with its subscription and assignment).

The byte layouts are declared once, in ``kafkito.protocol.records.group_coordinator``
(Kafka's schemas, every version); this module only maps the coordinator's facts (small
frozen values with the broker's ``_ms`` names, hashable, cheap to keep in the offsets
table) to those declarations and back, and decides which version to write: what a Kafka
3.x broker writes (OffsetCommitKey type 1, OffsetCommitValue v3, or v1 when an expire
timestamp was requested, GroupMetadataKey type 2, GroupMetadataValue v3), so a data
directory is readable by Kafka tooling. Every version Kafka ever wrote is read; KIP-848
record types (3 and up) are skipped, since KIP-848 membership is not persisted here.
Decoding untrusted bytes raises ``RecordFormatError``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from kafkito.protocol.errors import ProtocolError
from kafkito.protocol.records import group_coordinator as declared

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


# ---------------------------------------------------------------------------------- writing
def encode_offset_commit(key: OffsetCommitKey, value: OffsetCommitValue) -> tuple[bytes, bytes]:
    if value.expire_timestamp_ms >= 0:
        # Only value version 1 has room for an explicit expiry (OffsetCommit v2-v4's
        # retention_time_ms); it has no leader epoch.
        version = OFFSET_COMMIT_VALUE_VERSION_WITH_EXPIRY
        wire = declared.OffsetCommitValue(offset=value.offset, metadata=value.metadata,
                                          commit_timestamp=value.commit_timestamp_ms,
                                          expire_timestamp=value.expire_timestamp_ms)
    else:
        version = OFFSET_COMMIT_VALUE_VERSION
        wire = declared.OffsetCommitValue(offset=value.offset, leader_epoch=value.leader_epoch,
                                          metadata=value.metadata, commit_timestamp=value.commit_timestamp_ms)
    return _offset_key_bytes(key), _encode(lambda: declared.OFFSET_COMMIT.value.encode(wire, version))


def encode_offset_tombstone(key: OffsetCommitKey) -> tuple[bytes, None]:
    return _offset_key_bytes(key), None


def encode_group_metadata(key: GroupMetadataKey, value: GroupMetadataValue) -> tuple[bytes, bytes]:
    wire = declared.GroupMetadataValue(
        protocol_type=value.protocol_type, generation=value.generation, protocol=value.protocol,
        leader=value.leader, current_state_timestamp=value.current_state_timestamp_ms,
        members=[declared.MemberMetadata(
            member_id=m.member_id, group_instance_id=m.group_instance_id, client_id=m.client_id,
            client_host=m.client_host, rebalance_timeout=m.rebalance_timeout_ms,
            session_timeout=m.session_timeout_ms, subscription=bytes(m.subscription),
            assignment=bytes(m.assignment)) for m in value.members],
    )
    return _group_key_bytes(key), _encode(
        lambda: declared.GROUP_METADATA.value.encode(wire, GROUP_METADATA_VALUE_VERSION))


def encode_group_tombstone(key: GroupMetadataKey) -> tuple[bytes, None]:
    return _group_key_bytes(key), None


def _offset_key_bytes(key: OffsetCommitKey) -> bytes:
    wire = declared.OffsetCommitKey(group=key.group, topic=key.topic, partition=key.partition)
    return _encode(lambda: declared.OFFSET_COMMIT.encode_key(wire))


def _group_key_bytes(key: GroupMetadataKey) -> bytes:
    wire = declared.GroupMetadataKey(group=key.group)
    return _encode(lambda: declared.GROUP_METADATA.encode_key(wire))


def _encode(encode: Callable[[], bytes]) -> bytes:
    try:
        return encode()
    except ValueError as exc:  # e.g. a string longer than an int16 length
        raise RecordFormatError(str(exc)) from exc


# ---------------------------------------------------------------------------------- reading
def decode_key(raw: bytes | memoryview) -> OffsetCommitKey | GroupMetadataKey | None:
    """The key's fact, or None for a record kind this coordinator does not use."""
    try:
        rt = declared.CONSUMER_OFFSETS_RECORDS.record_type(raw)
        if rt not in (declared.LEGACY_OFFSET_COMMIT, declared.OFFSET_COMMIT, declared.GROUP_METADATA):
            return None  # KIP-848 / share-group records (or a newer Kafka's)
        _, wire = declared.CONSUMER_OFFSETS_RECORDS.decode_key(raw)
    except ProtocolError as exc:
        raise RecordFormatError(str(exc)) from None
    if rt is declared.GROUP_METADATA:
        return GroupMetadataKey(wire.group)
    return OffsetCommitKey(wire.group, wire.topic, wire.partition)


def decode_value(
    key: OffsetCommitKey | GroupMetadataKey, raw: bytes | memoryview | None
) -> OffsetCommitValue | GroupMetadataValue | None:
    """Decode the value belonging to ``key``; None for a tombstone."""
    if raw is None:
        return None
    try:
        if isinstance(key, OffsetCommitKey):
            _, v = declared.OFFSET_COMMIT.value.decode(raw)
            return OffsetCommitValue(v.offset, v.metadata, v.commit_timestamp, v.leader_epoch,
                                     v.expire_timestamp)
        version, g = declared.GROUP_METADATA.value.decode(raw)
    except ProtocolError as exc:
        raise RecordFormatError(str(exc)) from None
    members = tuple(
        MemberMetadata(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                       # version 0 had one timeout for both
                       m.rebalance_timeout if version >= 1 else m.session_timeout,
                       m.session_timeout, m.subscription, m.assignment)
        for m in g.members
    )
    return GroupMetadataValue(g.protocol_type, g.generation, g.protocol, g.leader,
                              g.current_state_timestamp, members)


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

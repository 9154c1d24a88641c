"""__consumer_offsets records: Kafka's byte layouts, every version we may read back."""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kafkito.broker.group.records import (
    GroupMetadataKey,
    GroupMetadataValue,
    MemberMetadata,
    OffsetCommitKey,
    OffsetCommitValue,
    RecordFormatError,
    decode_key,
    decode_record,
    decode_value,
    encode_group_metadata,
    encode_group_tombstone,
    encode_offset_commit,
    encode_offset_tombstone,
)


# Independent spelling of the schema (OffsetCommitKey.json, OffsetCommitValue.json,
# GroupMetadataKey.json, GroupMetadataValue.json): classic encoding, big-endian.
def s16(s):
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def b32(b):
    return struct.pack(">i", len(b)) + b


def test_offset_commit_key_and_value_v3_bytes():
    key, value = encode_offset_commit(
        OffsetCommitKey("g", "topic", 7), OffsetCommitValue(42, "meta", 1_700_000_000_000, leader_epoch=5))
    assert key == struct.pack(">h", 1) + s16("g") + s16("topic") + struct.pack(">i", 7)
    assert value == (struct.pack(">h", 3) + struct.pack(">q", 42) + struct.pack(">i", 5) + s16("meta")
                     + struct.pack(">q", 1_700_000_000_000))


def test_offset_commit_value_with_expiry_is_version_1():
    _, value = encode_offset_commit(OffsetCommitKey("g", "t", 0),
                                    OffsetCommitValue(1, "", 1000, leader_epoch=9, expire_timestamp_ms=5000))
    assert value == (struct.pack(">h", 1) + struct.pack(">q", 1) + s16("") + struct.pack(">q", 1000)
                     + struct.pack(">q", 5000))
    # version 1 has no leader epoch: it reads back as -1
    assert decode_value(OffsetCommitKey("g", "t", 0), value) == OffsetCommitValue(1, "", 1000, -1, 5000)


def test_group_metadata_v3_bytes():
    member = MemberMetadata("m-1", "inst", "client", "/127.0.0.1", 300000, 10000, b"\x00\x01", b"\x02")
    key, value = encode_group_metadata(
        GroupMetadataKey("grp"), GroupMetadataValue("consumer", 3, "range", "m-1", 123, (member,)))
    assert key == struct.pack(">h", 2) + s16("grp")
    assert value == (
        struct.pack(">h", 3) + s16("consumer") + struct.pack(">i", 3) + s16("range") + s16("m-1")
        + struct.pack(">q", 123) + struct.pack(">i", 1)
        + s16("m-1") + s16("inst") + s16("client") + s16("/127.0.0.1")
        + struct.pack(">ii", 300000, 10000) + b32(b"\x00\x01") + b32(b"\x02")
    )


def test_empty_group_metadata_has_null_protocol_and_leader():
    _, value = encode_group_metadata(GroupMetadataKey("g"), GroupMetadataValue("consumer", 4, None, None, 9, ()))
    assert value == (struct.pack(">h", 3) + s16("consumer") + struct.pack(">i", 4) + s16(None) + s16(None)
                     + struct.pack(">q", 9) + struct.pack(">i", 0))


def test_tombstones_have_keys_and_no_value():
    assert encode_offset_tombstone(OffsetCommitKey("g", "t", 1)) == (
        struct.pack(">h", 1) + s16("g") + s16("t") + struct.pack(">i", 1), None)
    assert encode_group_tombstone(GroupMetadataKey("g")) == (struct.pack(">h", 2) + s16("g"), None)
    assert decode_record(*encode_group_tombstone(GroupMetadataKey("g"))) == (GroupMetadataKey("g"), None)


def test_reads_older_offset_value_versions():
    key = OffsetCommitKey("g", "t", 0)
    v0 = struct.pack(">h", 0) + struct.pack(">q", 10) + s16("m") + struct.pack(">q", 77)
    v2 = struct.pack(">h", 2) + struct.pack(">q", 10) + s16("m") + struct.pack(">q", 77)
    assert decode_value(key, v0) == OffsetCommitValue(10, "m", 77)
    assert decode_value(key, v2) == OffsetCommitValue(10, "m", 77)
    # key version 0 has the same layout as 1
    k0 = struct.pack(">h", 0) + s16("g") + s16("t") + struct.pack(">i", 0)
    assert decode_key(k0) == key


def test_reads_flexible_offset_value_v4():
    # compact string: uvarint(len+1); then an empty tagged-field section
    v4 = struct.pack(">h", 4) + struct.pack(">q", 5) + struct.pack(">i", 2) + bytes([3]) + b"ab" \
        + struct.pack(">q", 99) + bytes([0])
    assert decode_value(OffsetCommitKey("g", "t", 0), v4) == OffsetCommitValue(5, "ab", 99, 2)
    # an unknown tagged field is skipped
    v4_tagged = v4[:-1] + bytes([1, 7, 2]) + b"xy"
    assert decode_value(OffsetCommitKey("g", "t", 0), v4_tagged) == OffsetCommitValue(5, "ab", 99, 2)


def test_reads_group_metadata_v0_v1_v2():
    def member(version):
        out = s16("m")
        if version >= 3:
            out += s16(None)
        out += s16("c") + s16("/h")
        if version >= 1:
            out += struct.pack(">i", 500)
        return out + struct.pack(">i", 100) + b32(b"sub") + b32(b"asg")

    for version in (0, 1, 2):
        raw = struct.pack(">h", version) + s16("consumer") + struct.pack(">i", 2) + s16("range") + s16("m")
        if version >= 2:
            raw += struct.pack(">q", 55)
        raw += struct.pack(">i", 1) + member(version)
        got = decode_value(GroupMetadataKey("g"), raw)
        assert got.generation == 2 and got.protocol == "range" and got.leader == "m"
        assert got.current_state_timestamp_ms == (55 if version >= 2 else -1)
        (m,) = got.members
        # version 0 has one timeout for both session and rebalance
        assert (m.session_timeout_ms, m.rebalance_timeout_ms) == (100, 500 if version >= 1 else 100)
        assert (m.subscription, m.assignment, m.group_instance_id) == (b"sub", b"asg", None)


def test_kip848_records_are_skipped():
    assert decode_record(struct.pack(">h", 3) + s16("g"), b"whatever") is None


@pytest.mark.parametrize("raw", [b"", b"\x00", struct.pack(">h", 1) + s16("g"),
                                 struct.pack(">h", 2) + s16("g") + b"x", struct.pack(">h", -2)])
def test_malformed_keys_raise(raw):
    with pytest.raises(RecordFormatError):
        decode_key(raw)


def test_malformed_values_raise():
    key = OffsetCommitKey("g", "t", 0)
    _, good = encode_offset_commit(key, OffsetCommitValue(1, "m", 2))
    for cut in range(len(good)):
        with pytest.raises(RecordFormatError):
            decode_value(key, good[:cut])
    with pytest.raises(RecordFormatError):
        decode_value(key, struct.pack(">h", 9) + good[2:])
    with pytest.raises(RecordFormatError):
        decode_value(GroupMetadataKey("g"), struct.pack(">h", 3) + s16("c") + struct.pack(">i", 1)
                     + s16(None) + s16(None) + struct.pack(">q", 0) + struct.pack(">i", -5))


names = st.text(max_size=20)
i32 = st.integers(-(2**31), 2**31 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)


@given(names, names, i32, st.integers(0, 2**63 - 1), i32, names, i64, st.one_of(st.just(-1), st.integers(0, 2**62)))
def test_offset_commit_round_trip(group, topic, partition, offset, epoch, meta, ts, expire):
    key = OffsetCommitKey(group, topic, partition)
    value = OffsetCommitValue(offset, meta, ts, epoch if expire < 0 else -1, expire)
    assert decode_record(*encode_offset_commit(key, value)) == (key, value)


members = st.builds(MemberMetadata, names, st.one_of(st.none(), names), names, names, i32, i32,
                    st.binary(max_size=30), st.binary(max_size=30))


@given(names, names, i32, st.one_of(st.none(), names), st.one_of(st.none(), names), i64,
       st.lists(members, max_size=4).map(tuple))
def test_group_metadata_round_trip(group, ptype, gen, protocol, leader, ts, ms):
    key = GroupMetadataKey(group)
    value = GroupMetadataValue(ptype, gen, protocol, leader, ts, ms)
    assert decode_record(*encode_group_metadata(key, value)) == (key, value)

"""Internal-topic records declared with the DSL (protocol/records): round trips for every
declared version, Kafka's byte layouts pinned by the bytes kafkito has always written, and
kio (generated from Kafka's schemas) as an independent oracle where it has the type."""

from __future__ import annotations

import dataclasses
import importlib
import io
import json
import os
import struct
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kafkito.protocol.codec import decode_body, encode_body
from kafkito.protocol.errors import ProtocolError
from kafkito.protocol.records import control, transaction_log
from kafkito.protocol.records import consumer_protocol as cp
from kafkito.protocol.records import group_coordinator as gc

from .strategies import message, project

VALUE_SCHEMAS = [
    *{id(rt.value): rt.value for rt in gc.CONSUMER_OFFSETS_RECORDS.types.values()}.values(),
    transaction_log.TRANSACTION_LOG.value,
    cp.CONSUMER_PROTOCOL_SUBSCRIPTION,
    cp.CONSUMER_PROTOCOL_ASSIGNMENT,
    control.CONTROL_RECORD_KEY,
    control.END_TXN_MARKER,
]
VALUE_CASES = [pytest.param(s, v, id=f"{s.cls.__name__}-v{v}")
               for s in VALUE_SCHEMAS for v in range(s.versions.lo, s.versions.hi + 1)]
TABLES = [gc.CONSUMER_OFFSETS_RECORDS, transaction_log.TRANSACTION_STATE_RECORDS]
KEY_CASES = [pytest.param(table, rt, id=f"{table.name}-{rt.record_type}-{rt.key.__name__}")
             for table in TABLES for rt in table.types.values()]


def _s16(s: str | None) -> bytes:
    if s is None:
        return struct.pack(">h", -1)
    return struct.pack(">h", len(s.encode())) + s.encode()


@pytest.mark.parametrize("schema,version", VALUE_CASES)
@given(data=st.data())
def test_value_round_trip(schema, version, data):
    flex = schema.is_flexible(version)
    value = project(data.draw(message(schema.cls, version, flex)), version, flex)
    raw = schema.encode(value, version)
    assert raw[:2] == struct.pack(">h", version)
    assert schema.decode(raw) == (version, value)
    with pytest.raises(ProtocolError):
        schema.decode(raw + b"\x00")  # trailing bytes
    with pytest.raises(ProtocolError):
        schema.decode(raw[:-1])  # truncated


@pytest.mark.parametrize("table,rt", KEY_CASES)
@given(data=st.data())
def test_key_round_trip(table, rt, data):
    key = project(data.draw(message(rt.key, 0, False)), 0, False)
    raw = rt.encode_key(key)
    assert raw[:2] == struct.pack(">h", rt.record_type)
    decoded_type, decoded = table.decode_key(raw)
    assert decoded_type is rt and decoded == key


def test_unknown_versions_and_types():
    with pytest.raises(ProtocolError):
        gc.OFFSET_COMMIT.decode_value(struct.pack(">h", 5) + bytes(30))
    with pytest.raises(ValueError):
        gc.OFFSET_COMMIT.value.encode(gc.OffsetCommitValue(), 5)
    assert gc.CONSUMER_OFFSETS_RECORDS.decode_key(struct.pack(">h", 4) + _s16("g")) is None
    assert gc.CONSUMER_OFFSETS_RECORDS.decode_key(struct.pack(">h", 99) + _s16("g")) is None
    for raw in (b"", b"\x00", struct.pack(">h", -1) + _s16("g")):
        with pytest.raises(ProtocolError):
            gc.CONSUMER_OFFSETS_RECORDS.decode_key(raw)


def test_offset_commit_key_types_0_and_1_share_a_layout():
    body = _s16("g") + _s16("t") + struct.pack(">i", 3)
    key = gc.OffsetCommitKey(group="g", topic="t", partition=3)
    for type_id in (0, 1):
        rt, decoded = gc.CONSUMER_OFFSETS_RECORDS.decode_key(struct.pack(">h", type_id) + body)
        assert decoded == key and rt.value is gc.OFFSET_COMMIT.value
    assert gc.OFFSET_COMMIT.encode_key(key) == struct.pack(">h", 1) + body


def test_transaction_log_value_v1_tagged_fields_bytes():
    value = transaction_log.TransactionLogValue(
        producer_id=7, previous_producer_id=6, producer_epoch=2, transaction_timeout_ms=60_000,
        transaction_status=1, transaction_partitions=[transaction_log.TransactionPartitions(topic="t", partition_ids=[0, 2])],
        transaction_last_update_timestamp_ms=11, transaction_start_timestamp_ms=10)
    raw = transaction_log.TRANSACTION_LOG.value.encode(value, 1)
    expected = (struct.pack(">hqhib", 1, 7, 2, 60_000, 1)
                + bytes([2, 2]) + b"t" + bytes([3]) + struct.pack(">ii", 0, 2) + bytes([0])
                + struct.pack(">qq", 11, 10)
                + bytes([1, 0, 8]) + struct.pack(">q", 6))  # one tagged field: tag 0, 8 bytes
    assert raw == expected
    # v0 has neither compact lengths nor tags
    raw0 = transaction_log.TRANSACTION_LOG.value.encode(value, 0)
    assert raw0 == (struct.pack(">hqhib", 0, 7, 2, 60_000, 1) + struct.pack(">i", 1) + _s16("t")
                    + struct.pack(">iii", 2, 0, 2) + struct.pack(">qq", 11, 10))


def test_control_record_key_and_end_txn_marker_bytes():
    assert control.CONTROL_RECORD_KEY.encode(control.ControlRecordKey(type=control.ControlRecordType.COMMIT), 0) \
        == struct.pack(">hh", 0, 1)
    assert control.END_TXN_MARKER.encode(control.EndTxnMarker(coordinator_epoch=5), 0) == struct.pack(">hi", 0, 5)
    assert control.CONTROL_RECORD_KEY.decode(struct.pack(">hh", 0, 0)) == (0, control.ControlRecordKey(type=0))


def test_read_subscribed_topics_reads_only_the_leading_topics():
    v0 = struct.pack(">hi", 0, 2) + _s16("a") + _s16("b") + struct.pack(">i", -1)
    assert cp.read_subscribed_topics(v0) == ["a", "b"]
    # a version from the future with fields we do not know: the prefix still reads
    assert cp.read_subscribed_topics(struct.pack(">hi", 9, 1) + _s16("x") + b"\xff\xfe") == ["x"]
    for bad in (b"", b"\x00\x00", struct.pack(">hi", 0, 5) + _s16("a"), struct.pack(">hi", 0, -1)):
        with pytest.raises(ProtocolError):
            cp.read_subscribed_topics(bad)


# ------------------------------------------------------------------ bytes kafkito has written
GOLDEN = json.load(open(os.path.join(os.path.dirname(__file__), "data", "records_consumer_offsets.json"),
                        encoding="utf-8"))["cases"]


def _golden_records(case):
    if case["kind"] == "offset_commit":
        group, topic, partition = case["key"]
        offset, metadata, commit_ts, leader_epoch, expire_ts = case["value"]
        key = gc.OffsetCommitKey(group=group, topic=topic, partition=partition)
        # Value version 1 is the only one with an explicit expiry; it has no leader epoch.
        version = 1 if expire_ts >= 0 else 3
        value = gc.OffsetCommitValue(offset=offset, leader_epoch=leader_epoch if version == 3 else -1,
                                     metadata=metadata, commit_timestamp=commit_ts,
                                     expire_timestamp=expire_ts if version == 1 else -1)
        return gc.OFFSET_COMMIT, key, value, version
    protocol_type, generation, protocol, leader, state_ts, members = case["value"]
    value = gc.GroupMetadataValue(
        protocol_type=protocol_type, generation=generation, protocol=protocol, leader=leader,
        current_state_timestamp=state_ts,
        members=[gc.MemberMetadata(member_id=m[0], group_instance_id=m[1], client_id=m[2], client_host=m[3],
                                   rebalance_timeout=m[4], session_timeout=m[5],
                                   subscription=bytes.fromhex(m[6]), assignment=bytes.fromhex(m[7]))
                 for m in members])
    return gc.GROUP_METADATA, gc.GroupMetadataKey(group=case["key"][0]), value, 3


@pytest.mark.parametrize("case", GOLDEN, ids=lambda c: c["kind"])
def test_declarations_write_the_bytes_kafkito_always_wrote(case):
    rt, key, value, version = _golden_records(case)
    assert rt.encode_key(key).hex() == case["key_bytes"]
    assert rt.encode_value(value, version).hex() == case["value_bytes"]
    got_rt, got_key = gc.CONSUMER_OFFSETS_RECORDS.decode_key(bytes.fromhex(case["key_bytes"]))
    assert got_rt is rt and got_key == key
    assert rt.decode_value(bytes.fromhex(case["value_bytes"])) == (version, value)


# ------------------------------------------------------------------ kio as an oracle
kio_schema = pytest.importorskip("kio.schema")
from kio.serial import entity_reader, entity_writer  # noqa: E402

KIO_CASES = [
    pytest.param(cp.ConsumerProtocolSubscription, "consumer_protocol_subscription", "ConsumerProtocolSubscription",
                 v, id=f"ConsumerProtocolSubscription-v{v}") for v in range(4)
] + [
    pytest.param(cp.ConsumerProtocolAssignment, "consumer_protocol_assignment", "ConsumerProtocolAssignment",
                 v, id=f"ConsumerProtocolAssignment-v{v}") for v in range(4)
] + [
    pytest.param(control.EndTxnMarker, "end_txn_marker", "EndTxnMarker", 0, id="EndTxnMarker-v0"),
    pytest.param(control.ControlRecordKey, "control_record_type_schema", "ControlRecordTypeSchema", 0,
                 id="ControlRecordKey-v0"),
]


def _plain(v):
    """kio's and our values as nested lists of plain values, field by field in order."""
    if hasattr(v, "__kafka_fields__"):
        return [_plain(getattr(v, f.name)) for f in type(v).__kafka_fields__]
    if dataclasses.is_dataclass(v):
        return [_plain(getattr(v, f.name)) for f in dataclasses.fields(v)]
    if isinstance(v, (list, tuple)):
        return [_plain(e) for e in v]
    if isinstance(v, (bytes, memoryview)):
        return bytes(v)
    if isinstance(v, uuid.UUID):
        return v
    return v


def _present(obj, version):
    """Our struct with only the fields present at ``version`` (kio's classes are per version)."""
    out = []
    for f in type(obj).__kafka_fields__:
        if version in f.versions:
            v = getattr(obj, f.name)
            if isinstance(v, list) and v and hasattr(v[0], "__kafka_fields__"):
                v = [_present(e, version) for e in v]
            out.append(_plain(v))
    return out


@pytest.mark.parametrize("cls,module,name,version", KIO_CASES)
@settings(max_examples=30)
@given(data=st.data())
def test_kio_agrees(cls, module, name, version, data):
    value = project(data.draw(message(cls, version, False)), version, False)
    b = bytearray()
    encode_body(cls, version, False, value, b, [])
    ours = bytes(b)
    kio_cls = getattr(importlib.import_module(f"kio.schema.{module}.v{version}"), name)
    theirs, size = entity_reader(kio_cls)(ours, 0)
    assert size == len(ours)
    assert _present(value, version) == _plain(theirs)
    out = io.BytesIO()
    entity_writer(kio_cls)(out, theirs)
    assert out.getvalue() == ours
    assert decode_body(cls, version, False, memoryview(ours)) == value

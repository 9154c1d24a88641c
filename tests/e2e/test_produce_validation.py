"""Produce validation over the wire (issue 10, findings 1 and 6): each bad batch gets Kafka's
error code, nothing of it is appended, and acknowledged data survives a restart."""

from __future__ import annotations

import struct
import time

import pytest
import zstandard
from crc32c import crc32c
from e2e.clients import CONSUMERS, PRODUCERS, Msg
from e2e.raw import RawClient

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.list_offsets import ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic
from kafkito.protocol.messages.produce import PartitionProduceData, ProduceRequest, TopicProduceData
from kafkito.records import batch as B
from kafkito.records import build_batch
from kafkito.testing import broker as embedded_broker

pytestmark = pytest.mark.e2e

PRODUCE_VERSION = 9  # record_errors and error_message exist from v8


def _now_ms() -> int:
    return int(time.time() * 1000)


def _recrc(raw: bytes | bytearray) -> bytes:
    raw = bytearray(raw)
    struct.pack_into(">I", raw, B.CRC_AT, crc32c(bytes(raw[B.ATTRIBUTES_AT:])))
    return bytes(raw)


def _batch(n: int = 1, **kw) -> bytes:
    ts = kw.pop("ts", _now_ms())
    return build_batch([(b"k%d" % i, b"v%d" % i, [], ts) for i in range(n)], **kw)


def _with_header(raw: bytes, **fields) -> bytes:
    """``raw`` with header fields replaced (offsets as in batch.py), CRC recomputed."""
    out = bytearray(raw)
    at = {"records_count": (B.RECORDS_COUNT_AT, ">i"), "last_offset_delta": (B.LAST_OFFSET_DELTA_AT, ">i"),
          "attributes": (B.ATTRIBUTES_AT, ">h"), "base_offset": (B.BASE_OFFSET_AT, ">q")}
    for name, value in fields.items():
        pos, fmt = at[name]
        struct.pack_into(fmt, out, pos, value)
    return _recrc(out)


def _with_body(raw: bytes, body: bytes) -> bytes:
    out = bytearray(raw[: B.HEADER_BYTES]) + body
    struct.pack_into(">i", out, B.BATCH_LENGTH_AT, len(out) - B.LOG_OVERHEAD)
    return _recrc(out)


def _produce(raw: RawClient, topic: str, records: bytes, acks: int = -1):
    request = ProduceRequest(acks=acks, timeout_ms=5000, topic_data=[
        TopicProduceData(name=topic, partition_data=[PartitionProduceData(index=0, records=records)])])
    return raw.call(ApiKey.PRODUCE, PRODUCE_VERSION, request).responses[0].partition_responses[0]


def _latest(raw: RawClient, topic: str) -> int:
    request = ListOffsetsRequest(replica_id=-1, isolation_level=0, topics=[
        ListOffsetsTopic(name=topic, partitions=[ListOffsetsPartition(partition_index=0, timestamp=-1)])])
    return raw.call(ApiKey.LIST_OFFSETS, 5, request).topics[0].partitions[0].offset


@pytest.fixture
def raw(kbroker):
    client = RawClient(kbroker.host, kbroker.port)
    yield client
    client.close()


def _refused(raw, topic, records, code: ErrorCode):
    """The produce is refused with ``code`` and the log does not move."""
    before = _latest(raw, topic)
    response = _produce(raw, topic, records)
    assert ErrorCode(response.error_code) == code, response.error_message
    assert response.base_offset == -1
    assert _latest(raw, topic) == before
    return response


# ------------------------------------------------------------------------------ finding 1

def _crafted_2_31_batch() -> bytes:
    """70 bytes: one record under a header claiming 2^31-1 records (and a matching delta)."""
    one = build_batch([(b"k", b"v", [], _now_ms())])
    crafted = _with_header(one, records_count=2**31 - 1, last_offset_delta=2**31 - 2)
    assert len(crafted) == 70
    return crafted


def test_finding_1_crafted_2_31_record_batch_is_refused_and_a_restart_loses_nothing_acked(tmp_path):
    crafted = _crafted_2_31_batch()
    with embedded_broker(tmp_path) as b:
        b.create_topic("crafted")
        raw = RawClient(b.host, b.port)
        # Alone, and twice in one request (Kafka allows one batch per partition from v3).
        for records in (crafted, crafted + crafted):
            _refused(raw, "crafted", records, ErrorCode.INVALID_RECORD)
        raw.close()
        sent = [Msg(b"k", b"acked-%d" % i) for i in range(5)]
        assert PRODUCERS["confluent"](b.bootstrap_servers, "crafted", sent, acks="all") == list(range(5))
    with embedded_broker(tmp_path) as b:  # clean restart: recovery keeps every segment
        seen = CONSUMERS["kafka-python"](b.bootstrap_servers, "crafted", 0, 0, 5)
        assert [s.value for s in seen] == [m.value for m in sent]
        assert PRODUCERS["kafka-python"](b.bootstrap_servers, "crafted", [Msg(b"k", b"after")]) == [5]


def test_finding_1_two_good_batches_in_one_request_are_refused(kbroker, topic_name, raw):
    kbroker.create_topic(topic_name)
    _refused(raw, topic_name, _batch(2) + _batch(3), ErrorCode.INVALID_RECORD)
    assert _produce(raw, topic_name, _batch(2)).base_offset == 0


# ------------------------------------------------------------------------------ finding 6

def test_finding_6_record_count_that_disagrees_with_the_records(kbroker, topic_name, raw):
    kbroker.create_topic(topic_name)
    two = _batch(2)
    _refused(raw, topic_name, _with_header(two, records_count=3, last_offset_delta=2), ErrorCode.INVALID_RECORD)
    _refused(raw, topic_name, _with_header(_batch(3), records_count=2, last_offset_delta=1),
             ErrorCode.INVALID_RECORD)


def test_finding_6_random_record_bytes_under_a_valid_crc(kbroker, topic_name, raw):
    kbroker.create_topic(topic_name)
    good = _batch(3)
    garbage = bytes((i * 151 + 7) % 256 for i in range(len(good) - B.HEADER_BYTES))
    _refused(raw, topic_name, _with_body(good, garbage), ErrorCode.INVALID_RECORD)


@pytest.mark.parametrize("codec", [5, 6, 7])
def test_finding_6_unknown_codec_ids(kbroker, topic_name, raw, codec):
    kbroker.create_topic(topic_name)
    _refused(raw, topic_name, _with_header(_batch(1), attributes=codec), ErrorCode.UNSUPPORTED_COMPRESSION_TYPE)


def test_finding_6_transactional_bit_without_a_producer_id(kbroker, topic_name, raw):
    kbroker.create_topic(topic_name)
    _refused(raw, topic_name, _with_header(_batch(1), attributes=B.TRANSACTIONAL_BIT), ErrorCode.INVALID_RECORD)


def test_finding_6_lying_record_length(kbroker, topic_name, raw):
    kbroker.create_topic(topic_name)
    good = bytearray(_batch(2))
    good[B.HEADER_BYTES] += 2  # the first record's length varint claims one byte more
    _refused(raw, topic_name, _recrc(good), ErrorCode.INVALID_RECORD)


def test_finding_6_zstd_garbage(kbroker, topic_name, raw):
    kbroker.create_topic(topic_name)
    zstd = _batch(20, compression="zstd")
    frame = zstd[B.HEADER_BYTES:]
    for body in (bytes((i * 151 + 7) % 256 for i in range(200)),  # not a zstd frame at all
                 b"\x28\xb5\x2f\xfd" + b"\x00" * 40,  # the magic, then nonsense
                 frame[: len(frame) - 3]):  # a truncated frame
        _refused(raw, topic_name, _with_body(zstd, body), ErrorCode.CORRUPT_MESSAGE)


def test_finding_6_decompression_bomb_on_a_plain_topic(kbroker, topic_name, raw):
    kbroker.create_topic(topic_name)
    bomb = zstandard.ZstdCompressor(level=19).compress(b"\x00" * (256 * 1024 * 1024))
    assert len(bomb) < 40_000
    started = time.monotonic()
    _refused(raw, topic_name, _with_body(_batch(1, compression="zstd"), bomb), ErrorCode.MESSAGE_TOO_LARGE)
    assert time.monotonic() - started < 5  # decompression stops at the cap (64 MiB)
    # Consumers keep working: nothing of the bomb is stored.
    assert _produce(raw, topic_name, _batch(1)).base_offset == 0


def test_finding_6_timestamp_too_far_in_the_future_names_the_records(kbroker, topic_name, raw):
    kbroker.create_topic(topic_name)
    now = _now_ms()
    records = [(b"k", b"ok", [], now), (b"k", b"late", [], now + 2 * 3_600_000), (b"k", b"ok", [], now)]
    response = _refused(raw, topic_name, build_batch(records), ErrorCode.INVALID_TIMESTAMP)
    assert [e.batch_index for e in response.record_errors] == [1]
    assert "out of range" in response.record_errors[0].batch_index_error_message
    assert response.error_message == "One or more records have been rejected due to invalid timestamp"


def test_finding_6_timestamp_before_max_ms_on_a_topic(kbroker, topic_name, raw):
    kbroker.create_topic(topic_name, configs={"message.timestamp.before.max.ms": "60000"})
    _refused(raw, topic_name, _batch(2, ts=_now_ms() - 3_600_000), ErrorCode.INVALID_TIMESTAMP)
    assert _produce(raw, topic_name, _batch(2)).base_offset == 0


def test_finding_6_keyless_records_on_a_compacted_topic_are_named(kbroker, topic_name, raw):
    kbroker.create_topic(topic_name, configs={"cleanup.policy": "compact"})
    now = _now_ms()
    records = [(b"k", b"v", [], now), (None, b"v", [], now), (b"k", b"v", [], now), (None, b"v", [], now)]
    response = _refused(raw, topic_name, build_batch(records, compression="lz4"), ErrorCode.INVALID_RECORD)
    assert [e.batch_index for e in response.record_errors] == [1, 3]
    assert "2 record errors" in response.error_message


def test_a_producer_max_timestamp_that_lies_is_corrected_in_the_header(kbroker, topic_name, raw):
    kbroker.create_topic(topic_name)
    now = _now_ms()
    lying = bytearray(build_batch([(b"k", b"v", [], now), (b"k", b"v", [], now + 5)]))
    struct.pack_into(">q", lying, B.MAX_TIMESTAMP_AT, now - 10_000)
    assert _produce(raw, topic_name, _recrc(lying)).error_code == 0
    seen = CONSUMERS["confluent"](kbroker.bootstrap_servers, topic_name, 0, 0, 2)
    assert [s.value for s in seen] == [b"v", b"v"]
    request = ListOffsetsRequest(replica_id=-1, isolation_level=0, topics=[
        ListOffsetsTopic(name=topic_name, partitions=[ListOffsetsPartition(partition_index=0, timestamp=-3)])])
    part = raw.call(ApiKey.LIST_OFFSETS, 7, request).topics[0].partitions[0]  # MAX_TIMESTAMP
    assert (part.offset, part.timestamp) == (1, now + 5)

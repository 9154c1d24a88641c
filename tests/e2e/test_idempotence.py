"""Idempotent producers: the defaults of kafka-python and the Java client, opt-in in librdkafka."""

from __future__ import annotations

import pytest
from e2e.clients import CONSUMERS, PRODUCERS, Msg
from e2e.raw import RawClient

from kafkito.protocol import ApiKey
from kafkito.protocol.messages.init_producer_id import InitProducerIdRequest
from kafkito.protocol.messages.produce import PartitionProduceData, ProduceRequest, TopicProduceData
from kafkito.records import build_batch

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("client, extra", [
    ("confluent", {"enable.idempotence": True}),
    ("kafka-python", {"enable_idempotence": True}),
    ("aiokafka", {"enable_idempotence": True}),
])
def test_idempotent_producers_round_trip(kbroker, topic_name, client, extra):
    kbroker.create_topic(topic_name)
    sent = [Msg(f"k{i}".encode(), f"v{i}".encode()) for i in range(50)]
    offsets = PRODUCERS[client](kbroker.bootstrap_servers, topic_name, sent, acks="all", extra=extra)
    assert offsets == list(range(50))
    seen = CONSUMERS["confluent"](kbroker.bootstrap_servers, topic_name, 0, 0, 50)
    assert [s.value for s in seen] == [m.value for m in sent]


def test_retried_batch_is_not_appended_twice(kbroker, topic_name):
    kbroker.create_topic(topic_name)
    raw = RawClient(kbroker.host, kbroker.port)
    init = raw.call(ApiKey.INIT_PRODUCER_ID, 4, InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=60000))
    assert init.error_code == 0 and init.producer_id >= 0 and init.producer_epoch == 0

    def produce(seq: int, values: list[bytes]):
        batch = build_batch([(b"k", v, [], 1_700_000_000_000) for v in values],
                            producer_id=init.producer_id, producer_epoch=0, base_sequence=seq)
        request = ProduceRequest(acks=-1, timeout_ms=5000, topic_data=[
            TopicProduceData(name=topic_name, partition_data=[PartitionProduceData(index=0, records=batch)])])
        part = raw.call(ApiKey.PRODUCE, 9, request).responses[0].partition_responses[0]
        return part.error_code, part.base_offset

    assert produce(0, [b"a", b"b"]) == (0, 0)
    assert produce(2, [b"c"]) == (0, 2)
    assert produce(0, [b"a", b"b"]) == (0, 0)   # a retry: original offsets, nothing appended
    assert produce(5, [b"x"])[0] == 45          # OUT_OF_ORDER_SEQUENCE_NUMBER
    assert produce(3, [b"d"]) == (0, 3)
    seen = CONSUMERS["kafka-python"](kbroker.bootstrap_servers, topic_name, 0, 0, 4)
    assert [s.value for s in seen] == [b"a", b"b", b"c", b"d"]
    # A transactional id is refused clearly rather than half-served.
    txn = raw.call(ApiKey.INIT_PRODUCER_ID, 4, InitProducerIdRequest(transactional_id="tx", transaction_timeout_ms=60000))
    assert txn.error_code == 42  # INVALID_REQUEST


def _produce_idem(raw, pid, seq, value):
    """(error code, base offset) of one idempotent acks=all batch to topic ``idem``."""
    batch = build_batch([(b"k", value, [], 1_700_000_000_000)], producer_id=pid, producer_epoch=0,
                        base_sequence=seq)
    request = ProduceRequest(acks=-1, timeout_ms=5000, topic_data=[
        TopicProduceData(name="idem", partition_data=[PartitionProduceData(index=0, records=batch)])])
    part = raw.call(ApiKey.PRODUCE, 9, request).responses[0].partition_responses[0]
    return part.error_code, part.base_offset


def test_producer_state_survives_a_clean_restart(tmp_path):
    """A retry that arrives after the broker restarted is still recognised as a duplicate."""
    from kafkito.testing import broker as embedded_broker

    with embedded_broker(tmp_path) as b:
        b.create_topic("idem")
        raw = RawClient(b.host, b.port)
        pid = raw.call(ApiKey.INIT_PRODUCER_ID, 4, InitProducerIdRequest(transaction_timeout_ms=60000)).producer_id
        assert _produce_idem(raw, pid, 0, b"a") == (0, 0)
        assert _produce_idem(raw, pid, 1, b"b") == (0, 1)
    with embedded_broker(tmp_path) as b:
        raw = RawClient(b.host, b.port)
        assert _produce_idem(raw, pid, 1, b"b") == (0, 1)   # the retry: original offset, not appended
        assert _produce_idem(raw, pid, 2, b"c") == (0, 2)
        # A new producer never gets an id that was handed out before the restart.
        assert raw.call(ApiKey.INIT_PRODUCER_ID, 4, InitProducerIdRequest(transaction_timeout_ms=60000)).producer_id > pid
        seen = CONSUMERS["confluent"](b.bootstrap_servers, "idem", 0, 0, 3)
        assert [s.value for s in seen] == [b"a", b"b", b"c"]


def test_a_retry_after_a_restart_and_plain_appends_is_still_a_duplicate(tmp_path):
    """Regression (found by the simulation, seed 28 with flip_old_segment_bytes): producer
    state is loaded at the first idempotent append; when a plain producer appended first,
    the snapshot no longer matched the log end and was dropped, so the retry of a batch
    written before the restart was appended a second time."""
    from kafkito.testing import broker as embedded_broker

    def produce_plain(raw, value):
        request = ProduceRequest(acks=-1, timeout_ms=5000, topic_data=[TopicProduceData(
            name="idem", partition_data=[PartitionProduceData(
                index=0, records=build_batch([(None, value, [], 1_700_000_000_000)]))])])
        return raw.call(ApiKey.PRODUCE, 9, request).responses[0].partition_responses[0].base_offset

    with embedded_broker(tmp_path) as b:
        b.create_topic("idem", configs={"segment.bytes": "1024"})  # the plain batch rolls
        raw = RawClient(b.host, b.port)
        pid = raw.call(ApiKey.INIT_PRODUCER_ID, 4, InitProducerIdRequest(transaction_timeout_ms=60000)).producer_id
        assert _produce_idem(raw, pid, 0, b"a") == (0, 0)
    with embedded_broker(tmp_path) as b:
        raw = RawClient(b.host, b.port)
        assert produce_plain(raw, b"plain" * 200) == 1  # in a new segment: the retried batch is not in it
        assert _produce_idem(raw, pid, 0, b"a") == (0, 0)   # the retry: original offset, not appended
        assert _produce_idem(raw, pid, 1, b"b") == (0, 2)

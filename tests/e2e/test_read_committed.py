"""read_committed on the wire: Fetch isolation_level=1 stops at the last stable offset and
names the aborted transactions; ListOffsets latest answers the LSO; real clients configured
for read_committed see exactly the committed records, in offset order.

Plain records go in through Produce. Transactional batches and markers go in on the
broker's trio thread, through ``PartitionManager.append`` and the coordinator's door
``append_control``, then ``flush_to``: the read side is under test here, not the
coordinator (whose AddPartitionsToTxn check a raw transactional Produce would meet)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import trio
from e2e.raw import RawClient

from kafkito.protocol import ApiKey
from kafkito.protocol.messages.fetch import FetchPartition, FetchRequest, FetchTopic
from kafkito.protocol.messages.list_offsets import (
    ListOffsetsPartition,
    ListOffsetsRequest,
    ListOffsetsTopic,
)
from kafkito.protocol.messages.produce import PartitionProduceData, ProduceRequest, TopicProduceData
from kafkito.records import build_batch, iter_batches

pytestmark = pytest.mark.e2e

TS = 1_700_000_000_000


class Partition:
    """One partition driven as a transactional producer and its coordinator would."""

    def __init__(self, kbroker, topic: str) -> None:
        self.kbroker, self.topic = kbroker, topic
        self.raw = RawClient(kbroker.host, kbroker.port)
        self.seqs: dict[int, int] = {}

    def produce(self, values: list[bytes], pid: int = -1) -> int:
        if pid >= 0:
            seq = self.seqs.get(pid, 0)
            self.seqs[pid] = seq + len(values)
            return self._in_broker(lambda partitions, st: partitions.append(st, build_batch(
                [(b"k", v, [], TS) for v in values], producer_id=pid, producer_epoch=0,
                base_sequence=seq, is_transactional=True)).base_offset)
        batch = build_batch([(b"k", v, [], TS) for v in values])
        request = ProduceRequest(acks=-1, timeout_ms=5000, topic_data=[TopicProduceData(
            name=self.topic, partition_data=[PartitionProduceData(index=0, records=batch)])])
        part = self.raw.call(ApiKey.PRODUCE, 9, request).responses[0].partition_responses[0]
        assert part.error_code == 0, part
        return part.base_offset

    def marker(self, pid: int, commit: bool) -> int:
        return self._in_broker(
            lambda partitions, st: partitions.append_control(st, pid, 0, commit, 0))

    def _in_broker(self, write) -> int:
        """Run ``write(partitions, st)`` -> offset on the broker's trio thread, then wait
        until that offset is flushed."""
        partitions = self.kbroker.broker.state.partitions

        async def run() -> int:
            st = partitions.state(self.topic, 0)
            offset = write(partitions, st)
            await partitions.flush_to(st, st.log.log_end_offset)
            return offset

        return trio.from_thread.run(run, trio_token=self.kbroker.broker.trio_token)

    def fetch(self, offset: int, isolation: int, version: int = 11, max_wait_ms: int = 0,
              raw: RawClient | None = None):
        request = FetchRequest(max_wait_ms=max_wait_ms, min_bytes=1, max_bytes=1 << 20,
                               isolation_level=isolation, session_id=0, session_epoch=-1,
                               topics=[FetchTopic(topic=self.topic, partitions=[FetchPartition(
                                   partition=0, fetch_offset=offset, partition_max_bytes=1 << 20)])],
                               forgotten_topics_data=[], rack_id="")
        response = (raw or self.raw).call(ApiKey.FETCH, version, request)
        return response.responses[0].partitions[0]

    def latest(self, isolation: int, timestamp: int = -1) -> int:
        """ListOffsets v5: latest (-1) or the first offset at or after ``timestamp``."""
        request = ListOffsetsRequest(replica_id=-1, isolation_level=isolation, topics=[
            ListOffsetsTopic(name=self.topic, partitions=[
                ListOffsetsPartition(partition_index=0, timestamp=timestamp)])])
        part = self.raw.call(ApiKey.LIST_OFFSETS, 5, request).topics[0].partitions[0]
        assert part.error_code == 0
        return part.offset


def _offsets(part) -> list[int]:
    records = part.records
    data = records.tobytes() if hasattr(records, "tobytes") else bytes(records or b"")
    return [b.base_offset for b in iter_batches(data)]


@pytest.mark.parametrize("version", [4, 7, 11, 12])
def test_fetch_stops_at_the_lso_and_names_aborted_transactions(kbroker, topic_name, version):
    kbroker.create_topic(topic_name)
    p = Partition(kbroker, topic_name)
    assert p.produce([b"a1", b"a2"], pid=1000) == 0
    assert p.produce([b"plain"]) == 2
    assert p.produce([b"b1", b"b2"], pid=2000) == 3
    committed = p.fetch(0, 1, version)
    assert (committed.high_watermark, committed.last_stable_offset) == (5, 0)
    assert _offsets(committed) == [] and committed.aborted_transactions == []
    uncommitted = p.fetch(0, 0, version)
    assert _offsets(uncommitted) == [0, 2, 3] and uncommitted.last_stable_offset == 0
    assert uncommitted.aborted_transactions is None
    assert (p.latest(1), p.latest(0)) == (0, 5)
    # A timestamp lookup under read_committed finds nothing past the LSO either.
    assert (p.latest(1, TS), p.latest(0, TS)) == (-1, 0)

    assert p.marker(1000, commit=False) == 5
    committed = p.fetch(0, 1, version)
    assert committed.last_stable_offset == 3  # producer 2000 is still open
    assert _offsets(committed) == [0, 2]
    assert [(a.producer_id, a.first_offset) for a in committed.aborted_transactions] == [(1000, 0)]
    assert p.latest(1) == 3

    assert p.marker(2000, commit=True) == 6
    committed = p.fetch(3, 1, version)
    assert committed.last_stable_offset == committed.high_watermark == 7
    assert _offsets(committed) == [3, 5, 6]
    # The abort's marker lies in the range: the consumer still needs to know of it.
    assert [(a.producer_id, a.first_offset) for a in committed.aborted_transactions] == [(1000, 0)]
    assert p.fetch(6, 1, version).aborted_transactions == []
    assert p.latest(1) == p.latest(0) == 7


def test_read_committed_long_poll_wakes_when_the_marker_is_flushed(kbroker, topic_name):
    kbroker.create_topic(topic_name)
    p = Partition(kbroker, topic_name)
    p.produce([b"x"], pid=3000)
    waiter = RawClient(kbroker.host, kbroker.port)
    marked_at = []

    def commit_later():
        time.sleep(0.3)
        marked_at.append(time.monotonic())
        p.marker(3000, commit=True)

    thread = threading.Thread(target=commit_later)
    thread.start()
    part = p.fetch(0, 1, max_wait_ms=5000, raw=waiter)
    answered_at = time.monotonic()
    thread.join()
    assert _offsets(part) == [0, 1] and part.last_stable_offset == 2  # data, marker
    assert answered_at - marked_at[0] < 1.0  # woken, not timed out (max wait 5 s)
    waiter.close()


_PLAN = [(11, True), (12, False), (13, True), (11, False), (12, True), (13, False)]


def _history(p: Partition) -> list[bytes]:
    """Interleaved transactional and plain producers; returns the committed values."""
    committed = []
    open_values: dict[int, list[bytes]] = {}
    for round_, (pid, commit) in enumerate(_PLAN * 2):
        for who in (pid, 11 + (pid - 10) % 3):
            values = [b"%d-%d-%d" % (who, round_, i) for i in range(3)]
            p.produce(values, pid=who)
            open_values.setdefault(who, []).extend(values)
        plain_value = b"plain-%d" % round_
        p.produce([plain_value])
        p.marker(pid, commit)
        if commit:
            committed.extend(open_values.get(pid, []))
        open_values[pid] = []
        committed.append(plain_value)
    for pid in sorted(open_values):
        if open_values[pid]:
            p.marker(pid, True)
            committed.extend(open_values[pid])
    return committed


def _consume_confluent(bootstrap, topic, isolation, count):
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "rc", "enable.auto.commit": False,
                         "isolation.level": isolation})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        out, deadline = [], time.monotonic() + 20
        while len(out) < count and time.monotonic() < deadline:
            for m in consumer.consume(100, 0.5):
                assert m.error() is None, m.error()
                out.append((m.offset(), m.value()))
        return out
    finally:
        consumer.close()


def _consume_kafka_python(bootstrap, topic, isolation, count):
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             isolation_level=isolation)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        out, deadline = [], time.monotonic() + 20
        while len(out) < count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                out.extend((r.offset, r.value) for r in records)
        return out
    finally:
        consumer.close()


def _consume_aiokafka(bootstrap, topic, isolation, count):
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def run():
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                    enable_auto_commit=False, isolation_level=isolation)
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            consumer.seek(tp, 0)
            out, deadline = [], time.monotonic() + 20
            while len(out) < count and time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    out.extend((r.offset, r.value) for r in records)
            return out
        finally:
            await consumer.stop()

    return asyncio.run(run())


CONSUMERS = {"confluent": _consume_confluent, "kafka-python": _consume_kafka_python,
             "aiokafka": _consume_aiokafka}


@pytest.mark.parametrize("client", sorted(CONSUMERS))
def test_real_clients_read_committed_see_exactly_the_committed(kbroker, topic_name, client):
    kbroker.create_topic(topic_name)
    p = Partition(kbroker, topic_name)
    committed = _history(p)
    p.produce([b"open"], pid=99)  # left open: read_committed stops before it
    p.produce([b"tail"])
    consume = CONSUMERS[client]
    seen = consume(kbroker.bootstrap_servers, topic_name, "read_committed", len(committed))
    offsets = [o for o, _ in seen]
    assert offsets == sorted(offsets)
    assert sorted(v for _, v in seen) == sorted(committed)  # nothing aborted, nothing open
    everything = consume(kbroker.bootstrap_servers, topic_name, "read_uncommitted", 12 * 7 + 2)
    # Every data record, aborted and open ones included; no control batch.
    assert sorted(v for _, v in everything) == sorted(
        [b"%d-%d-%d" % (who, r, i) for r, (pid, _c) in enumerate(_PLAN * 2)
         for who in (pid, 11 + (pid - 10) % 3) for i in range(3)]
        + [b"plain-%d" % r for r in range(12)] + [b"open", b"tail"])

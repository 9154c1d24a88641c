"""Compaction of Kafka's internal topics is safe (issues 12 and 13 meet here).

A real ``kafkito serve`` (tests/e2e/serve.py) with 100 ms segments (``log.roll.ms``, which
internal topics inherit) and an eager cleaner writes ``__consumer_offsets`` and
``__transaction_state`` through confluent-kafka: plain OffsetCommits, TxnOffsetCommits
(``send_offsets_to_transaction``) of committed and aborted transactions, many transactional
ids each running many transactions. Once the cleaner has cleaned the topic (a cleaner
checkpoint, and fewer records on disk than were written), the broker is restarted, cleanly
and with ``kill -9``, and what the coordinators reload must be exactly what they answered
before: committed offsets (through librdkafka, which asks with ``require_stable``, and a raw
OffsetFetch v7 with require_stable), no aborted offset ever visible, no offset stuck
UNSTABLE_OFFSET_COMMIT; every transactional id's producer id and epoch, a re-init bumping
from it, and a zombie producer still fenced.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest
from e2e.raw import RawClient, commit_offset
from e2e.serve import ServeProcess
from e2e.test_compaction import _wait

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.storage import LogConfig, LogManager

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(120),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

# Segments roll every 100 ms (log.roll.ms applies to internal topics too; their segment.bytes
# floor is 1 MiB) and the cleaner looks every 50 ms at any log with a dirty byte; tombstones
# and markers may go 200 ms after the clean that saw them, so emptied batches appear.
SETTINGS = {"log.roll.ms": 100, "log.cleaner.backoff.ms": 50, "log.cleaner.min.cleanable.ratio": 0.01,
            "log.cleaner.delete.retention.ms": 200, "log.segment.delete.delay.ms": 0,
            "log.retention.check.interval.ms": 200, "group.initial.rebalance.delay.ms": 0,
            "transaction.abort.timed.out.transaction.cleanup.interval.ms": 1000}
SRC, PARTITIONS, GROUP = "src", 4, "g"


def _create(bootstrap: str, topic: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        f.result(10)


def _cleaned(data: Path, topic: str) -> bool:
    return (data / f"{topic}-0" / "cleaner-offset-checkpoint").exists()


def _records_on_disk(data: Path, topic: str) -> tuple[int, int, int]:
    """(data records kept, log end offset, segments) of partition 0, read offline."""
    with LogManager(str(data), LogConfig()) as logs:
        plog = logs.log(topic, 0)
        kept = sum(b.records_count for b in plog.batches() if not b.is_control)
        segments = len([n for n in os.listdir(plog.directory) if n.endswith(".log")])
        return kept, plog.log_end_offset, segments


def _fetch_stable(bootstrap: str, group: str, partitions: int) -> dict[int, tuple[int, int]]:
    """Raw OffsetFetch v7 with require_stable: partition -> (error code, offset)."""
    from kafkito.protocol.messages.offset_fetch import OffsetFetchRequest, OffsetFetchRequestTopic

    host, port = bootstrap.split(":")
    raw = RawClient(host, int(port))
    try:
        request = OffsetFetchRequest(group_id=group, require_stable=True, topics=[
            OffsetFetchRequestTopic(name=SRC, partition_indexes=list(range(partitions)))])
        parts = raw.call(ApiKey.OFFSET_FETCH, 7, request).topics[0].partitions
        return {p.partition_index: (p.error_code, p.committed_offset) for p in parts}
    finally:
        raw.close()


def _assert_offsets(bootstrap: str, expected: dict[int, int]) -> None:
    from confluent_kafka import Consumer, TopicPartition

    # No pending offset may outlive its transaction: stable answers come (at once here, as
    # every transaction has ended; a little patience for the coordinator's start).
    _wait(lambda: all(e == ErrorCode.NONE for e, _ in _fetch_stable(bootstrap, GROUP, PARTITIONS).values()),
          timeout_s=10, what="stable offsets (UNSTABLE_OFFSET_COMMIT stuck?)")
    assert _fetch_stable(bootstrap, GROUP, PARTITIONS) == {p: (ErrorCode.NONE, o) for p, o in expected.items()}
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "isolation.level": "read_committed",
                  "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(SRC, p) for p in range(PARTITIONS)], 10)
    finally:
        c.close()
    assert {tp.partition: tp.offset for tp in got} == expected


class OffsetWriter:
    """Commits offsets of GROUP plainly and in transactions, keeping what must be visible."""

    def __init__(self, bootstrap: str, rng: random.Random) -> None:
        from confluent_kafka import Consumer, Producer

        self.rng = rng
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP,
                                  "enable.auto.commit": False})
        self.producers = [Producer({"bootstrap.servers": bootstrap, "transactional.id": f"offsets-tx-{i}"})
                          for i in range(2)]
        for p in self.producers:
            p.init_transactions(15)
        self.expected: dict[int, int] = {}
        self.next = 1
        self.commits = self.aborts = self.plain = 0

    def _offsets(self):
        from confluent_kafka import TopicPartition

        chosen = self.rng.sample(range(PARTITIONS), self.rng.randint(1, PARTITIONS))
        out = {}
        for p in chosen:
            out[p] = self.next
            self.next += 1
        return out, [TopicPartition(SRC, p, o) for p, o in out.items()]

    def round(self) -> None:
        kind = self.rng.choice(("plain", "commit", "abort"))
        offsets, tps = self._offsets()
        if kind == "plain":
            self.consumer.commit(offsets=tps, asynchronous=False)
            self.expected.update(offsets)
            self.plain += 1
            return
        producer = self.rng.choice(self.producers)
        producer.begin_transaction()
        producer.send_offsets_to_transaction(tps, self.consumer.consumer_group_metadata(), 10)
        if kind == "commit":
            producer.commit_transaction(10)
            self.expected.update(offsets)
            self.commits += 1
        else:
            producer.abort_transaction(10)
            self.aborts += 1

    def close(self) -> None:
        for p in self.producers:
            p.flush(5)
        self.consumer.close()


def _write_offsets(bootstrap: str, rng: random.Random, rounds: int, expected: dict[int, int]) -> OffsetWriter:
    w = OffsetWriter(bootstrap, rng)
    w.expected = dict(expected)
    w.next = max(expected.values(), default=0) + 1
    for i in range(rounds):
        w.round()
        if i % 5 == 4:
            time.sleep(0.11)  # past log.roll.ms: the next write rolls a segment
    w.close()
    assert w.plain and w.commits and w.aborts, (w.plain, w.commits, w.aborts)
    return w


def test_consumer_offsets_compacted_keeps_exactly_the_committed_offsets_through_restarts(tmp_path):
    rng = random.Random(13)
    data = tmp_path / "data"
    data.mkdir()
    broker = ServeProcess(data, SETTINGS, log_dir=tmp_path)
    try:
        _create(broker.bootstrap, SRC, PARTITIONS)
        expected = _write_offsets(broker.bootstrap, rng, 60, {}).expected
        _wait(lambda: _cleaned(data, "__consumer_offsets"), what="a clean of __consumer_offsets")
        time.sleep(1.0)  # more cleans: past the delete horizon, markers and emptied batches go
        _assert_offsets(broker.bootstrap, expected)
        assert broker.stop() == 0
        kept, end, segments = _records_on_disk(data, "__consumer_offsets")
        assert kept < end / 2, (kept, end)  # the cleaner removed superseded commits
        broker = ServeProcess(data, SETTINGS, log_dir=tmp_path)
        _assert_offsets(broker.bootstrap, expected)
        # More of both, cleaned again, then kill -9.
        expected = _write_offsets(broker.bootstrap, rng, 40, expected).expected
        time.sleep(1.0)
        _assert_offsets(broker.bootstrap, expected)
        assert broker.stop(signal.SIGKILL) == -signal.SIGKILL
        broker = ServeProcess(data, SETTINGS, log_dir=tmp_path)
        _assert_offsets(broker.bootstrap, expected)
        assert broker.stop() == 0
        kept, end, segments = _records_on_disk(data, "__consumer_offsets")
        assert kept < end / 2, (kept, end)
    finally:
        broker.__exit__(None, None, None)


# ------------------------------------------------------------------ __transaction_state
TIDS = 12


def _describe(bootstrap: str, tids: list[str]) -> dict[str, tuple[str, int, int]]:
    """DescribeTransactions: tid -> (state, producer id, epoch)."""
    from kafkito.protocol.messages.describe_transactions import DescribeTransactionsRequest

    host, port = bootstrap.split(":")
    raw = RawClient(host, int(port))
    try:
        states = raw.call(ApiKey.DESCRIBE_TRANSACTIONS, 0,
                          DescribeTransactionsRequest(transactional_ids=tids)).transaction_states
    finally:
        raw.close()
    assert all(s.error_code == ErrorCode.NONE for s in states), states
    return {s.transactional_id: (s.transaction_state, s.producer_id, s.producer_epoch) for s in states}


def _add_partition(bootstrap: str, tid: str, pid: int, epoch: int) -> int:
    """AddPartitionsToTxn v3 of out-0 as producer (pid, epoch): the partition's error code."""
    from kafkito.protocol.messages.add_partitions_to_txn import AddPartitionsToTxnRequest, AddPartitionsToTxnTopic

    host, port = bootstrap.split(":")
    raw = RawClient(host, int(port))
    try:
        request = AddPartitionsToTxnRequest(
            transactions=[], v3_and_below_transactional_id=tid, v3_and_below_producer_id=pid,
            v3_and_below_producer_epoch=epoch,
            v3_and_below_topics=[AddPartitionsToTxnTopic(name="out", partitions=[0])])
        response = raw.call(ApiKey.ADD_PARTITIONS_TO_TXN, 3, request)
        return response.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
    finally:
        raw.close()


def _run_transactions(bootstrap: str, rng: random.Random, tids: list[str], rounds: int) -> dict:
    from confluent_kafka import Producer

    producers = {}
    for tid in tids:
        p = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid, "linger.ms": 1})
        p.init_transactions(15)
        producers[tid] = p
    for i in range(rounds):
        for tid, p in producers.items():
            p.begin_transaction()
            p.produce("out", b"%s-%d" % (tid.encode(), i))
            if rng.random() < 0.7:
                p.commit_transaction(10)
            else:
                p.abort_transaction(10)
        time.sleep(0.11)  # roll __transaction_state's segment
    return producers


def test_transaction_state_compacted_reloads_every_id_and_still_fences_zombies(tmp_path):
    from confluent_kafka import Producer

    rng = random.Random(12)
    data = tmp_path / "data"
    data.mkdir()
    tids = [f"tx-{i}" for i in range(TIDS)]
    broker = ServeProcess(data, SETTINGS, log_dir=tmp_path)
    try:
        _create(broker.bootstrap, "out", 1)
        zombies = _run_transactions(broker.bootstrap, rng, tids, 8)
        _wait(lambda: _cleaned(data, "__transaction_state"), what="a clean of __transaction_state")
        time.sleep(1.0)
        before = _describe(broker.bootstrap, tids)
        assert {s for s, _, _ in before.values()} <= {"CompleteCommit", "CompleteAbort"}, before
        assert len({pid for _, pid, _ in before.values()}) == TIDS  # one producer id each
        assert broker.stop() == 0
        kept, end, _ = _records_on_disk(data, "__transaction_state")
        assert kept < end / 2, (kept, end)
        broker = ServeProcess(data, SETTINGS, log_dir=tmp_path)
        assert _describe(broker.bootstrap, tids) == before
        assert broker.stop(signal.SIGKILL) == -signal.SIGKILL
        broker = ServeProcess(data, SETTINGS, log_dir=tmp_path)
        assert _describe(broker.bootstrap, tids) == before
        # A re-init bumps each id's epoch from the reloaded one, keeping its producer id.
        fresh = {}
        for tid in tids[:4]:
            p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": tid})
            p.init_transactions(15)
            fresh[tid] = p
        after = _describe(broker.bootstrap, tids[:4])
        for tid in tids[:4]:
            _, pid, epoch = before[tid]
            assert after[tid][1:] == (pid, epoch + 1), (tid, before[tid], after[tid])
        # The old incarnation (a zombie: the pre-restart producer id and epoch) is fenced.
        # (librdkafka's own zombie would still dial the old broker's port: raw wire instead.)
        for tid in tids[:4]:
            _, pid, epoch = before[tid]
            assert _add_partition(broker.bootstrap, tid, pid, epoch) == ErrorCode.PRODUCER_FENCED, tid
        _, pid, epoch = before[tids[0]]  # and the check can pass: the current epoch is accepted
        assert _add_partition(broker.bootstrap, tids[0], pid, epoch + 1) == ErrorCode.NONE
        p = fresh[tids[1]]  # the new incarnation works (tx-0's transaction is the raw one above)
        p.begin_transaction()
        p.produce("out", b"fresh")
        p.commit_transaction(10)
    finally:
        broker.__exit__(None, None, None)


def test_plain_commit_inside_a_transactions_window_wins_before_and_after_compaction(tmp_path):
    """The bug this file found: TxnOffsetCommit(10), then a plain OffsetCommit(20) of the
    same partition, then the transaction's COMMIT. The plain record is the later one of its
    key; the cleaner drops the transactional record, so after a clean and a restart 20 was
    served, while before the clean the live coordinator served 10."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    data = tmp_path / "data"
    data.mkdir()
    broker = ServeProcess(data, SETTINGS, log_dir=tmp_path)
    try:
        _create(broker.bootstrap, SRC, PARTITIONS)
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": GROUP, "enable.auto.commit": False})
        producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "window"})
        producer.init_transactions(15)
        expected = {p: -1001 for p in range(PARTITIONS)}  # librdkafka's "no offset"
        for p in range(PARTITIONS):
            producer.begin_transaction()
            producer.send_offsets_to_transaction([TopicPartition(SRC, p, 10)],
                                                 consumer.consumer_group_metadata(), 10)
            consumer.commit(offsets=[TopicPartition(SRC, p, 20)], asynchronous=False)
            producer.commit_transaction(10)
            expected[p] = 20
            time.sleep(0.11)  # roll: the next write makes these cleanable
        host, port = broker.bootstrap.split(":")
        raw = RawClient(host, int(port))
        assert commit_offset(raw, "another-group", SRC, 0, 1) == ErrorCode.NONE  # the roll
        raw.close()
        consumer.close()
        _assert_offsets(broker.bootstrap, expected)  # live
        _wait(lambda: _cleaned(data, "__consumer_offsets"), what="a clean of __consumer_offsets")
        time.sleep(0.5)
        assert broker.stop() == 0
        broker = ServeProcess(data, SETTINGS, log_dir=tmp_path)
        _assert_offsets(broker.bootstrap, expected)  # compacted and reloaded
    finally:
        broker.__exit__(None, None, None)

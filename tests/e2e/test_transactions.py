"""Transactions end to end with real clients (issue 12): the coordinator's half.

Every transactional producer here is a real client (confluent-kafka, kafka-python,
aiokafka) against a real broker; what read_committed and read_uncommitted consumers see
is the oracle. The coordinator's admin APIs and OffsetFetch(require_stable) are checked on
the wire.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from e2e.raw import RawClient
from kafkito.protocol import ErrorCode
from kafkito.protocol.messages.describe_producers import DescribeProducersRequest, TopicRequest
from kafkito.protocol.messages.describe_transactions import DescribeTransactionsRequest
from kafkito.protocol.messages.list_transactions import ListTransactionsRequest
from kafkito.protocol.messages.offset_fetch import OffsetFetchRequest, OffsetFetchRequestTopic
from kafkito.testing import broker as embedded_broker

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SETTINGS = {
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": "200",
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "500",
}


@pytest.fixture(scope="module")
def tbroker(tmp_path_factory):
    with embedded_broker(tmp_path_factory.mktemp("kafkito-txn"), settings=SETTINGS) as running:
        yield running


def _create(bootstrap: str, topic: str, partitions: int = 1) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})  # alive until the futures are done
    for f in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        f.result(10)


def consume(bootstrap: str, topic: str, isolation: str, *, partition: int = 0, expect: int | None = None,
            wait_s: float = 3.0) -> list[tuple[int, bytes]]:
    """(offset, value) of every record a confluent consumer at ``isolation`` reads, stopping
    at ``expect`` records or after ``wait_s`` of nothing new."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{time.monotonic_ns()}",
                  "isolation.level": isolation, "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, partition, 0)])
    out: list[tuple[int, bytes]] = []
    quiet_until = time.monotonic() + wait_s
    try:
        while time.monotonic() < quiet_until and (expect is None or len(out) < expect):
            m = c.poll(0.1)
            if m is not None and not m.error():
                out.append((m.offset(), m.value()))
                quiet_until = time.monotonic() + wait_s
    finally:
        c.close()
    return out


def values(rows) -> list[bytes]:
    return [v for _, v in rows]


# -- one transactional script, in each client's words --------------------------------------
def _script_confluent(bootstrap, topic, tid):
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid})
    p.init_transactions(10)
    p.begin_transaction()
    p.produce(topic, b"c1")
    p.produce(topic, b"c2")
    p.commit_transaction(10)
    p.begin_transaction()
    p.produce(topic, b"a1")
    p.flush(10)  # on the broker before the abort (librdkafka drops unsent messages)
    p.abort_transaction(10)
    p.begin_transaction()
    p.produce(topic, b"c3")
    p.commit_transaction(10)


def _script_kafka_python(bootstrap, topic, tid):
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=tid)
    p.init_transactions()
    p.begin_transaction()
    p.send(topic, b"c1")
    p.send(topic, b"c2")
    p.commit_transaction()
    p.begin_transaction()
    p.send(topic, b"a1").get(10)
    p.abort_transaction()
    p.begin_transaction()
    p.send(topic, b"c3")
    p.commit_transaction()
    p.close()


def _script_aiokafka(bootstrap, topic, tid):
    from aiokafka import AIOKafkaProducer

    async def run():
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=tid)
        await p.start()
        try:
            async with p.transaction():
                await p.send(topic, b"c1")
                await p.send(topic, b"c2")
            await p.begin_transaction()
            await (await p.send(topic, b"a1"))
            await p.abort_transaction()
            async with p.transaction():
                await p.send(topic, b"c3")
        finally:
            await p.stop()

    asyncio.run(run())


SCRIPTS = {"confluent": _script_confluent, "kafka-python": _script_kafka_python, "aiokafka": _script_aiokafka}


@pytest.mark.parametrize("client", sorted(SCRIPTS))
def test_commit_is_visible_and_abort_is_not_to_read_committed(tbroker, topic_name, client):
    bs = tbroker.bootstrap_servers
    _create(bs, topic_name)
    SCRIPTS[client](bs, topic_name, f"tx-{topic_name}")
    assert values(consume(bs, topic_name, "read_committed", expect=3)) == [b"c1", b"c2", b"c3"]
    assert values(consume(bs, topic_name, "read_uncommitted", expect=4)) == [b"c1", b"c2", b"a1", b"c3"]


def test_interleaved_transactional_and_plain_producers(tbroker, topic_name):
    """One partition, a transactional and a plain producer taking turns (a transaction
    open while plain records land after its first one): read_committed sees exactly the
    committed and the plain records, in offset order."""
    from confluent_kafka import Producer

    bs = tbroker.bootstrap_servers
    _create(bs, topic_name)
    txp = Producer({"bootstrap.servers": bs, "transactional.id": f"tx-{topic_name}", "linger.ms": 0})
    plain = Producer({"bootstrap.servers": bs, "linger.ms": 0, "enable.idempotence": True})
    txp.init_transactions(10)
    kept: set[bytes] = set()
    for i in range(6):
        txp.begin_transaction()
        txp.produce(topic_name, f"tx{i}-a".encode())
        txp.flush(10)
        plain.produce(topic_name, f"plain{i}".encode())
        plain.flush(10)
        txp.produce(topic_name, f"tx{i}-b".encode())
        txp.flush(10)
        kept.add(f"plain{i}".encode())
        if i % 3 == 1:
            txp.abort_transaction(10)
        else:
            txp.commit_transaction(10)
            kept |= {f"tx{i}-a".encode(), f"tx{i}-b".encode()}
    everything = consume(bs, topic_name, "read_uncommitted", expect=18)
    assert len(everything) == 18
    committed = consume(bs, topic_name, "read_committed", expect=len(kept))
    assert committed == [(o, v) for o, v in everything if v in kept]


def test_zombie_with_an_old_epoch_is_fenced(tbroker, topic_name):
    from confluent_kafka import KafkaException, Producer

    bs = tbroker.bootstrap_servers
    _create(bs, topic_name)
    tid = f"tx-{topic_name}"
    zombie = Producer({"bootstrap.servers": bs, "transactional.id": tid})
    zombie.init_transactions(10)
    zombie.begin_transaction()
    zombie.produce(topic_name, b"zombie")
    zombie.flush(10)
    # a new incarnation: its init aborts the zombie's open transaction and fences its epoch
    fresh = Producer({"bootstrap.servers": bs, "transactional.id": tid})
    fresh.init_transactions(10)
    with pytest.raises(KafkaException) as info:
        zombie.commit_transaction(10)
    assert info.value.args[0].fatal() or "fenced" in str(info.value).lower()
    fresh.begin_transaction()
    fresh.produce(topic_name, b"fresh")
    fresh.commit_transaction(10)
    assert values(consume(bs, topic_name, "read_committed", expect=1)) == [b"fresh"]
    assert values(consume(bs, topic_name, "read_uncommitted", expect=2)) == [b"zombie", b"fresh"]


def _describe(bs: str, tid: str):
    host, port = bs.split(":")
    raw = RawClient(host, int(port))
    try:
        (state,) = raw.call(65, 0, DescribeTransactionsRequest(transactional_ids=[tid])).transaction_states
        return state
    finally:
        raw.close()


def test_transaction_left_open_past_its_timeout_is_aborted(tbroker, topic_name):
    from confluent_kafka import KafkaException, Producer

    bs = tbroker.bootstrap_servers
    _create(bs, topic_name)
    tid = f"tx-{topic_name}"
    p = Producer({"bootstrap.servers": bs, "transactional.id": tid, "transaction.timeout.ms": 1500})
    p.init_transactions(10)
    p.begin_transaction()
    p.produce(topic_name, b"left-open")
    p.flush(10)
    assert _describe(bs, tid).transaction_state == "Ongoing"
    deadline = time.monotonic() + 10
    while _describe(bs, tid).transaction_state != "CompleteAbort":
        assert time.monotonic() < deadline, "the coordinator never aborted the timed-out transaction"
        time.sleep(0.1)
    with pytest.raises(KafkaException):
        p.commit_transaction(10)
    # the partition's last stable offset moved past the aborted transaction
    from confluent_kafka import Producer as Plain

    plain = Plain({"bootstrap.servers": bs})
    plain.produce(topic_name, b"after")
    plain.flush(10)
    assert values(consume(bs, topic_name, "read_committed", expect=1)) == [b"after"]


def test_admin_apis_describe_list_and_producers(tbroker, topic_name):
    from confluent_kafka import Producer

    bs = tbroker.bootstrap_servers
    _create(bs, topic_name)
    tid = f"tx-{topic_name}"
    p = Producer({"bootstrap.servers": bs, "transactional.id": tid})
    p.init_transactions(10)
    p.begin_transaction()
    p.produce(topic_name, b"x")
    p.flush(10)
    host, port = bs.split(":")
    raw = RawClient(host, int(port))
    try:
        d = _describe(bs, tid)
        assert (d.error_code, d.transaction_state) == (ErrorCode.NONE, "Ongoing")
        assert [(t.topic, list(t.partitions)) for t in d.topics] == [(topic_name, [0])]
        listed = raw.call(66, 1, ListTransactionsRequest(state_filters=["Ongoing"], producer_id_filters=[]))
        assert tid in [s.transactional_id for s in listed.transaction_states]
        by_pid = raw.call(66, 0, ListTransactionsRequest(state_filters=[], producer_id_filters=[d.producer_id]))
        assert [s.transactional_id for s in by_pid.transaction_states] == [tid]
        bogus = raw.call(66, 0, ListTransactionsRequest(state_filters=["Nope"], producer_id_filters=[]))
        assert list(bogus.unknown_state_filters) == ["Nope"] and not bogus.transaction_states
        (topic,) = raw.call(61, 0, DescribeProducersRequest(
            topics=[TopicRequest(name=topic_name, partition_indexes=[0])])).topics
        (producer,) = topic.partitions[0].active_producers
        assert (producer.producer_id, producer.current_txn_start_offset) == (d.producer_id, 0)
        p.commit_transaction(10)
        assert _describe(bs, tid).transaction_state == "CompleteCommit"
        (topic,) = raw.call(61, 0, DescribeProducersRequest(
            topics=[TopicRequest(name=topic_name, partition_indexes=[0])])).topics
        assert topic.partitions[0].active_producers[0].current_txn_start_offset == -1
    finally:
        raw.close()


class _OffsetsInTxn:
    """One client's producer with begin / send_offsets / commit / abort (each a step)."""

    def __init__(self, client: str, bs: str, tid: str, topic: str, group: str) -> None:
        self.client, self.topic, self.group = client, topic, group
        if client == "confluent":
            from confluent_kafka import Consumer, Producer

            self.consumer = Consumer({"bootstrap.servers": bs, "group.id": group, "enable.auto.commit": False})
            self.p = Producer({"bootstrap.servers": bs, "transactional.id": tid})
            self.p.init_transactions(10)
        elif client == "kafka-python":
            from kafka import KafkaProducer

            self.p = KafkaProducer(bootstrap_servers=bs, transactional_id=tid)
            self.p.init_transactions()
        else:
            from aiokafka import AIOKafkaProducer

            self.loop = asyncio.new_event_loop()

            async def start():
                p = AIOKafkaProducer(bootstrap_servers=bs, transactional_id=tid)
                await p.start()
                return p

            self.p = self.loop.run_until_complete(start())

    def step(self, what: str, offset: int = 0) -> None:
        if self.client == "confluent":
            from confluent_kafka import TopicPartition

            if what == "begin":
                self.p.begin_transaction()
                self.p.produce(self.topic, b"out")
            elif what == "offsets":
                self.p.send_offsets_to_transaction([TopicPartition(self.topic, 0, offset)],
                                                   self.consumer.consumer_group_metadata(), 10)
            else:
                getattr(self.p, f"{what}_transaction")(10)
        elif self.client == "kafka-python":
            from kafka import TopicPartition
            from kafka.structs import OffsetAndMetadata

            if what == "begin":
                self.p.begin_transaction()
                self.p.send(self.topic, b"out").get(10)
            elif what == "offsets":
                self.p.send_offsets_to_transaction(
                    {TopicPartition(self.topic, 0): OffsetAndMetadata(offset, "", -1)}, self.group)
            else:
                getattr(self.p, f"{what}_transaction")()
        else:
            from aiokafka.structs import TopicPartition

            async def run():
                if what == "begin":
                    await self.p.begin_transaction()
                    await (await self.p.send(self.topic, b"out"))
                elif what == "offsets":
                    await self.p.send_offsets_to_transaction({TopicPartition(self.topic, 0): offset}, self.group)
                else:
                    await getattr(self.p, f"{what}_transaction")()

            self.loop.run_until_complete(run())

    def close(self) -> None:
        if self.client == "confluent":
            self.consumer.close()
        elif self.client == "kafka-python":
            self.p.close()
        else:
            self.loop.run_until_complete(self.p.stop())
            self.loop.close()


@pytest.mark.parametrize("client", sorted(SCRIPTS))
def test_send_offsets_to_transaction_pending_until_commit(tbroker, topic_name, client):
    """TxnOffsetCommit's offsets are invisible until the commit; OffsetFetch with
    require_stable answers UNSTABLE_OFFSET_COMMIT meanwhile; an abort drops them."""
    bs = tbroker.bootstrap_servers
    _create(bs, topic_name)
    group = f"g-{topic_name}"
    producer = _OffsetsInTxn(client, bs, f"tx-{topic_name}", topic_name, group)
    host, port = bs.split(":")
    raw = RawClient(host, int(port))

    def fetch(require_stable: bool):
        r = raw.call(9, 7, OffsetFetchRequest(group_id=group, require_stable=require_stable, topics=[
            OffsetFetchRequestTopic(name=topic_name, partition_indexes=[0])]))
        part = r.topics[0].partitions[0]
        return part.error_code, part.committed_offset

    try:
        for offset, end in ((5, "abort"), (7, "commit")):
            producer.step("begin")
            producer.step("offsets", offset)
            assert fetch(True) == (ErrorCode.UNSTABLE_OFFSET_COMMIT, -1)
            assert fetch(False) == (ErrorCode.NONE, -1)  # the committed offset: none yet
            producer.step(end)
        assert fetch(True) == (ErrorCode.NONE, 7)
    finally:
        raw.close()
        producer.close()


def test_restart_in_prepare_commit_completes_the_commit(tmp_path):
    """A broker that stopped after PrepareCommit was durable but before any marker was
    written (simulated: the record is appended to __transaction_state offline) writes the
    COMMIT markers at start, so read_committed then sees the transaction's records."""
    from confluent_kafka import Producer

    from kafkito.broker.config import load_config, log_config_from
    from kafkito.broker.txn.records import TxnState, decode_record, encode_record
    from kafkito.records.batch import build_batch
    from kafkito.storage import LogManager

    tid, topic = "restart-tx", "restart-topic"
    with embedded_broker(tmp_path) as b:
        bs = b.bootstrap_servers
        _create(bs, topic)
        p = Producer({"bootstrap.servers": bs, "transactional.id": tid})
        p.init_transactions(10)
        p.begin_transaction()
        p.produce(topic, b"r1")
        p.produce(topic, b"r2")
        p.flush(10)
        assert consume(bs, topic, "read_committed", wait_s=1) == []
    # offline: the coordinator's next step, PrepareCommit, made durable
    config = load_config(environ={}, overrides=[("log.dirs", str(tmp_path))])
    logs = LogManager(str(tmp_path), log_config_from(config))
    logs.startup()
    try:
        plog = logs.log("__transaction_state", 0)
        last = None
        for batch in plog.batches():
            for record in batch.records():
                decoded = decode_record(record.key, record.value)
                if decoded is not None and decoded[0] == tid:
                    last = decoded[1]
        assert last is not None and last.state == TxnState.ONGOING
        key, value = encode_record(last.replace(state=TxnState.PREPARE_COMMIT), tid)
        plog.append(build_batch([(key, value, None, last.last_update_ms)]), last.last_update_ms)
        plog.flush()
    finally:
        logs.shutdown()
    with embedded_broker(tmp_path) as b:
        bs = b.bootstrap_servers
        assert values(consume(bs, topic, "read_committed", expect=2)) == [b"r1", b"r2"]
        assert _describe(bs, tid).transaction_state == "CompleteCommit"

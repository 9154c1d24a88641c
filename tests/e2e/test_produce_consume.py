"""Real clients produce to and consume from a running kafkito, byte for byte.

Every test runs with confluent-kafka (librdkafka), kafka-python and aiokafka, and
checks what comes back: keys, values, headers, offsets, timestamps.
"""

from __future__ import annotations

import time

import pytest
from e2e.clients import CLIENTS, CODECS, CONSUMERS, PRODUCERS, Msg

pytestmark = pytest.mark.e2e


def _messages(n: int, prefix: str, partitions: int = 1) -> list[Msg]:
    out = []
    # kafka-python refuses null header values on send; the others send them.
    null_header = [("null", None)] if prefix != "kafka-python" else []
    for i in range(n):
        key = None if i % 5 == 4 else f"{prefix}-key-{i}".encode()
        value = None if i % 7 == 6 else (f"{prefix}-value-{i}-".encode() + bytes(range(256)) * (i % 3))
        headers = [("h1", f"v{i}".encode()), ("empty", b"")] + null_header if i % 2 == 0 else []
        out.append(Msg(key, value, headers, partition=i % partitions))
    return out


def _check_round_trip(sent: list[Msg], offsets: list[int], seen, partition: int) -> None:
    expected = [(o, m) for o, m in zip(offsets, sent) if m.partition == partition]
    assert [s.offset for s in seen] == [o for o, _ in expected]
    for s, (_, m) in zip(seen, expected):
        assert s.partition == partition
        assert s.key == m.key
        assert s.value == m.value
        assert s.headers == m.headers


@pytest.mark.parametrize("producer", CLIENTS)
@pytest.mark.parametrize("consumer", CLIENTS)
def test_round_trip_keys_values_headers(kbroker, topic_name, producer, consumer):
    kbroker.create_topic(topic_name, partitions=2)
    sent = _messages(30, producer, partitions=2)
    offsets = PRODUCERS[producer](kbroker.bootstrap_servers, topic_name, sent)
    # Offsets are dense per partition, in send order.
    for p in (0, 1):
        assert [o for o, m in zip(offsets, sent) if m.partition == p] == list(range(15))
    for p in (0, 1):
        seen = CONSUMERS[consumer](kbroker.bootstrap_servers, topic_name, p, 0, 15)
        _check_round_trip(sent, offsets, seen, p)


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("client", CLIENTS)
def test_compression_codecs(kbroker, topic_name, client, codec):
    kbroker.create_topic(topic_name)
    sent = [Msg(f"k{i}".encode(), (b"compressible %d " % i) * 50) for i in range(40)]
    offsets = PRODUCERS[client](kbroker.bootstrap_servers, topic_name, sent, compression=codec)
    assert offsets == list(range(40))
    # Read back with a different client than the producer, from the middle of a batch.
    reader = CLIENTS[(CLIENTS.index(client) + 1) % len(CLIENTS)]
    seen = CONSUMERS[reader](kbroker.bootstrap_servers, topic_name, 0, 13, 27)
    assert [s.offset for s in seen] == list(range(13, 40))
    assert [s.value for s in seen] == [m.value for m in sent[13:]]
    assert [s.key for s in seen] == [m.key for m in sent[13:]]


@pytest.mark.parametrize("acks", ["0", "1", "all"])
@pytest.mark.parametrize("client", CLIENTS)
def test_acks(kbroker, topic_name, client, acks):
    kbroker.create_topic(topic_name)
    sent = [Msg(b"k", f"acks-{acks}-{i}".encode()) for i in range(10)]
    PRODUCERS[client](kbroker.bootstrap_servers, topic_name, sent, acks=acks)
    seen = CONSUMERS["confluent"](kbroker.bootstrap_servers, topic_name, 0, 0, 10)
    assert [s.value for s in seen] == [m.value for m in sent]
    assert [s.offset for s in seen] == list(range(10))


@pytest.mark.parametrize("client", CLIENTS)
def test_900kb_message(kbroker, topic_name, client):
    kbroker.create_topic(topic_name)
    big = bytes(range(256)) * (900 * 1024 // 256)
    sent = [Msg(b"big", big), Msg(b"small", b"after")]
    offsets = PRODUCERS[client](kbroker.bootstrap_servers, topic_name, sent)
    assert offsets == [0, 1]
    seen = CONSUMERS[client](kbroker.bootstrap_servers, topic_name, 0, 0, 2)
    assert [len(s.value) for s in seen] == [len(big), 5]
    assert seen[0].value == big


def test_64_partitions(kbroker, topic_name):
    kbroker.create_topic(topic_name, partitions=64)
    sent = [Msg(f"k{i}".encode(), f"v{i}".encode(), partition=i % 64) for i in range(256)]
    offsets = PRODUCERS["confluent"](kbroker.bootstrap_servers, topic_name, sent)
    assert sorted(set(offsets)) == [0, 1, 2, 3]
    for client in CLIENTS:
        for p in (0, 31, 63):
            seen = CONSUMERS[client](kbroker.bootstrap_servers, topic_name, p, 0, 4)
            assert [s.value for s in seen] == [m.value for m in sent if m.partition == p]


def test_metadata_lists_broker_and_topic(kbroker, topic_name):
    from confluent_kafka.admin import AdminClient
    from kafka import KafkaConsumer

    kbroker.create_topic(topic_name, partitions=3)
    md = AdminClient({"bootstrap.servers": kbroker.bootstrap_servers}).list_topics(timeout=10)
    assert [(b.id, b.host, b.port) for b in md.brokers.values()] == [(0, "127.0.0.1", kbroker.port)]
    assert sorted(md.topics[topic_name].partitions) == [0, 1, 2]
    assert all(p.leader == 0 and p.replicas == [0] for p in md.topics[topic_name].partitions.values())
    consumer = KafkaConsumer(bootstrap_servers=kbroker.bootstrap_servers)
    try:
        assert consumer.partitions_for_topic(topic_name) == {0, 1, 2}
    finally:
        consumer.close()


def test_auto_create_on_metadata(kbroker, topic_name):
    offsets = PRODUCERS["kafka-python"](kbroker.bootstrap_servers, topic_name, [Msg(b"k", b"v")])
    assert offsets == [0]
    seen = CONSUMERS["aiokafka"](kbroker.bootstrap_servers, topic_name, 0, 0, 1)
    assert [s.value for s in seen] == [b"v"]


def test_list_offsets_earliest_latest_by_time(kbroker, topic_name):
    from confluent_kafka import Consumer, TopicPartition

    kbroker.create_topic(topic_name)
    base = int(time.time() * 1000) - 60_000
    sent = [Msg(b"k", f"v{i}".encode(), timestamp_ms=base + i * 1000) for i in range(10)]
    PRODUCERS["confluent"](kbroker.bootstrap_servers, topic_name, sent)
    consumer = Consumer({"bootstrap.servers": kbroker.bootstrap_servers, "group.id": "lo"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=10)
        assert (low, high) == (0, 10)
        found = consumer.offsets_for_times([TopicPartition(topic_name, 0, base + 4500)], timeout=10)
        assert found[0].offset == 5
        after = consumer.offsets_for_times([TopicPartition(topic_name, 0, base + 999_999)], timeout=10)
        assert after[0].offset == -1
    finally:
        consumer.close()

    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP

    kc = KafkaConsumer(bootstrap_servers=kbroker.bootstrap_servers)
    try:
        tp = KTP(topic_name, 0)
        assert kc.beginning_offsets([tp]) == {tp: 0}
        assert kc.end_offsets([tp]) == {tp: 10}
        found = kc.offsets_for_times({tp: base + 2000})
        assert found[tp].offset == 2 and found[tp].timestamp == base + 2000
    finally:
        kc.close()


def test_long_poll_wakes_on_append(kbroker, topic_name):
    """A waiting fetch returns as soon as data arrives, not at max.wait.ms."""
    import threading

    from confluent_kafka import Consumer, TopicPartition

    kbroker.create_topic(topic_name)
    consumer = Consumer({"bootstrap.servers": kbroker.bootstrap_servers, "group.id": "lp",
                         "fetch.wait.max.ms": 5000, "fetch.min.bytes": 1})
    try:
        consumer.assign([TopicPartition(topic_name, 0, 0)])
        assert consumer.consume(1, 1.0) == []  # the consumer is now parked in a long poll
        sent_at = []

        def produce_later():
            time.sleep(0.3)
            sent_at.append(time.monotonic())
            PRODUCERS["confluent"](kbroker.bootstrap_servers, topic_name, [Msg(b"k", b"wake")], acks="1")

        thread = threading.Thread(target=produce_later)
        thread.start()
        got = consumer.consume(1, 10.0)
        received_at = time.monotonic()
        thread.join()
        assert [m.value() for m in got] == [b"wake"]
        # The producer's own round trip is in here too; max.wait.ms is 5 s.
        assert received_at - sent_at[0] < 1.0
    finally:
        consumer.close()

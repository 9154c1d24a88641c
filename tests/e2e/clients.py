"""Thin drivers over the three real clients, so one test body checks all of them alike.

Each driver produces a list of messages to a topic (returning the offsets the broker
acknowledged) and consumes a partition from an offset with explicit assignment (no
group), returning what the client saw. Assertions stay in the tests.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")


@dataclass
class Msg:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    partition: int = 0
    timestamp_ms: int | None = None


@dataclass
class Seen:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    timestamp_ms: int


def _norm_headers(headers) -> list[tuple[str, bytes | None]]:
    return [(k if isinstance(k, str) else k.decode(), v) for k, v in (headers or [])]


# -- confluent-kafka (librdkafka) ---------------------------------------------------------
def confluent_produce(bootstrap: str, topic: str, msgs: list[Msg], *, acks="all", compression="none",
                      extra: dict | None = None) -> list[int]:
    from confluent_kafka import Producer

    conf = {"bootstrap.servers": bootstrap, "acks": str(acks), "compression.type": compression,
            "linger.ms": 5, "message.max.bytes": 2_000_000}
    conf.update(extra or {})
    producer = Producer(conf)
    offsets: list[int | None] = [None] * len(msgs)
    errors = []

    def report(i):
        def cb(err, msg):
            if err is not None:
                errors.append(err)
            else:
                offsets[i] = msg.offset()
        return cb

    for i, m in enumerate(msgs):
        kwargs = {"partition": m.partition, "on_delivery": report(i)}
        if m.headers:
            kwargs["headers"] = m.headers
        if m.timestamp_ms is not None:
            kwargs["timestamp"] = m.timestamp_ms
        producer.produce(topic, value=m.value, key=m.key, **kwargs)
        producer.poll(0)
    remaining = producer.flush(30)
    assert remaining == 0, f"{remaining} messages not delivered"
    assert not errors, errors
    return offsets


def confluent_consume(bootstrap: str, topic: str, partition: int, offset: int, count: int,
                      timeout_s: float = 20) -> list[Seen]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "e2e-assign-only",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "fetch.message.max.bytes": 2_000_000})
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        out: list[Seen] = []
        deadline = time.monotonic() + timeout_s
        while len(out) < count and time.monotonic() < deadline:
            for m in consumer.consume(count - len(out), 0.5):
                assert m.error() is None, m.error()
                out.append(Seen(m.partition(), m.offset(), m.key(), m.value(),
                                _norm_headers(m.headers()), m.timestamp()[1]))
        return out
    finally:
        consumer.close()


# -- kafka-python -------------------------------------------------------------------------
def kafka_python_produce(bootstrap: str, topic: str, msgs: list[Msg], *, acks="all", compression="none",
                         extra: dict | None = None) -> list[int]:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=acks if acks == "all" else int(acks),
                             compression_type=None if compression == "none" else compression,
                             linger_ms=5, max_request_size=2_000_000, **(extra or {}))
    try:
        futures = [producer.send(topic, value=m.value, key=m.key, headers=m.headers or None,
                                 partition=m.partition, timestamp_ms=m.timestamp_ms) for m in msgs]
        producer.flush(30)
        return [f.get(timeout=30).offset for f in futures]
    finally:
        producer.close(5)


def kafka_python_consume(bootstrap: str, topic: str, partition: int, offset: int, count: int,
                         timeout_s: float = 20) -> list[Seen]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", max_partition_fetch_bytes=2_000_000)
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        out: list[Seen] = []
        deadline = time.monotonic() + timeout_s
        while len(out) < count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for r in records:
                    out.append(Seen(r.partition, r.offset, r.key, r.value, _norm_headers(r.headers), r.timestamp))
        return out
    finally:
        consumer.close()


# -- aiokafka -----------------------------------------------------------------------------
def aiokafka_produce(bootstrap: str, topic: str, msgs: list[Msg], *, acks="all", compression="none",
                     extra: dict | None = None) -> list[int]:
    from aiokafka import AIOKafkaProducer

    async def run():
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=acks if acks == "all" else int(acks),
                                    compression_type=None if compression == "none" else compression,
                                    linger_ms=5, max_request_size=2_000_000, **(extra or {}))
        await producer.start()
        try:
            futures = [await producer.send(topic, value=m.value, key=m.key, headers=m.headers or None,
                                           partition=m.partition, timestamp_ms=m.timestamp_ms) for m in msgs]
            return [None if (r := await f) is None else r.offset for f in futures]
        finally:
            await producer.stop()

    return asyncio.run(run())


def aiokafka_consume(bootstrap: str, topic: str, partition: int, offset: int, count: int,
                     timeout_s: float = 20) -> list[Seen]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def run():
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest", max_partition_fetch_bytes=2_000_000)
        await consumer.start()
        try:
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            consumer.seek(tp, offset)
            out: list[Seen] = []
            deadline = time.monotonic() + timeout_s
            while len(out) < count and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for r in records:
                        out.append(Seen(r.partition, r.offset, r.key, r.value,
                                        _norm_headers(r.headers), r.timestamp))
            return out
        finally:
            await consumer.stop()

    return asyncio.run(run())


PRODUCERS = {"confluent": confluent_produce, "kafka-python": kafka_python_produce, "aiokafka": aiokafka_produce}
CONSUMERS = {"confluent": confluent_consume, "kafka-python": kafka_python_consume, "aiokafka": aiokafka_consume}
CLIENTS = tuple(PRODUCERS)

"""Interoperability: kafkito's client and the real clients read each other's records byte
for byte, and the same keys land on the same partitions as confluent-kafka's murmur2."""

from __future__ import annotations

import random

import anyio
import pytest

from kafkito.client import Admin, Consumer, Producer, TopicPartition
from kafkito.client.partitioner import partition_for_key

from e2e.clients import Msg, confluent_consume, confluent_produce, kafka_python_consume, kafka_python_produce

pytestmark = pytest.mark.e2e


def _msgs(n: int, seed: int, nulls: bool = True) -> list[Msg]:
    """Random records; ``nulls=False`` for kafka-python as a writer, which refuses null
    header values and a record with neither key nor value."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        key = None if i % 7 == 3 else rng.randbytes(rng.randint(0, 40))
        value = None if i % 11 == 5 and (nulls or key is not None) else rng.randbytes(rng.randint(0, 3000))
        headers = [(f"h{j}", None if j == 2 and nulls else rng.randbytes(rng.randint(0, 20))) for j in range(i % 4)]
        out.append(Msg(key, value, headers, 0, 1_600_000_000_000 + i))
    return out


async def _produce(bootstrap, topic, msgs, compression):
    async with Producer(bootstrap, compression=compression, linger_ms=10) as p:
        handles = [await p.produce(topic, value=m.value, key=m.key, headers=m.headers, partition=0,
                                   timestamp_ms=m.timestamp_ms) for m in msgs]
        return [(await h).offset for h in handles]


async def _consume(bootstrap, topic, n):
    async with Consumer(bootstrap) as c:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        c.seek(tp, 0)
        out = []
        with anyio.fail_after(20):
            while len(out) < n:
                out += await c.poll(timeout=0.5)
        return out


def _as_tuples(seen):
    return [(s.offset, s.key, s.value, s.headers, s.timestamp_ms) for s in seen]


@pytest.mark.parametrize("compression", ["none", "gzip", "snappy", "lz4", "zstd"])
@pytest.mark.parametrize("reader", ["confluent", "kafka-python"])
def test_real_clients_read_what_kafkito_wrote(kbroker, topic_name, compression, reader):
    msgs = _msgs(60, hash((compression, reader)) & 0xFFFF)
    offsets = anyio.run(_produce, kbroker.bootstrap_servers, topic_name, msgs, compression)
    assert offsets == list(range(len(msgs)))
    consume = confluent_consume if reader == "confluent" else kafka_python_consume
    seen = consume(kbroker.bootstrap_servers, topic_name, 0, 0, len(msgs))
    assert _as_tuples(seen) == [(i, m.key, m.value, m.headers, m.timestamp_ms) for i, m in enumerate(msgs)]


@pytest.mark.parametrize("compression", ["none", "gzip", "snappy", "lz4", "zstd"])
@pytest.mark.parametrize("writer", ["confluent", "kafka-python"])
def test_kafkito_reads_what_real_clients_wrote(kbroker, topic_name, compression, writer):
    msgs = _msgs(60, hash((compression, writer)) & 0xFFFF, nulls=writer == "confluent")
    produce = confluent_produce if writer == "confluent" else kafka_python_produce
    produce(kbroker.bootstrap_servers, topic_name, msgs, compression=compression)
    got = anyio.run(_consume, kbroker.bootstrap_servers, topic_name, len(msgs))
    # kafka-python and librdkafka hand a header list back as written; keys/values byte-exact.
    assert [(r.offset, r.key, r.value, r.headers, r.timestamp_ms) for r in got] == [
        (i, m.key, m.value, m.headers, m.timestamp_ms) for i, m in enumerate(msgs)]


def test_ten_thousand_keys_land_where_confluent_kafka_puts_them(kbroker, topic_name):
    from confluent_kafka import Producer as CProducer

    partitions = 13

    async def create():
        async with Admin(kbroker.bootstrap_servers) as a:
            await a.create_topics({topic_name: {"num_partitions": partitions}})

    anyio.run(create)
    rng = random.Random(7)
    keys = [rng.randbytes(rng.randint(1, 64)) for _ in range(10_000)]
    placed: dict[bytes, int] = {}
    p = CProducer({"bootstrap.servers": kbroker.bootstrap_servers, "partitioner": "murmur2_random",
                   "linger.ms": 20, "acks": "1"})

    def report(err, msg):
        assert err is None, err
        placed[msg.key()] = msg.partition()

    for k in keys:
        p.produce(topic_name, value=b"", key=k, on_delivery=report)
        p.poll(0)
    assert p.flush(60) == 0
    assert len(placed) == len(set(keys))
    mismatched = [k for k in placed if placed[k] != partition_for_key(k, partitions)]
    assert not mismatched

    async def ours():
        async with Producer(kbroker.bootstrap_servers, linger_ms=20) as prod:
            handles = [(k, await prod.produce(topic_name, value=b"", key=k)) for k in keys[:2000]]
            return {k: (await h).partition for k, h in handles}

    assert all(placed[k] == part for k, part in anyio.run(ours).items())

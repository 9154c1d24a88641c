"""Transactions through kafkito's client, when the broker offers them (skipped otherwise):
committed records visible to read_committed, aborted ones only to read_uncommitted,
offsets committed with the transaction, a second producer with the same id fencing the first."""

from __future__ import annotations

import pytest

from kafkito.client import Admin, Consumer, Producer, TopicPartition
from kafkito.client.errors import KafkaError
from kafkito.protocol import ApiKey

pytestmark = pytest.mark.anyio


async def _offers_transactions(bootstrap) -> bool:
    async with Admin(bootstrap) as a:
        conn = await a.cluster.any_connection()
        return conn.supports(ApiKey.END_TXN) and conn.supports(ApiKey.ADD_PARTITIONS_TO_TXN)


async def _read(bootstrap, topic, isolation):
    async with Consumer(bootstrap, isolation_level=isolation) as c:
        tps = [TopicPartition(topic, p) for p in sorted(await c.partitions_for_topic(topic))]
        c.assign(tps)
        c.seek_to_beginning()
        got = []
        for _ in range(8):
            got += await c.poll(timeout=0.25)
        return sorted(r.value for r in got)


async def test_commit_abort_and_offsets_in_a_transaction(kbroker, topic_name):
    b = kbroker.bootstrap_servers
    if not await _offers_transactions(b):
        pytest.skip("this broker does not offer transactions")
    async with Admin(b) as a:
        await a.create_topics({topic_name: {"num_partitions": 2}})
    group = f"txg-{topic_name}"
    async with Producer(b, transactional_id=f"tx-{topic_name}") as p:
        async with p.transaction():
            for i in range(6):
                await p.produce(topic_name, value=b"c%d" % i, partition=i % 2)
        p.begin_transaction()
        for i in range(4):
            await p.produce(topic_name, value=b"a%d" % i, partition=i % 2)
        await p.flush()
        await p.abort_transaction()
        async with p.transaction():
            await p.produce(topic_name, value=b"c-last", partition=0)
            await p.send_offsets_to_transaction({TopicPartition(topic_name, 0): 3}, group)
    committed = sorted([b"c%d" % i for i in range(6)] + [b"c-last"])
    assert await _read(b, topic_name, "read_committed") == committed
    assert await _read(b, topic_name, "read_uncommitted") == sorted(committed + [b"a%d" % i for i in range(4)])
    async with Admin(b) as a:
        assert (await a.list_group_offsets(group))[TopicPartition(topic_name, 0)].offset == 3


async def test_a_second_producer_with_the_same_id_fences_the_first(kbroker, topic_name):
    b = kbroker.bootstrap_servers
    if not await _offers_transactions(b):
        pytest.skip("this broker does not offer transactions")
    tid = f"fence-{topic_name}"
    async with Producer(b, transactional_id=tid) as old:
        old.begin_transaction()
        await old.send(topic_name, value=b"zombie", partition=0)
        async with Producer(b, transactional_id=tid) as new:
            async with new.transaction():
                await new.produce(topic_name, value=b"live", partition=0)
            with pytest.raises(KafkaError) as info:
                await old.commit_transaction()
            assert info.value.name in ("PRODUCER_FENCED", "INVALID_PRODUCER_EPOCH")
    assert await _read(b, topic_name, "read_committed") == [b"live"]

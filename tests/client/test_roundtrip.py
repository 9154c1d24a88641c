"""Round trips through kafkito's client against the embedded broker: every codec, keys,
headers, nulls and timestamps; the same code under asyncio, trio and the blocking facade."""

from __future__ import annotations

import time

import pytest

from kafkito.client import Admin, Consumer, ConsumerRecord, KafkaError, Producer, RecordMetadata, TopicPartition
from kafkito.client import blocking
from kafkito.client.errors import UnknownTopicOrPartitionError

pytestmark = pytest.mark.anyio

RECORDS = [
    (b"k1", b"v1", [("h", b"x")], 1_700_000_000_000),
    (None, b"keyless", [], 1_700_000_000_001),
    (b"k-null-value", None, [("null-header", None), ("two", b"2")], 1_700_000_000_002),
    (b"", b"", [], 1_700_000_000_003),
    (b"big", bytes(range(256)) * 40, [("bin", b"\x00\xff")], 1_700_000_000_004),
]


async def _consume(bootstrap, topic, count, partition=0, **kwargs) -> list[ConsumerRecord]:
    async with Consumer(bootstrap, **kwargs) as c:
        tp = TopicPartition(topic, partition)
        c.assign([tp])
        c.seek(tp, 0)
        out = []
        deadline = time.monotonic() + 10
        while len(out) < count and time.monotonic() < deadline:
            out += await c.poll(timeout=0.5)
        return out


@pytest.mark.parametrize("compression", ["none", "gzip", "snappy", "lz4", "zstd"])
async def test_every_codec_round_trips_keys_headers_nulls_and_timestamps(kbroker, topic_name, compression):
    async with Producer(kbroker.bootstrap_servers, compression=compression, linger_ms=20) as p:
        handles = [await p.produce(topic_name, value=v, key=k, headers=h, partition=0, timestamp_ms=ts)
                   for k, v, h, ts in RECORDS]
        mds = [await h for h in handles]
    assert [m.offset for m in mds] == list(range(len(RECORDS)))
    assert all(isinstance(m, RecordMetadata) and m.topic == topic_name and m.partition == 0 for m in mds)
    assert [m.timestamp_ms for m in mds] == [r[3] for r in RECORDS]
    got = await _consume(kbroker.bootstrap_servers, topic_name, len(RECORDS))
    assert [(r.key, r.value, r.headers, r.timestamp_ms) for r in got] == [
        (k, v, h, ts) for k, v, h, ts in RECORDS]
    assert [r.offset for r in got] == list(range(len(RECORDS)))


async def test_send_returns_offsets_in_order_and_seek_reads_from_the_middle(kbroker, topic_name):
    async with Producer(kbroker.bootstrap_servers, linger_ms=5) as p:
        first = await p.send(topic_name, value=b"first", partition=0)
        many = [await p.produce(topic_name, value=b"%d" % i, partition=0) for i in range(1000)]
        await p.flush()
        offsets = [(await d).offset for d in many]
    assert first.offset == 0
    assert offsets == list(range(1, 1001))
    async with Consumer(kbroker.bootstrap_servers) as c:
        tp = TopicPartition(topic_name, 0)
        c.assign([tp])
        c.seek(tp, 500)
        recs = await c.poll(timeout=5)
        assert recs[0].offset == 500 and recs[0].value == b"499"
        assert await c.end_offsets([tp]) == {tp: 1001}
        assert await c.beginning_offsets([tp]) == {tp: 0}


async def test_offsets_for_times_finds_the_first_record_at_or_after(kbroker, topic_name):
    async with Producer(kbroker.bootstrap_servers) as p:
        for i in range(10):
            await p.send(topic_name, value=b"x", partition=0, timestamp_ms=1000 * (i + 1))
    async with Consumer(kbroker.bootstrap_servers) as c:
        tp = TopicPartition(topic_name, 0)
        got = await c.offsets_for_times({tp: 3500})
        assert got[tp].offset == 3 and got[tp].timestamp_ms == 4000
        assert (await c.offsets_for_times({tp: 99_999}))[tp] is None
        c.assign([tp])
        await c.seek_to_time(3500)
        assert [r.offset for r in await c.poll(timeout=5)][:1] == [3]
        await c.seek_to_time(99_999, tp)
        assert await c.position(tp) == 10


async def test_keys_go_to_the_murmur2_partition_and_keyless_records_stick(kbroker, topic_name):
    from kafkito.client.partitioner import partition_for_key

    async with Admin(kbroker.bootstrap_servers) as a:
        await a.create_topics({topic_name: {"num_partitions": 5}})
    async with Producer(kbroker.bootstrap_servers, linger_ms=50) as p:
        keyed = [await p.produce(topic_name, value=b"v", key=b"key-%d" % i) for i in range(50)]
        keyless = [await p.produce(topic_name, value=b"v") for _ in range(20)]
        await p.flush()
        for i, d in enumerate(keyed):
            assert (await d).partition == partition_for_key(b"key-%d" % i, 5)
        # Sticky: keyless records queued together land on one partition.
        assert len({(await d).partition for d in keyless}) == 1


async def test_unknown_topic_without_auto_create_is_a_typed_error(kbroker, topic_name):
    async with Consumer(kbroker.bootstrap_servers, request_timeout_ms=1000) as c:
        with pytest.raises(UnknownTopicOrPartitionError) as info:
            await c.end_offsets([TopicPartition(topic_name, 0)])
        assert info.value.code == 3 and info.value.name == "UNKNOWN_TOPIC_OR_PARTITION"
        assert info.value.retriable and isinstance(info.value, KafkaError)


async def test_acks_zero_and_one_deliver(kbroker, topic_name):
    for acks in (0, 1):
        async with Producer(kbroker.bootstrap_servers, acks=acks) as p:
            md = await p.send(topic_name, value=b"acks-%d" % acks, partition=0)
            assert md.offset == (-1 if acks == 0 else 1)
    got = await _consume(kbroker.bootstrap_servers, topic_name, 2)
    assert [r.value for r in got] == [b"acks-0", b"acks-1"]


async def test_pause_and_resume(kbroker, topic_name):
    async with Admin(kbroker.bootstrap_servers) as a:
        await a.create_topics({topic_name: {"num_partitions": 2}})
    async with Producer(kbroker.bootstrap_servers) as p:
        for part in (0, 1):
            await p.send(topic_name, value=b"p%d" % part, partition=part)
    async with Consumer(kbroker.bootstrap_servers, auto_offset_reset="earliest") as c:
        t0, t1 = TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)
        c.assign([t0, t1])
        c.pause(t1)
        got = []
        for _ in range(6):
            got += await c.poll(timeout=0.3)
        assert [r.partition for r in got] == [0]
        assert c.paused() == {t1}
        c.resume(t1)
        for _ in range(10):
            got += await c.poll(timeout=0.3)
            if len(got) == 2:
                break
        assert sorted(r.partition for r in got) == [0, 1]


def test_the_blocking_facade_round_trips(kbroker, topic_name):
    with blocking.Producer(kbroker.bootstrap_servers, compression="zstd") as p:
        md = p.send(topic_name, value=b"v", key=b"k", headers=[("h", b"x")], partition=0)
        futures = [p.produce(topic_name, value=b"%d" % i, partition=0) for i in range(100)]
        p.flush()
        assert [f.result(10).offset for f in futures] == list(range(1, 101))
        with pytest.raises(UnknownTopicOrPartitionError):
            p.produce(topic_name, value=b"nowhere", partition=99).result(10)
    assert md.offset == 0
    with blocking.Consumer(kbroker.bootstrap_servers, group_id="blocking-g", auto_offset_reset="earliest") as c:
        c.subscribe([topic_name])
        got = []
        for rec in c:
            got.append(rec)
            if len(got) == 101:
                break
        c.commit()
        assert c.committed([TopicPartition(topic_name, 0)])[TopicPartition(topic_name, 0)].offset == 101
    assert (got[0].key, got[0].value, got[0].headers) == (b"k", b"v", [("h", b"x")])
    with blocking.Admin(kbroker.bootstrap_servers) as a:
        assert topic_name in a.list_topics()


async def test_a_refused_record_fails_alone_with_its_typed_error(kbroker, topic_name):
    from kafkito.client.errors import MessageTooLargeError

    async with Admin(kbroker.bootstrap_servers) as a:
        await a.create_topics({topic_name: {"num_partitions": 2}})
    async with Producer(kbroker.bootstrap_servers) as p:
        too_big = await p.produce(topic_name, value=b"x" * 3_000_000, partition=0)
        fine = await p.produce(topic_name, value=b"fine", partition=1)
        await p.flush()
        assert (await fine).offset == 0
        with pytest.raises(MessageTooLargeError) as info:
            await too_big
        assert not info.value.retriable and info.value.code == 10


async def test_a_topic_deleted_under_a_producer_is_found_again_after_a_metadata_refresh(kbroker, topic_name):
    async with Producer(kbroker.bootstrap_servers, retry_backoff_ms=20) as p:
        assert (await p.send(topic_name, value=b"one", partition=0)).offset == 0
        async with Admin(kbroker.bootstrap_servers) as a:
            await a.delete_topics([topic_name])
        # The producer's metadata still names the old topic: the broker answers
        # UNKNOWN_TOPIC_OR_PARTITION, the producer refreshes (auto-creating it) and retries.
        md = await p.send(topic_name, value=b"two", partition=0)
    assert md.offset == 0


async def test_admin_describes_classic_and_kip848_groups_with_their_assignments(kbroker, topic_name):
    async with Producer(kbroker.bootstrap_servers) as p:
        await p.send(topic_name, value=b"x", partition=0)
    for protocol in ("classic", "consumer"):
        group = f"{protocol}-{topic_name}"
        async with Consumer(kbroker.bootstrap_servers, group_id=group, group_protocol=protocol,
                            auto_offset_reset="earliest") as c:
            c.subscribe([topic_name])
            for _ in range(20):
                if await c.poll(timeout=0.5):
                    break
            async with Admin(kbroker.bootstrap_servers) as a:
                d = (await a.describe_groups([group]))[group]
        assert d.state == "Stable" and d.protocol_type == "consumer"
        assert [m.assignment for m in d.members] == [[TopicPartition(topic_name, 0)]]

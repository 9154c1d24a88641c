"""kafkito.client: a Kafka client on kafkito's own codec, async on anyio (asyncio or trio).

Quick start::

    from kafkito.client import Producer, Consumer, TopicPartition

    async with Producer("127.0.0.1:9092", acks="all", linger_ms=5, compression="zstd") as p:
        md = await p.send("t", value=b"v", key=b"k", headers=[("h", b"x")])
        # RecordMetadata(topic, partition, offset, timestamp_ms)

    async with Consumer("127.0.0.1:9092", group_id=None) as c:
        c.assign([TopicPartition("t", 0)]); c.seek(TopicPartition("t", 0), 0)
        recs = await c.poll(timeout=1.0)   # list[ConsumerRecord]
        async for rec in c: ...

    from kafkito.client.blocking import Producer, Consumer, Admin   # the same, blocking

Modules: ``connection`` (one broker connection over ``protocol.ClientFraming``),
``cluster`` (bootstrap, metadata, connections), ``base`` (start/close shared by the three
clients), ``partitioner`` (murmur2, sticky), ``accumulator`` (the producer's batches, pure),
``producer``, ``transaction``, ``fetcher`` (decoding fetched batches), ``consumer``,
``group`` (classic group membership) with ``assignors``, ``group_consumer`` (KIP-848),
``offsets`` (ListOffsets, OffsetCommit, OffsetFetch), ``admin``, ``mirror``, ``blocking``
(the facade), ``errors`` (a class per Kafka error code), ``types``; ``cli/`` holds the
``kafkito`` client commands. The client speaks ``kafkito.protocol`` and ``kafkito.records``
and never imports storage, broker or trio.
"""

from .errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from .admin import Admin
from .consumer import Consumer
from .producer import Producer
from .types import ConsumerRecord, OffsetAndMetadata, OffsetAndTimestamp, RecordMetadata, TopicPartition

__all__ = [
    "Admin", "Consumer", "ConsumerRecord", "KafkaConnectionError", "KafkaError", "KafkaTimeoutError", "OffsetAndMetadata",
    "OffsetAndTimestamp", "Producer", "RecordMetadata", "TopicPartition",
]

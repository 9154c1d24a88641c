"""Which partition a record goes to: the Java client's rule, so every client agrees.

Theory of operation. A record with a key goes to ``toPositive(murmur2(key)) % partitions``,
bit for bit what Kafka's ``BuiltInPartitioner.partitionForKey`` computes (and librdkafka's
``murmur2_random``): the same key lands on the same partition whichever client wrote it.
``murmur2`` here is Kafka's ``Utils.murmur2`` (C in ``_partitioner.c`` when built, the
Python reference ``murmur2_py`` otherwise): seed 0x9747b28c, little-endian 4-byte
blocks, the tail bytes folded in falling order, 32-bit wrap-around arithmetic.

A record without a key goes to the *sticky* partition of its topic (KIP-480, KIP-794):
one partition takes every keyless record until about ``batch.size`` bytes went to it,
then another is chosen at random, so keyless records fill whole batches instead of
spraying one-record batches over every partition.
"""

from __future__ import annotations

import random
import struct

__all__ = ["StickyPartitioner", "murmur2", "murmur2_py", "partition_for_key"]

_M = 0x5BD1E995
_SEED = 0x9747B28C
_MASK = 0xFFFFFFFF


def murmur2_py(data: bytes) -> int:
    """Kafka's ``Utils.murmur2`` as a signed 32-bit int (the reference for the C version)."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    n4 = length & ~3
    for (k,) in struct.iter_unpack("<I", data[:n4]):
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length & 3
    if rest == 3:
        h ^= data[n4 + 2] << 16
    if rest >= 2:
        h ^= data[n4 + 1] << 8
    if rest >= 1:
        h ^= data[n4]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


try:
    from ._partitioner import murmur2
except ImportError:  # pragma: no cover - built without a compiler
    murmur2 = murmur2_py


def partition_for_key(key: bytes, num_partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % num_partitions


class StickyPartitioner:
    """The partition for keyless records, per topic, switched after ``batch_size`` bytes."""

    def __init__(self, batch_size: int, rng: random.Random | None = None) -> None:
        self.batch_size = batch_size
        self._rng = rng or random.Random()
        self._current: dict[str, tuple[int, int]] = {}  # topic -> (partition, bytes so far)

    def partition(self, topic: str, num_partitions: int, available: list[int] | None = None) -> int:
        cur = self._current.get(topic)
        if cur is not None and cur[0] < num_partitions and cur[1] < self.batch_size:
            return cur[0]
        choices = available or range(num_partitions)
        if cur is not None and len(choices) > 1:
            choices = [p for p in choices if p != cur[0]]
        part = self._rng.choice(list(choices))
        self._current[topic] = (part, 0)
        return part

    def record_appended(self, topic: str, partition: int, nbytes: int) -> None:
        cur = self._current.get(topic)
        if cur is not None and cur[0] == partition:
            self._current[topic] = (partition, cur[1] + nbytes)

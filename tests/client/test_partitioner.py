"""murmur2 and the partitioners: Kafka's own test vectors, the C hash against the Python
reference, and sticky partitioning switching after batch.size bytes."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from kafkito.client.partitioner import StickyPartitioner, murmur2, murmur2_py, partition_for_key

# From Kafka's UtilsTest.testMurmur2.
VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def test_kafkas_vectors():
    for data, expected in VECTORS.items():
        assert murmur2(data) == expected
        assert murmur2_py(data) == expected


@given(st.binary(max_size=100))
def test_c_and_python_agree(data):
    assert murmur2(data) == murmur2_py(data)
    assert 0 <= partition_for_key(data, 7) < 7


def test_sticky_switches_after_batch_size_bytes():
    sticky = StickyPartitioner(1000, random.Random(1))
    first = sticky.partition("t", 4)
    for _ in range(9):
        sticky.record_appended("t", first, 100)
        assert sticky.partition("t", 4) == first
    sticky.record_appended("t", first, 100)
    assert sticky.partition("t", 4) != first

"""The cleaner's offset map (storage/offset_map.py and its C accelerator): the C map and the
Python reference give the same answers on random record sections, tokens are the key or its
BLAKE2b digest, and a section that does not parse is refused by both."""

from __future__ import annotations

import hashlib
import threading

import pytest
from hypothesis import given, settings, strategies as st

from kafkito.records import build_batch
from kafkito.records.batch import HEADER_BYTES
from kafkito.records.errors import CorruptRecordError
from kafkito.storage.offset_map import ACCELERATED, OffsetMapPy, new_offset_map, walk_records

pytestmark = pytest.mark.skipif(not ACCELERATED, reason="storage/_offsetmap.c not built")

BASE = 1000


def section_of(records) -> bytes:
    """The uncompressed records section of a batch of (key, value, headers) records."""
    return build_batch([(k, v, h, 1_700_000_000_000 + i) for i, (k, v, h) in enumerate(records)],
                       base_offset=BASE)[HEADER_BYTES:]


keys = st.one_of(st.none(), st.binary(max_size=20), st.sampled_from([b"a", b"b", b"x" * 15, b"y" * 16]))
record = st.tuples(keys, st.one_of(st.none(), st.binary(max_size=40)),
                   st.lists(st.tuples(st.text(max_size=4), st.one_of(st.none(), st.binary(max_size=4))),
                            max_size=2))


def both():
    return new_offset_map(True), OffsetMapPy()


def test_the_c_map_is_built():
    assert type(new_offset_map()).__module__ == "kafkito.storage._offsetmap"


def test_tokens_are_short_keys_themselves_and_digests_of_long_ones():
    from kafkito.storage._offsetmap import token

    for n in (0, 1, 15, 16, 17, 127, 128, 129, 256, 1000):
        key = bytes(i % 251 for i in range(n))
        expected = (key + bytes(15 - n) + bytes([n]) if n <= 15
                    else hashlib.blake2b(key, digest_size=16).digest())
        assert token(key) == expected, n


@settings(max_examples=300, deadline=None)
@given(batches=st.lists(st.lists(record, min_size=1, max_size=12), min_size=1, max_size=5),
       probe=st.lists(record, min_size=1, max_size=12), drop=st.booleans(),
       extra=st.lists(st.tuples(st.binary(max_size=20), st.integers(0, 2000)), max_size=6))
def test_the_c_map_answers_as_the_reference(batches, probe, drop, extra):
    c, py = both()
    base = BASE
    for records in batches:
        section = section_of(records)
        c.add_records(section, len(records), base)
        py.add_records(section, len(records), base)
        base += len(records)
    for key, offset in extra:
        c.put_newer(key, offset)
        py.put_newer(key, offset)
    assert len(c) == len(py)
    for records in batches:
        for key, _v, _h in records:
            if key is not None:
                assert c.get(key) == py.get(key)
    section = section_of(probe)
    for at in (BASE, base):  # the probe as an old batch, and as one past every key
        assert c.select(section, len(probe), at, drop) == py.select(section, len(probe), at, drop)


def test_select_keeps_the_latest_and_says_what_it_dropped():
    m = new_offset_map(True)
    old = section_of([(b"a", b"1", []), (b"b", None, []), (None, b"keyless", []), (b"c", b"3", [])])
    m.add_records(old, 4, 0)
    m.add_records(section_of([(b"a", b"2", [])]), 1, 10)
    kept, removed, tombstones, body, max_delta = m.select(old, 4, 0, False)
    assert (kept, removed, tombstones) == (2, 0, 1)  # b's tombstone and c; a superseded, keyless gone
    assert [(r[5], r[6]) for r in walk_records(body, kept)] == [(b"b", True), (b"c", False)]
    assert max_delta == 3
    assert m.select(old, 4, 0, True)[:3] == (1, 1, 0)
    everything = section_of([(b"z", b"1", [])])
    assert m.select(everything, 1, 20, False) == (1, 0, 0, None, 0)  # all kept: no copy


def test_merge_and_put_newer_keep_the_later_offset():
    for m in both():
        other = type(m)() if isinstance(m, OffsetMapPy) else new_offset_map(True)
        m.put(b"k", 5)
        m.put(b"long key " * 4, 7)
        other.put(b"k", 3)
        other.put(b"long key " * 4, 9)
        other.put(b"new", 1)
        m.merge_newer(other)
        assert (m.get(b"k"), m.get(b"long key " * 4), m.get(b"new"), len(m)) == (5, 9, 1, 3)
        m.put_newer(b"k", 4)
        assert m.get(b"k") == 5
        m.put(b"k", 4)
        assert m.get(b"k") == 4
        assert m.get(b"absent") is None


def test_the_table_grows_and_keeps_every_key():
    m = new_offset_map(True)
    n = 100_000
    for i in range(n):
        m.put(b"key-%d" % i, i)
    assert len(m) == n
    assert all(m.get(b"key-%d" % i) == i for i in range(0, n, 7))
    assert m.memory_bytes <= 64 * n  # 24 bytes a slot, at least 3/8 full


@pytest.mark.parametrize("cut", [1, 5, 9])
def test_a_section_that_does_not_parse_is_refused_by_both(cut):
    records = [(b"key", b"value", [("h", b"1")]), (b"k2", None, [])]
    section = section_of(records)
    for m in both():
        with pytest.raises(CorruptRecordError):
            m.add_records(section[:-cut], 2, 0)
        with pytest.raises(CorruptRecordError):
            m.select(section[:-cut], 2, 0, False)
        with pytest.raises(CorruptRecordError):
            m.add_records(section + b"\x00", 2, 0)  # more bytes than the count says
        with pytest.raises(CorruptRecordError):
            m.add_records(section, 3, 0)


def test_the_loops_let_other_threads_run():
    """add_records releases the GIL: another thread's Python keeps running during a long call
    (with the GIL held, the counter could only move at the 5 ms switch interval)."""
    m = new_offset_map(True)
    section = section_of([(b"k%d" % i, b"v", []) for i in range(200_000)])
    ticks = 0
    stop = threading.Event()

    def spin():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        calls_ticks = []
        for _ in range(20):
            before = ticks
            m.add_records(section, 200_000, 0)
            calls_ticks.append(ticks - before)
    finally:
        stop.set()
        t.join()
    # Calls saw the spinning thread make progress while they ran (a C call that held the
    # GIL would never let it: the switch interval only interrupts Python code).
    assert sum(1 for n in calls_ticks if n > 0) >= 5, calls_ticks

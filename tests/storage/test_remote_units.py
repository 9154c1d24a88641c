"""Pure pieces of the remote tier: the manifest (round trip, checksum, transitions), the
garbage rule, the bounded chunk cache and the reader's read-ahead and batch walk."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kafkito.records.batch import iter_batches
from kafkito.storage import build_batch
from kafkito.storage.errors import CorruptMetadataError
from kafkito.storage.remote import LocalDirStore, ObjectNotFoundError, PartitionManifest, RemoteSegment
from kafkito.storage.remote.manifest import garbage, segment_key
from kafkito.storage.remote.reader import ChunkCache, RemoteReader


def segments_from(sizes: list[int]) -> list[RemoteSegment]:
    out, base = [], 0
    for n in sizes:
        out.append(RemoteSegment(base, base + n - 1, n * 100, 1000 + base, base + n - 1,
                                 (".log", ".index")))
        base += n
    return out


@given(st.lists(st.integers(1, 50), max_size=8), st.integers(0, 400))
def test_manifest_round_trip_and_start_moves(sizes, cut):
    m = PartitionManifest("t", "ab" * 16, 3)
    for seg in segments_from(sizes):
        m = m.adding(seg)
    assert PartitionManifest.decode(m.encode(), "m") == m
    end = m.end_offset
    moved, dropped = m.starting_at(cut)
    assert moved.version == m.version + 1
    assert moved.log_start_offset == max(m.log_start_offset, cut)
    assert all(s.end_offset < cut for s in dropped)
    assert all(s.end_offset >= cut for s in moved.segments)
    assert list(dropped) + list(moved.segments) == list(m.segments)
    assert moved.end_offset == end  # uploads resume where they were, even with none left


def test_a_first_segment_below_a_deleted_start_keeps_the_start():
    m, _ = PartitionManifest("t", "00" * 16, 0).starting_at(150)
    m = m.adding(RemoteSegment(100, 199, 1000, 5, 199))
    assert m.log_start_offset == 150  # DeleteRecords' start is not undone by an upload


def test_manifest_checksum_refuses_a_damaged_file():
    data = bytearray(PartitionManifest("t", "00" * 16, 0).adding(segments_from([5])[0]).encode())
    data[-3] ^= 1
    with pytest.raises(CorruptMetadataError):
        PartitionManifest.decode(bytes(data), "m")


def test_garbage_is_unreferenced_objects_below_the_end_only():
    m = PartitionManifest("t", "00" * 16, 0)
    for seg in segments_from([10, 10, 10]):
        m = m.adding(seg)
    m, _ = m.starting_at(10)  # segment 0 dropped from the manifest
    key = lambda base, suffix: segment_key("t", "00" * 16, 0, base, suffix)  # noqa: E731
    keys = [key(0, ".log"), key(0, ".index"), key(10, ".log"), key(20, ".log"),
            key(30, ".log"),  # an upload under way past the end: not garbage
            "t-" + "00" * 16 + "/0/manifest"]
    assert garbage(m, keys) == [key(0, ".log"), key(0, ".index")]


def test_chunk_cache_is_bounded_in_bytes_and_least_recently_used_goes():
    cache = ChunkCache(bytes_max=3000)
    for i in range(5):
        cache.put("k", i, memoryview(b"x" * 1000))
        cache.get("k", 0)  # keep chunk 0 in use
    assert cache.bytes <= 3000
    assert cache.get("k", 0) is not None and cache.get("k", 1) is None
    assert cache.get("k", 4) is not None


def test_reader_reads_ahead_and_walks_batches_byte_exact(tmp_path):
    store = LocalDirStore(f"file://{tmp_path}")
    batches = [build_batch([(b"k", b"v%d" % i * 50, [], 1_000 + i)], base_offset=i) for i in range(200)]
    blob = b"".join(batches)
    store.put("seg.log", blob)
    seg = RemoteSegment(0, 199, len(blob), 1199, 199)
    reader = RemoteReader(store, ChunkCache(1 << 20), chunk_bytes=1024, readahead_chunks=3)
    data, first, nxt, count = reader.read("seg", seg, 0, 1 << 20, 200)
    assert data == blob and (first, nxt, count) == (0, 200, 200)
    gets = reader.cache.gets
    chunks = (len(blob) + 1023) // 1024
    assert reader.cache.prefetched >= chunks - 4  # read-ahead fetched nearly every chunk
    assert gets <= chunks + 1  # and never a chunk twice (a read waits for its prefetch)
    data, first, nxt, count = reader.read("seg", seg, 57, 1, 200)  # cached now
    assert reader.cache.gets == gets
    assert (first, nxt, count) == (57, 58, 1) and data == batches[57]
    assert [b.tobytes() for b in iter_batches(data)] == [batches[57]]
    assert reader.offset_for_timestamp("seg", seg, 1_100, 0, 1 << 20) == (100, 1_100)
    assert reader.offset_for_timestamp("seg", seg, 5_000, 0, 1 << 20) is None
    with pytest.raises(ObjectNotFoundError):
        store.get("absent")


def test_remote_aborted_transactions_from_uploaded_txnindex(tmp_path):
    from kafkito.storage.remote import RemoteTier
    from kafkito.storage.remote.reader import TXN_ENTRY
    store = LocalDirStore(f"file://{tmp_path}")
    reader = RemoteReader(store)
    tier = RemoteTier(store, reader, "t", "00" * 16, 0, decompressed_max=1 << 20)
    m = PartitionManifest("t", "00" * 16, 0)
    for seg in segments_from([100, 100, 100]):
        m = m.adding(RemoteSegment(seg.base_offset, seg.end_offset, seg.size, seg.max_timestamp,
                                   seg.offset_of_max_timestamp, (".log", ".txnindex")))
    entries = {0: [(7, 10, 20, 21), (8, 15, 90, 91)], 100: [(9, 150, 160, 161)], 200: []}
    for base, rows in entries.items():
        store.put(segment_key("t", "00" * 16, 0, base, ".txnindex"),
                  b"".join(TXN_ENTRY.pack(0, *r) for r in rows))
    tier.manifest = m
    assert tier.aborted_transactions(0, 300) == [(7, 10), (8, 15), (9, 150)]
    assert tier.aborted_transactions(25, 100) == [(8, 15)]  # overlapping only
    assert tier.aborted_transactions(150, 155) == [(9, 150)]
    assert tier.aborted_transactions(170, 300) == []

"""Reading remote segments: ranged GETs through a bounded chunk cache, with read-ahead.

Theory of operation.

A remote ``.log`` object is read in fixed-size chunks (``remote.log.reader.chunk.bytes``)
kept in one broker-wide LRU cache bounded in bytes (``remote.log.reader.cache.bytes``). A
miss fetches the chunks the read needs in one ranged GET. Every read then makes sure the
``remote.log.reader.readahead.chunks`` after it are cached or on their way: each missing
one is fetched by a ranged GET in a background thread (``PREFETCH_THREADS`` of them, so
several GETs run side by side, as S3 clients do to reach throughput), so a sequential
consumer finds its next batches cached while it sends the ones before, and the store's
latency overlaps the consumer's work instead of adding to it. A read that needs a chunk
being prefetched waits for that GET rather than issuing its own.

To find the batch holding an offset, the segment's offset index (Kafka's ``.index``
layout, uploaded with it; small, cached whole) gives a byte position at or before it; batch
headers are walked from there (they are in the cached chunks) to the first batch reaching
the offset. Reads return the batches' bytes exactly as stored: a consumer cannot tell a
remote batch from a local one. Timestamp lookups use the ``.timeindex`` the same way, then
look inside the batches as the local log does.

Thread-safe: the cache has its own lock, held only around the dictionary (never across a
GET); two threads missing the same chunk may both fetch it, which costs a request, not
correctness.
"""

from __future__ import annotations

import struct
import threading
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor

from kafkito.records.batch import HEADER, HEADER_BYTES, LOG_APPEND_TIME, LOG_OVERHEAD, RecordBatch

from .manifest import INDEX, LOG, TIMEINDEX, TXNINDEX, RemoteSegment
from .store import ObjectNotFoundError, ObjectStore

CHUNK_BYTES = 1 << 20  # remote.log.reader.chunk.bytes
CACHE_BYTES = 64 << 20  # remote.log.reader.cache.bytes
READAHEAD_CHUNKS = 4  # remote.log.reader.readahead.chunks
INDEXES_CACHED_MAX = 1024  # parsed .index/.timeindex (and .txnindex) objects kept
# Kafka's AbortedTxn entry in a .txnindex: version, producer id, first offset, last offset
# (the ABORT marker's), last stable offset after the abort.
TXN_ENTRY = struct.Struct(">hqqqq")
PREFETCH_THREADS = 4  # read-ahead GETs in flight at once, one chunk each


class ChunkCache:
    """LRU of object byte ranges, bounded by ``bytes_max``; counts hits and misses."""

    def __init__(self, bytes_max: int = CACHE_BYTES):
        self.bytes_max = bytes_max
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.gets = 0  # ranged GETs issued
        self.prefetched = 0  # chunks fetched by read-ahead
        self._chunks: OrderedDict[tuple[str, int], memoryview] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, chunk: int) -> memoryview | None:
        with self._lock:
            data = self._chunks.get((key, chunk))
            if data is None:
                self.misses += 1
                return None
            self.hits += 1
            self._chunks.move_to_end((key, chunk))
            return data

    def put(self, key: str, chunk: int, data: memoryview) -> None:
        with self._lock:
            old = self._chunks.pop((key, chunk), None)
            if old is not None:
                self.bytes -= len(old)
            self._chunks[(key, chunk)] = data
            self.bytes += len(data)
            while self.bytes > self.bytes_max and len(self._chunks) > 1:
                _k, dropped = self._chunks.popitem(last=False)
                self.bytes -= len(dropped)

    def contains(self, key: str, chunk: int) -> bool:
        with self._lock:
            return (key, chunk) in self._chunks

    def forget(self, key: str) -> None:
        with self._lock:
            for k in [k for k in self._chunks if k[0] == key]:
                self.bytes -= len(self._chunks.pop(k))


class _Indexes:
    """A remote segment's offset and time index, parsed."""

    __slots__ = ("rel_offsets", "positions", "timestamps", "ts_rel_offsets")

    def __init__(self, index: bytes, timeindex: bytes):
        n = len(index) // 8
        flat = struct.unpack(">" + "ii" * n, index[: n * 8])
        self.rel_offsets, self.positions = flat[0::2], flat[1::2]
        m = len(timeindex) // 12
        flat = struct.unpack(">" + "qi" * m, timeindex[: m * 12])
        self.timestamps, self.ts_rel_offsets = flat[0::2], flat[1::2]

    def position_for(self, base: int, offset: int) -> int:
        i = bisect_right(self.rel_offsets, offset - base) - 1
        return self.positions[i] if i >= 0 else 0

    def offset_below(self, base: int, timestamp: int) -> int:
        i = bisect_left(self.timestamps, timestamp) - 1
        return base + self.ts_rel_offsets[i] if i >= 0 else base


class RemoteReader:
    def __init__(self, store: ObjectStore, cache: ChunkCache | None = None, *,
                 chunk_bytes: int = CHUNK_BYTES, readahead_chunks: int = READAHEAD_CHUNKS):
        self.store = store
        self.cache = cache or ChunkCache()
        self.chunk_bytes = chunk_bytes
        self.readahead_chunks = readahead_chunks
        self._indexes: OrderedDict[str, _Indexes] = OrderedDict()
        self._index_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None  # read-ahead threads, started on first use
        self._inflight: dict[tuple[str, int], Future] = {}  # chunk -> the GET fetching it
        self._fetch_lock = threading.Lock()

    def close(self) -> None:
        """Stop read-ahead (GETs already sent finish in their threads)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    # ----------------------------------------------------------------------- raw bytes
    def read_range(self, key: str, start: int, end: int, object_size: int) -> bytes:
        """Bytes [start, end) of an object of ``object_size`` bytes, through the cache."""
        end = min(end, object_size)
        if start >= end:
            return b""
        cb = self.chunk_bytes
        first, last = start // cb, (end - 1) // cb
        parts = []
        for c in range(first, last + 1):
            data = self.cache.get(key, c)
            if data is None:
                self._fetch(key, c, last, object_size)
                data = self.cache.get(key, c)
                if data is None:  # evicted at once by a tiny cache: read it directly
                    data = memoryview(self.store.get_range(key, c * cb,
                                                           min((c + 1) * cb, object_size)))
            lo = start - c * cb if c == first else 0
            hi = end - c * cb if c == last else len(data)
            parts.append(data[lo:hi])  # memoryview slices: the one copy is the join
        self._read_ahead(key, last, object_size)
        return bytes(parts[0]) if len(parts) == 1 else b"".join(parts)

    def _fetch(self, key: str, chunk: int, needed_last: int, object_size: int) -> None:
        with self._fetch_lock:
            pending = self._inflight.get((key, chunk))
        if pending is not None:
            try:
                pending.result()
            except Exception:  # noqa: BLE001  the GET below retries it and reports
                pass
        if self.cache.contains(key, chunk):  # a prefetch done meanwhile (it caches, then unregisters)
            return
        self._get_chunks(key, chunk, needed_last, object_size)

    def _get_chunks(self, key: str, first: int, last: int, object_size: int) -> None:
        cb = self.chunk_bytes
        start, end = first * cb, min((last + 1) * cb, object_size)
        data = self.store.get_range(key, start, end)
        self.cache.gets += 1
        if len(data) != end - start:
            raise ObjectNotFoundError(f"{key}: short read ({len(data)} of {end - start} bytes)")
        view = memoryview(data)  # chunks share the one buffer of the GET: no copies here
        for i, c in enumerate(range(first, last + 1)):
            self.cache.put(key, c, view[i * cb:(i + 1) * cb])

    def _read_ahead(self, key: str, last: int, object_size: int) -> None:
        """Start a background GET of the missing chunks among the next readahead.chunks."""
        if self.readahead_chunks <= 0:
            return
        chunks_total = (object_size + self.chunk_bytes - 1) // self.chunk_bytes
        ahead = range(last + 1, min(chunks_total, last + 1 + self.readahead_chunks))
        with self._fetch_lock:
            missing = [c for c in ahead
                       if (key, c) not in self._inflight and not self.cache.contains(key, c)]
            if not missing:
                return
            if self._pool is None:
                self._pool = ThreadPoolExecutor(PREFETCH_THREADS,
                                                thread_name_prefix="kafkito-remote-readahead")
            for c in missing:  # one GET per chunk: they run side by side (queue depth)
                if len(self._inflight) >= PREFETCH_THREADS * 2:
                    break
                # registered before _prefetch can remove it (it takes this lock)
                self._inflight[(key, c)] = self._pool.submit(self._prefetch, key, c, c, object_size)

    def _prefetch(self, key: str, first: int, last: int, object_size: int) -> None:
        try:
            self._get_chunks(key, first, last, object_size)
            self.cache.prefetched += last - first + 1
        finally:
            with self._fetch_lock:
                for c in range(first, last + 1):
                    self._inflight.pop((key, c), None)

    def indexes(self, seg_key: str, seg: RemoteSegment) -> _Indexes:
        with self._index_lock:
            found = self._indexes.get(seg_key)
            if found is not None:
                self._indexes.move_to_end(seg_key)
                return found
        index = self.store.get(seg_key + INDEX) if INDEX in seg.files else b""
        timeindex = self.store.get(seg_key + TIMEINDEX) if TIMEINDEX in seg.files else b""
        parsed = _Indexes(index, timeindex)
        with self._index_lock:
            self._indexes[seg_key] = parsed
            while len(self._indexes) > INDEXES_CACHED_MAX:
                self._indexes.popitem(last=False)
        return parsed

    def aborted_transactions(self, seg_key: str, seg: RemoteSegment) -> list[tuple[int, int, int, int]]:
        """The segment's aborted-transaction entries (producer id, first offset, last
        offset, last stable offset), from its uploaded .txnindex; [] when it has none."""
        if TXNINDEX not in seg.files:
            return []
        cache_key = seg_key + TXNINDEX
        with self._index_lock:
            found = self._indexes.get(cache_key)
        if found is None:
            raw = self.store.get(cache_key)
            found = [e[1:] for e in TXN_ENTRY.iter_unpack(raw[: len(raw) - len(raw) % TXN_ENTRY.size])]
            with self._index_lock:
                self._indexes[cache_key] = found
                while len(self._indexes) > INDEXES_CACHED_MAX:
                    self._indexes.popitem(last=False)
        return found

    def forget(self, seg_key: str) -> None:
        self.cache.forget(seg_key + LOG)
        with self._index_lock:
            self._indexes.pop(seg_key, None)
            self._indexes.pop(seg_key + TXNINDEX, None)

    # ------------------------------------------------------------------------ batches
    def headers(self, seg_key: str, seg: RemoteSegment, position: int):
        """(position, base offset, last offset, size, max timestamp) of each batch from
        ``position`` to the end of the segment."""
        key = seg_key + LOG
        pos = position
        while pos + HEADER_BYTES <= seg.size:
            h = HEADER.unpack(self.read_range(key, pos, pos + HEADER_BYTES, seg.size))
            base, length = h[0], h[1]
            size = length + LOG_OVERHEAD
            if length < HEADER_BYTES - LOG_OVERHEAD or pos + size > seg.size:
                raise ObjectNotFoundError(f"{key}: malformed batch at position {pos}")
            yield pos, base, base + h[6], size, h[8]
            pos += size

    def read(self, seg_key: str, seg: RemoteSegment, offset: int, max_bytes: int,
             limit: int) -> tuple[bytes, int, int, int]:
        """Whole batches of one segment from the one holding ``offset``: at least one even
        past ``max_bytes``, none reaching ``limit``. Returns (bytes, first offset, next
        offset, batch count); empty when no batch of this segment qualifies."""
        idx = self.indexes(seg_key, seg)
        start = None
        size = count = 0
        first = next_offset = offset
        for pos, base, last, bsize, _ts in self.headers(seg_key, seg,
                                                        idx.position_for(seg.base_offset, offset)):
            if last < offset:
                continue
            if last >= limit or (count and size + bsize > max_bytes):
                break
            if start is None:
                start, first = pos, base
            size += bsize
            count += 1
            next_offset = last + 1
        if not count:
            return b"", offset, offset, 0
        return self.read_range(seg_key + LOG, start, start + size, seg.size), first, next_offset, count

    def offset_for_timestamp(self, seg_key: str, seg: RemoteSegment, timestamp: int,
                             start_offset: int, decompressed_max: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record at or after ``start_offset`` with a
        timestamp >= ``timestamp`` in this segment, or None."""
        idx = self.indexes(seg_key, seg)
        from_offset = max(start_offset, idx.offset_below(seg.base_offset, timestamp))
        key = seg_key + LOG
        for pos, _base, last, bsize, max_ts in self.headers(
                seg_key, seg, idx.position_for(seg.base_offset, from_offset)):
            if last < start_offset or max_ts < timestamp:
                continue
            batch = RecordBatch(self.read_range(key, pos, pos + bsize, seg.size))
            if batch.timestamp_type == LOG_APPEND_TIME:
                return max(batch.base_offset, start_offset), max_ts
            for rec in batch.records(decompressed_max):
                if rec.offset >= start_offset and rec.timestamp >= timestamp:
                    return rec.offset, rec.timestamp
        return None

    def batches(self, seg_key: str, seg: RemoteSegment):
        """Every batch of the segment as a RecordBatch (Parquet export, verification)."""
        key = seg_key + LOG
        for pos, _b, _l, bsize, _ts in self.headers(seg_key, seg, 0):
            yield RecordBatch(self.read_range(key, pos, pos + bsize, seg.size))

"""The per-key index: for each segment, record key hash -> the batches holding that key.

Theory of operation. Agent events are keyed by session id, and "the last 50 events of
session X" should not mean scanning the partition. A topic with ``key.index.enable=true``
(kafkito only; off by default) keeps, beside each segment, a sidecar ``<base>.keyindex``
mapping the FNV-1a 64 hash of every record key (``records.recordscan.key_hash``) to the
file position of each batch holding a record with that key (the batch's header gives its
offsets when it is read).

*Cost at append.* Produce validation already walks every record (the C walk of
validator.py, on the decompressed section); with the index on, the same walk also hashes
the keys (``scan(section, count, keys=True)``), so the index costs no second decompression
or parse: only two array appends (hash, position) per distinct key of each batch, in
memory. Nothing is written to disk at append.

*Active segment.* Its index lives in memory as two arrays, the key hash and the batch
position of each keyed batch (12 bytes an entry), appended in log order; a look-up copies
them under the log's lock (a memcpy: about a millisecond per million entries) and scans the
copy in C (memmem) after it. No dict: per-append dict updates cost more than the rest of the index.
When the segment is rolled it is frozen; the next ``flush`` (in the flusher's thread, as
producer snapshots are) writes it sorted by hash to the sidecar and from then on lookups
binary-search the mapped file. ``close`` writes the active segment's sidecar too, so a clean
restart reads no data to get the index back.

*Sidecar format* (big-endian, as Kafka's index files): a 48-byte header ``magic 'KKIX',
version u16, 0 u16, base_offset i64, covered_bytes i64, next_offset i64, entries u32,
crc32c(body) u32, last_batch_position u32, last_batch_crc u32``, then the body: ``entries``
hashes (u64, sorted) and then their ``entries`` positions (u32, in log order within a
hash), 12 bytes an entry. Sorting happens once, when the sidecar is written.
The last batch's position and CRC tie the sidecar to the segment's bytes, not only to its
size: a segment rewritten under the same name (a compaction swap finished by recovery)
does not pass for the one the sidecar describes.

*Derived data, rebuilt on recovery* (STYLE habit 8). At open (``load``), a sidecar is used
only when its header and CRC are right and it covers the segment exactly (its
``covered_bytes`` and ``next_offset`` equal the segment's after recovery); the active
segment's is used only after a clean shutdown. Any other segment is re-walked: its batches
are read, decompressed and scanned once (``rebuild``). The sidecar's last-batch CRC is compared
with the batch in the segment (one 21-byte read). A crash therefore costs a walk of the
active segment (recovery CRC-checks it then anyway) and of segments rolled since the last
flush. Sidecars are never fsynced: a torn one fails its checks and is rebuilt.

*Kept right by the log.* Retention and DeleteRecords delete whole segments, and
``PartitionLog`` calls ``drop`` for each, which removes the sidecar; records below the log
start offset in a kept segment are filtered at read. A segment replaced by compaction or
recovery must be re-indexed with ``rebuild(seg)`` (the cleaner calls it after its swap).
Segments moved to the remote tier are not indexed: reads through the index see the local
log only.

*Reading* (``read_key_records``): under the log's lock the sealed segments' candidates are
found (binary searches) and the active segment's arrays copied; the copies are scanned and
the batches read without it, newest
first when only the last N records are wanted; each batch is CRC-checked, decompressed and
its records compared by key (a hash collision costs a batch read, never a wrong answer), up
to the high watermark and from the log start offset, as a consumer would see them.
"""

from __future__ import annotations

import bisect
import logging
import mmap
import os
import struct
import sys
from array import array
from typing import Callable, Iterable, NamedTuple

from crc32c import crc32c

from kafkito.records import codecs
from kafkito.records.batch import (
    ATTRIBUTES_AT,
    COMPRESSION_MASK,
    CONTROL_BIT,
    CRC_AT,
    HEADER,
    HEADER_BYTES,
    LOG_APPEND_TIME,
    LOG_OVERHEAD,
    Record,
    RecordBatch,
    iter_records,
)
from kafkito.records.codecs import DECOMPRESSED_BYTES_MAX
from kafkito.records.errors import ApiError
from kafkito.records.recordscan import RecordScanError, key_hash, scan

from .fileio import FileIO
from .segment import segment_prefix

log = logging.getLogger("kafkito.storage.key_index")

KEYINDEX_SUFFIX = ".keyindex"
_MAGIC = b"KKIX"
_VERSION = 3
_HEADER = struct.Struct(">4sHHqqqIIII")
_ENTRY_BYTES = 12  # a hash (u64) in the first block, its position (u32) in the second
_HASH = struct.Struct(">Q")
_NATIVE_U64 = struct.Struct("=Q")
_U32 = struct.Struct(">I")
# A batch read at a guessed size first: most agent events are far smaller.
_READ_GUESS_BYTES = 16 * 1024
_BIG_ENDIAN = sys.byteorder == "big"

__all__ = ["KEYINDEX_SUFFIX", "KeyIndex", "KeyRecords", "keyindex_path", "read_key_records"]


def keyindex_path(directory: str, base_offset: int) -> str:
    return os.path.join(directory, segment_prefix(base_offset) + KEYINDEX_SUFFIX)


def _to_big_endian(a: array) -> bytes:
    if not _BIG_ENDIAN:
        a = array(a.typecode, a)
        a.byteswap()
    return a.tobytes()


def _from_big_endian(typecode: str, data) -> array:
    a = array(typecode)
    a.frombytes(data)
    if not _BIG_ENDIAN:
        a.byteswap()
    return a


def _dedup(positions) -> list[int]:
    """Positions in order, a batch named once (a batch with keys k1, k2, k1 gives k1 twice)."""
    out: list[int] = []
    for p in positions:
        if not out or out[-1] != p:
            out.append(p)
    return out


class _Mapped:
    """A sealed segment's sidecar, mapped read-only: a binary search over the sorted hash
    block, no Python objects per entry."""

    __slots__ = ("map", "count")

    def __init__(self, data: mmap.mmap, count: int):
        self.map, self.count = data, count

    def lookup(self, h: int) -> list[int]:
        m, lo, hi = self.map, 0, self.count
        target = _HASH.pack(h)  # big-endian: byte order is numeric order
        base = _HEADER.size
        while lo < hi:  # lower bound
            mid = (lo + hi) // 2
            if m[base + mid * 8 : base + mid * 8 + 8] < target:
                lo = mid + 1
            else:
                hi = mid
        hi = lo
        while hi < self.count and m[base + hi * 8 : base + hi * 8 + 8] == target:
            hi += 1
        at = base + self.count * 8
        return _dedup(_from_big_endian("I", m[at + lo * 4 : at + hi * 4]))

    def close(self) -> None:
        try:
            self.map.close()
        except BufferError:  # a lookup still holds a view: the GC unmaps it
            pass


class _Unscanned:
    """An in-memory segment's arrays, copied under the lock, scanned after it."""

    __slots__ = ("h", "hashes", "positions_")

    def __init__(self, h: int, hashes: bytes, positions: array):
        self.h, self.hashes, self.positions_ = h, hashes, positions

    def positions(self) -> list[int]:
        # memmem (C speed, a few GB/s), keeping only the 8-byte-aligned hits.
        data, target, out = self.hashes, _NATIVE_U64.pack(self.h), []
        i = data.find(target)
        while i != -1:
            if i % 8:
                i = data.find(target, i + 1)
                continue
            out.append(self.positions_[i // 8])
            i = data.find(target, i + 8)
        return _dedup(out)


class _SegmentEntries:
    """One segment's index: in memory (the active segment, or a sealed one not yet written)
    or mapped from its sidecar."""

    __slots__ = ("base_offset", "hashes", "positions", "mapped", "covered_bytes",
                 "next_offset", "last_position", "last_crc")

    def __init__(self, base_offset: int):
        self.base_offset = base_offset
        # In memory: one (hash, position) pair per key of each batch, in log order. Appends
        # cost two array appends; a look-up is a C-speed scan (memmem), a few milliseconds
        # per million pairs.
        self.hashes = array("Q")
        self.positions = array("I")
        self.mapped: _Mapped | None = None
        self.covered_bytes = 0
        self.next_offset = base_offset
        self.last_position = 0  # the last batch covered: where it is, and its CRC
        self.last_crc = 0

    @property
    def in_memory(self) -> bool:
        return self.mapped is None

    def lookup(self, h: int) -> "list[int] | _Unscanned":
        """Positions of the batches that may hold a key with hash ``h``, in log order; for
        an in-memory segment, a copy of its arrays to scan (``positions()``) once the log's
        lock is released, so a long scan never holds up appends."""
        if self.mapped is not None:
            return self.mapped.lookup(h)
        return _Unscanned(h, self.hashes.tobytes(), array("I", self.positions))

    def encode(self) -> bytes:
        """The sidecar (module docstring, *Sidecar format*): pairs sorted by hash, each
        hash's positions in log order (the sort is stable)."""
        order = sorted(range(len(self.hashes)), key=self.hashes.__getitem__)
        hashes = array("Q", (self.hashes[i] for i in order))
        positions = array("I", (self.positions[i] for i in order))
        body = _to_big_endian(hashes) + _to_big_endian(positions)
        header = _HEADER.pack(_MAGIC, _VERSION, 0, self.base_offset, self.covered_bytes,
                              self.next_offset, len(hashes), crc32c(body), self.last_position,
                              self.last_crc)
        return header + body

    def close(self) -> None:
        if self.mapped is not None:
            self.mapped.close()
            self.mapped = None


class KeyIndex:
    """One partition's key index (module docstring). Every mutating call is made by
    ``PartitionLog`` under ``lock`` (its state lock), except ``write_pending`` and ``close``,
    which take it themselves around the swaps."""

    def __init__(self, directory: str, io: FileIO, lock, name: str,
                 decompressed_bytes_max: int = DECOMPRESSED_BYTES_MAX):
        self.directory = directory
        self.io = io
        self.lock = lock
        self.name = name
        self.decompressed_bytes_max = decompressed_bytes_max
        self.segments: dict[int, _SegmentEntries] = {}
        self._pending: list[_SegmentEntries] = []  # sealed in memory, written by the next flush
        self._active: _SegmentEntries | None = None  # the active segment's (append's shortcut)
        self.rebuilt: list[int] = []  # base offsets re-walked by load/rebuild (tests, logs)

    # ---------------------------------------------------------------------- append path
    def on_append(self, seg, position: int, headers) -> None:
        """A validated append landed in ``seg`` at ``position``; ``headers`` are its
        ``BatchHeader``s (with ``key_hashes``). The hot path of the index: a dict probe
        pair of array appends per key, nothing else."""
        entries = self._active
        if entries is None or entries.base_offset != seg.base_offset or entries.mapped is not None:
            entries = self._active = self._entries_for(seg)
        for h in headers:
            hashes = h.key_hashes
            if hashes and not h.attributes & CONTROL_BIT:
                if len(hashes) == 1:  # the usual batch: one session's events
                    entries.hashes.append(hashes[0])
                    entries.positions.append(position)
                else:
                    entries.hashes.extend(hashes)
                    entries.positions.extend([position] * len(hashes))
            position += h.size
        entries.last_position = position - h.size

    def _entries_for(self, seg) -> _SegmentEntries:
        entries = self.segments.get(seg.base_offset)
        if entries is None or not entries.in_memory:
            entries = self.segments[seg.base_offset] = _SegmentEntries(seg.base_offset)
        return entries

    def _seal(self, entries: _SegmentEntries, seg) -> None:
        """What the sidecar's header says about ``seg`` (a 21-byte read of its last batch,
        in the page cache)."""
        entries.covered_bytes, entries.next_offset = seg.size, seg.next_offset
        entries.last_crc = (_stored_crc(seg, entries.last_position) or 0) if seg.size else 0

    def on_roll(self, seg) -> None:
        """``seg`` stopped being the active segment: its sidecar is due at the next flush."""
        entries = self.segments.get(seg.base_offset)
        if entries is not None and entries.in_memory:
            self._seal(entries, seg)
            self._pending.append(entries)
        if self._active is entries:
            self._active = None

    def write_pending(self) -> None:
        """Write the sidecars of segments rolled since the last call (the flusher's thread),
        then serve them from the mapped files. A failed write only costs memory: the entries
        stay in memory and the next open rebuilds the file."""
        with self.lock:
            pending, self._pending = self._pending, []
        for entries in pending:
            path = keyindex_path(self.directory, entries.base_offset)
            try:
                self._write(path, entries.encode())
                mapped = self._map(path, entries.base_offset)
            except OSError as e:
                log.warning("%s: cannot write %s: %s", self.name, os.path.basename(path),
                            e.strerror or e)
                continue
            with self.lock:
                if self.segments.get(entries.base_offset) is entries and mapped is not None:
                    entries.mapped = mapped
                    entries.hashes, entries.positions = array("Q"), array("I")
                elif mapped is not None:
                    mapped.close()

    def close(self, active) -> None:
        """Clean shutdown: write every sidecar still in memory, the active segment's too."""
        with self.lock:
            entries = self.segments.get(active.base_offset)
            if entries is not None and entries.in_memory and entries not in self._pending:
                self._seal(entries, active)
                self._pending.append(entries)
            self._active = None
        self.write_pending()
        with self.lock:
            for entries in self.segments.values():
                entries.close()
            self.segments.clear()

    # --------------------------------------------------------------------- maintenance
    def drop(self, base_offset: int) -> None:
        """The segment at ``base_offset`` is gone (retention, DeleteRecords, quarantine, a
        compaction swap): forget its entries and remove its sidecar. Nothing indexed there
        (the index is off): no file call at all, so a topic without the index makes exactly
        the system calls it made before the index existed (the crash tests count them)."""
        entries = self.segments.pop(base_offset, None)
        if entries is None:
            return
        if entries is self._active:
            self._active = None
        if entries in self._pending:
            self._pending.remove(entries)
        entries.close()
        self._unlink(base_offset)

    def _unlink(self, base_offset: int) -> None:
        try:
            self.io.unlink(keyindex_path(self.directory, base_offset))
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("%s: cannot remove the key index of segment %d: %s", self.name,
                        base_offset, e.strerror or e)

    def load(self, segments: list, clean: bool) -> None:
        """At open, after recovery: use each valid sidecar, rebuild the rest, remove the
        sidecars of segments that are gone (module docstring, *Derived data*)."""
        bases = {s.base_offset for s in segments}
        for name in self.io.listdir(self.directory):
            if name.endswith(KEYINDEX_SUFFIX):
                try:
                    base = int(name[: -len(KEYINDEX_SUFFIX)])
                except ValueError:
                    continue
                if base not in bases:
                    self._unlink(base)
        active = segments[-1]
        for seg in segments:
            is_active = seg is active
            entries = None
            if clean or not is_active:
                entries = self._read_valid(seg, to_memory=is_active)
            if entries is None:
                self.rebuild(seg, sealed=not is_active)
            else:
                self.segments[seg.base_offset] = entries

    def rebuild(self, seg, *, sealed: bool = True) -> None:
        """Re-walk ``seg`` and index it anew (recovery; the cleaner after a segment swap).
        A sealed segment's sidecar is written by the next ``write_pending``."""
        if self.segments.get(seg.base_offset) is not None:
            self.drop(seg.base_offset)
        else:
            self._unlink(seg.base_offset)  # an invalid sidecar, not loaded
        entries = _SegmentEntries(seg.base_offset)
        for position, fields, view in seg.bodies_from(0, seg.size):
            entries.last_position, entries.last_crc = position, fields[4]
            if fields[5] & CONTROL_BIT:
                continue
            for kh in self._batch_key_hashes(fields, view):
                entries.hashes.append(kh)
                entries.positions.append(position)
        entries.covered_bytes, entries.next_offset = seg.size, seg.next_offset
        self.segments[seg.base_offset] = entries
        if sealed:
            self._pending.append(entries)
        self.rebuilt.append(seg.base_offset)
        log.info("%s: key index of segment %s rebuilt from the log (%d entries)", self.name,
                 segment_prefix(seg.base_offset), len(entries.hashes))

    def remove_all(self) -> None:
        """The topic turned the index off: forget it and remove every sidecar."""
        for base in list(self.segments):
            self.drop(base)
        self._pending = []
        for name in self.io.listdir(self.directory):
            if name.endswith(KEYINDEX_SUFFIX):
                try:
                    self.io.unlink(os.path.join(self.directory, name))
                except OSError:
                    pass

    # ------------------------------------------------------------------------- lookup
    def candidates(self, key: bytes) -> list[tuple[int, "list[int] | _Unscanned"]]:
        """Per segment (base offset, in log order): the positions of the batches that may
        hold ``key``, or the arrays to scan for them (``resolve``). Call under the log's
        lock; resolve after it."""
        h = key_hash(key)
        return [(base, self.segments[base].lookup(h)) for base in sorted(self.segments)]

    @staticmethod
    def resolve(candidates) -> list[tuple[int, int]]:
        """(segment base offset, position) pairs from ``candidates``, without the lock."""
        return [(base, p) for base, found in candidates
                for p in (found.positions() if isinstance(found, _Unscanned) else found)]

    # -------------------------------------------------------------------------- helpers
    def _batch_key_hashes(self, fields: tuple, view) -> list[int]:
        section = view[HEADER_BYTES:]
        codec = fields[5] & COMPRESSION_MASK
        try:
            if codec:
                section = codecs.decompress(codec, section, self.decompressed_bytes_max)
            try:
                return scan(section, fields[12], True)[3]
            except RecordScanError:
                # A compacted batch: its offset deltas have gaps, which the produce walk
                # refuses. Decode its records instead (rebuilds only).
                return [key_hash(r.key) for r in iter_records(section, fields[12], 0, 0)
                        if r.key is not None]
        except (RecordScanError, ApiError) as e:  # a batch stored before validation
            log.warning("%s: batch at offset %d cannot be indexed: %s", self.name, fields[0], e)
            return []

    def _write(self, path: str, data: bytes) -> None:
        tmp = path + ".tmp"
        fd = self.io.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            self.io.pwritev(fd, [data], 0)
        finally:
            self.io.close(fd)
        self.io.rename(tmp, path)

    def _map(self, path: str, base_offset: int) -> _Mapped | None:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < _HEADER.size:
                return None
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        count = _HEADER.unpack_from(data, 0)[6]
        if size != _HEADER.size + count * _ENTRY_BYTES:
            data.close()
            return None
        return _Mapped(data, count)

    def _read_valid(self, seg, *, to_memory: bool) -> _SegmentEntries | None:
        path = keyindex_path(self.directory, seg.base_offset)
        if not self.io.exists(path):
            return None
        try:
            mapped = self._map(path, seg.base_offset)
        except (OSError, ValueError) as e:
            log.warning("%s: cannot read %s: %s", self.name, os.path.basename(path), e)
            return None
        if mapped is None:
            return None
        (magic, version, _, base, covered, next_offset, count, crc, last_position,
         last_crc) = _HEADER.unpack_from(mapped.map, 0)
        body = memoryview(mapped.map)[_HEADER.size:]
        try:
            ok = (magic == _MAGIC and version == _VERSION and base == seg.base_offset
                  and covered == seg.size and next_offset == seg.next_offset
                  and crc32c(body) == crc
                  and (covered == 0 or _stored_crc(seg, last_position) == last_crc))
        finally:
            body.release()
        if not ok:
            mapped.close()
            return None
        entries = _SegmentEntries(seg.base_offset)
        entries.covered_bytes, entries.next_offset = covered, next_offset
        entries.last_position, entries.last_crc = last_position, last_crc
        if to_memory:  # the active segment keeps growing: back into arrays
            at = _HEADER.size + count * 8
            entries.hashes = _from_big_endian("Q", mapped.map[_HEADER.size:at])
            entries.positions = _from_big_endian("I", mapped.map[at:at + count * 4])
            mapped.close()
        else:
            entries.mapped = mapped
        return entries


def _stored_crc(seg, position: int) -> int | None:
    """The CRC field of the batch at ``position`` in ``seg`` (None when unreadable)."""
    try:
        data = seg.file.pread(CRC_AT + 4, position)
    except OSError:
        return None
    return _U32.unpack_from(data, CRC_AT)[0] if len(data) == CRC_AT + 4 else None


# ------------------------------------------------------------------------------ reading


class KeyRecords(NamedTuple):
    records: list[Record]  # in log order
    batches_read: int
    high_watermark: int
    log_start_offset: int


def read_key_records(plog, key: bytes, *, last: int | None = None, from_ms: int | None = None,
                     to_ms: int | None = None) -> KeyRecords:
    """The records with ``key`` in [log start, high watermark) of ``plog`` (a PartitionLog
    whose topic has ``key.index.enable``), with timestamps in [from_ms, to_ms] when given,
    the ``last`` of them when given; in log order. Reads only the batches the index names."""
    with plog._lock:  # the log's state lock: segments, offsets and the index move together
        index: KeyIndex = plog.key_index
        start, hw = plog.log_start_offset, plog.flushed_offset
        segs = {s.base_offset: s for s in plog.segments}
        candidates = [c for c in index.candidates(key) if c[0] in segs]
    found = KeyIndex.resolve(candidates)
    batches_read = 0
    picked: list[list[Record]] = []
    total = 0
    for base, position in reversed(found):
        seg = segs[base]
        batch = _read_batch(seg, position)
        batches_read += 1
        if batch is None:
            log.warning("%s: key index names a batch at %s:%d that is not there; skipped",
                        plog.name, segment_prefix(base), position)
            continue
        if batch.base_offset >= hw:
            continue
        if batch.last_offset < start:
            break
        if from_ms is not None and batch.max_timestamp < from_ms:
            if batch.timestamp_type != LOG_APPEND_TIME:
                continue
        lat = batch.max_timestamp if batch.timestamp_type == LOG_APPEND_TIME else None
        mine = [r for r in _records(batch, lat, plog.decompressed_bytes_max)
                if r.key == key and start <= r.offset < hw
                and (from_ms is None or r.timestamp >= from_ms)
                and (to_ms is None or r.timestamp <= to_ms)]
        if mine:
            picked.append(mine)
            total += len(mine)
            if last is not None and total >= last:
                break
    records = [r for group in reversed(picked) for r in group]
    if last is not None:
        records = records[len(records) - last:] if last < len(records) else records
        if last == 0:
            records = []
    return KeyRecords(records, batches_read, hw, start)


def _records(batch: RecordBatch, lat: int | None, cap: int) -> Iterable[Record]:
    section = batch.records_section(cap)
    return iter_records(section, batch.records_count, batch.base_offset, batch.base_timestamp, lat)


def _read_batch(seg, position: int) -> RecordBatch | None:
    """The batch at ``position``, CRC-checked (the bytes may not have been verified in this
    process yet), or None when what is there is not a whole valid batch."""
    data = seg.file.pread(_READ_GUESS_BYTES, position)
    if len(data) < HEADER_BYTES:
        return None
    size = HEADER.unpack_from(data, 0)[1] + LOG_OVERHEAD
    if size > len(data):
        data = seg.file.pread(size, position)
        if len(data) < size:
            return None
    try:
        batch = RecordBatch(data)
    except ApiError:
        return None
    if crc32c(batch.buf[ATTRIBUTES_AT:]) != batch.crc:
        return None
    return batch


def full_scan_key_records(plog, key: bytes, *, last: int | None = None,
                          from_ms: int | None = None, to_ms: int | None = None,
                          batches: Callable | None = None) -> list[Record]:
    """The same answer as ``read_key_records`` by reading every batch (the oracle of the
    tests, and the answer for a topic without the index)."""
    start, hw = plog.log_start_offset, plog.flushed_offset
    out = []
    for batch in plog.batches(start):
        if batch.base_offset >= hw:
            break
        if batch.is_control:
            continue
        lat = batch.max_timestamp if batch.timestamp_type == LOG_APPEND_TIME else None
        for r in _records(batch, lat, plog.decompressed_bytes_max):
            if (r.key == key and start <= r.offset < hw
                    and (from_ms is None or r.timestamp >= from_ms)
                    and (to_ms is None or r.timestamp <= to_ms)):
                out.append(r)
    if last is not None:
        out = out[max(0, len(out) - last):] if last else []
    return out

"""One log segment: ``<base>.log`` plus its ``.index`` and ``.timeindex``.

Theory of operation. A segment owns the byte range of the log from ``base_offset`` up to the
next segment's base. The ``.log`` file is the plain concatenation of record batches. The
segment keeps a *logical* size: bytes below it hold complete, validated batches; anything the
file holds beyond it (a write that failed half way and could not be truncated) is garbage that
the next write overwrites and flush/close/recovery truncate. Writes are positional
(``pwritev`` at the logical size) for exactly that reason.

Appends write the data first, then the index entries; if the index write fails, the data
write is undone, so the caller sees either a whole append or a ``KafkaStorageError`` and an
unchanged segment.

Indexes are derived data, and the rule for their files is: *right or absent*. When an index
cannot be written (a full disk at recovery, on close, or on a rewrite after a mismatch),
the segment keeps its entries in memory, removes the file it could not make right and
marks itself ``indexes_offline``: appends index in memory only, and every flush tries the
rewrite again (so the files come back once there is room). Files only change under the
lock appends take (``settle_indexes``), so an append never writes an entry into a file that
is being replaced or removed. A missing index is rebuilt
from the log by the next start's recovery, so nothing on disk ever misleads a reader.

Recovery scans batch headers (and CRCs when asked) from a starting point, adding the index
entries the append rule would have added, and stops at the first batch that is truncated,
malformed, out of offset order or (when verifying) fails its CRC. Three depths:

- ``walk``: headers only, from the last offset-index entry (closed segments after a clean
  shutdown, and closed segments wholly below the recovery point after an unclean one: it
  learns the segment's end offset and catches a torn index cheaply);
- ``tail``: headers and CRCs from the last offset-index entry (the active segment after a
  clean shutdown);
- ``full``: headers and CRCs from byte 0 with both indexes rebuilt from scratch (segments at
  or past the recovery point after an unclean shutdown, a segment whose index is missing or
  inconsistent, and any segment a walk or tail check found an invalid batch in).

When a full scan stops at an invalid batch, the rest of the file is searched for the next
valid batch (damage.py). If there is one, the damaged bytes are isolated: the valid tail is
copied into a new segment named after its base offset (tmp file, fsync, rename, fsync dir:
durable before anything is cut), the damaged bytes go to a ``.quarantine`` file for
forensics, and this segment is cut where the damage began. The log then has an offset gap,
which Kafka clients handle as they do after compaction. If nothing valid follows, the bytes
are cut off (a torn tail after a crash; quarantined too when the caller says the bytes were
known flushed). Nothing is ever cut before what follows it is safe elsewhere.

*Lazy verification.* A walk or tail check does not read every CRC, so ``unverified`` holds
the byte ranges this process has not CRC-checked. Reads that touch them go through
``VerifyingScan``, which checks each batch there once (header sanity, offsets increasing,
CRC) and steps over a bad one (logged once, remembered in ``skips``, never served). Data
appended or fully scanned in this process is never in ``unverified``, so the hot read path
is the plain ``BatchScan`` it always was: one range check per read, no per-batch work.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from crc32c import crc32c

from kafkito.records.batch import (
    ATTRIBUTES_AT,
    BATCH_LENGTH_MIN,
    HEADER,
    HEADER_BYTES,
    LOG_OVERHEAD,
    MAGIC,
)

from .damage import (
    REL_OFFSET_MAX,
    BatchBounds,
    ByteRanges,
    DamagedRange,
    crc_ok,
    declared_end,
    find_next_batch,
    header_problem,
    quarantine_name,
)
from .errors import KafkaStorageError
from .fileio import FileIO
from .handles import FileHandle, OpenFiles, PinnedFile, default_open_files
from .index import OffsetIndex, TimeIndex

log = logging.getLogger("kafkito.storage.segment")

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIMEINDEX_SUFFIX = ".timeindex"
DELETED_SUFFIX = ".deleted"
SEGMENT_SUFFIXES = (LOG_SUFFIX, INDEX_SUFFIX, TIMEINDEX_SUFFIX)
TMP_SUFFIX = ".tmp"  # removed as a leftover on open (see log.py)
SCAN_CHUNK_BYTES = 1 << 20
READ_CHUNK_BYTES = 64 * 1024


def segment_prefix(base_offset: int) -> str:
    return f"{base_offset:020d}"


def storage_error(what: str, path: str, e: OSError) -> KafkaStorageError:
    return KafkaStorageError(f"{what} {path}: {e.strerror or e}", e.errno)


class BatchScan:
    """Walk batches of a file region: yields ``(position, header fields, batch view or None)``.

    Stops quietly at the end or at the first batch that cannot be valid; ``stop_reason`` says
    why (None = clean end). With ``need_body`` the whole batch is read (for CRCs or copies).
    """

    def __init__(self, file: FileHandle | PinnedFile, start: int, end: int, *, need_body: bool,
                 verify_crc: bool = False, chunk_bytes: int = SCAN_CHUNK_BYTES):
        self.file, self.start, self.end = file, start, end
        self.need_body = need_body or verify_crc
        self.verify_crc = verify_crc
        self.chunk_bytes = chunk_bytes
        self.stop_reason: str | None = None
        self.stop_position = start

    def __iter__(self) -> Iterator[tuple[int, tuple, memoryview | None]]:
        pos, end = self.start, self.end
        buf = b""
        buf_at = pos
        while pos < end:
            self.stop_position = pos
            if end - pos < HEADER_BYTES:
                self.stop_reason = f"truncated batch header ({end - pos} bytes)"
                return
            off = pos - buf_at
            if off < 0 or off + HEADER_BYTES > len(buf):
                buf = self.file.pread(min(self.chunk_bytes, end - pos), pos)
                buf_at, off = pos, 0
                if len(buf) < HEADER_BYTES:
                    self.stop_reason = "file shorter than expected"
                    return
            fields = HEADER.unpack_from(buf, off)
            batch_length, magic = fields[1], fields[3]
            size = batch_length + LOG_OVERHEAD
            if magic != MAGIC:
                self.stop_reason = f"bad magic {magic}"
                return
            if batch_length < BATCH_LENGTH_MIN or pos + size > end:
                self.stop_reason = f"batch length {batch_length} overruns the segment"
                return
            view = None
            if self.need_body:
                if off + size > len(buf):
                    buf = self.file.pread(min(max(self.chunk_bytes, size), end - pos), pos)
                    buf_at, off = pos, 0
                    if len(buf) < size:
                        self.stop_reason = "file shorter than expected"
                        return
                view = memoryview(buf)[off : off + size]
                if self.verify_crc and crc32c(view[ATTRIBUTES_AT:]) != fields[4]:
                    self.stop_reason = "CRC-32C mismatch"
                    return
            yield pos, fields, view
            pos += size
        self.stop_position = pos


class VerifyingScan:
    """BatchScan for a segment part of which this process has not CRC-checked: every batch
    is held to the header checks (magic, length within the segment, offsets increasing and
    contiguous where the log is, a possible leader epoch) and, where its bytes are in
    ``seg.unverified``, to its CRC, once; a bad batch is isolated (``LogSegment.isolate``)
    and stepped over, never yielded. With ``stop_at_gap`` the scan ends at a skipped batch
    once it has yielded one, because a FileSlice must be one contiguous byte range."""

    stop_reason = None  # it never stops at a bad batch: it steps over it

    def __init__(self, seg: "LogSegment", start: int, end: int, *, stop_at_gap: bool = False,
                 chunk_bytes: int = READ_CHUNK_BYTES):
        self.seg, self.start, self.end, self.stop_at_gap = seg, start, end, stop_at_gap
        self.chunk_bytes = chunk_bytes
        self.stop_position = start

    def __iter__(self) -> Iterator[tuple[int, tuple, memoryview]]:
        seg, end = self.seg, self.end
        file = seg.file  # pinned per read (handles.py): a scan may be abandoned half-way
        pos = self.start
        after = seg.base_offset - 1  # offsets must rise above the last good batch's
        expected = seg.base_offset if pos == 0 and seg.contiguous_offsets else None
        buf, buf_at = b"", pos
        yielded = False
        while pos < end:
            resume = seg.skip_target(pos)
            if resume is None:
                off = pos - buf_at
                if off < 0 or off + HEADER_BYTES > len(buf):
                    buf, buf_at, off = file.pread(min(self.chunk_bytes, end - pos), pos), pos, 0
                fields, problem, view, checked = self._check(buf, off, pos, after, expected)
                if problem == "reread":
                    buf, buf_at = file.pread(fields[1] + LOG_OVERHEAD, pos), pos
                    fields, problem, view, checked = self._check(buf, 0, pos, after, expected)
                    if problem == "reread":
                        problem = "file shorter than expected"
                if problem is None:
                    size = len(view)
                    if checked:
                        seg.unverified.remove(pos, pos + size)
                    self.stop_position = pos + size
                    yield pos, fields, view
                    yielded = True
                    after = fields[0] + fields[6]
                    expected = after + 1 if seg.contiguous_offsets else None
                    pos += size
                    continue
                with seg.pinned_fd() as fd:
                    declared = declared_end(seg.io, fd, pos, end)
                resume = seg.isolate(pos, end, problem, after, declared)
            if yielded and self.stop_at_gap:
                return
            pos, expected = resume, None
        self.stop_position = pos

    def _check(self, buf: bytes, off: int, pos: int, after: int, expected: int | None):
        """(fields, problem or None or "reread", batch view, CRC checked)."""
        seg = self.seg
        if len(buf) - off < HEADER_BYTES:
            return None, f"truncated batch header ({len(buf) - off} bytes)", None, False
        fields = HEADER.unpack_from(buf, off)
        bounds = BatchBounds(seg.base_offset, after, None, seg.leader_epoch_max)
        problem = header_problem(fields, pos, self.end, bounds)
        if problem is not None:
            return None, problem, None, False
        if expected is not None and fields[0] != expected:
            return None, f"batch at offset {fields[0]} leaves a gap after {expected - 1}", None, False
        size = fields[1] + LOG_OVERHEAD
        if off + size > len(buf):
            return fields, "reread", None, False
        view = memoryview(buf)[off : off + size]
        checked = seg.unverified.overlaps(pos, pos + size)
        if checked and not crc_ok(view, fields):
            return fields, "CRC-32C mismatch", None, False
        return fields, None, view, checked


class IndexMismatch(Exception):
    """An index entry does not describe the batch it points at."""


@dataclass
class SegmentRecovery:
    base_offset: int
    mode: str  # walk, tail, full (see the module docstring) or quarantined (the whole file)
    truncated_bytes: int = 0  # bytes cut off this segment that are kept nowhere in the log
    reason: str | None = None
    index_rebuilt: bool = False
    damage: DamagedRange | None = None  # what was cut, where, which offsets
    split_base: int | None = None  # base offset of the new segment the valid tail went to
    moved_bytes: int = 0  # bytes of that tail


class LogSegment:
    def __init__(self, directory: str, base_offset: int, io: FileIO, *,
                 segment_index_bytes: int, created_ms: int, files: OpenFiles | None = None):
        files = files or default_open_files()
        self.directory = directory
        self.base_offset = base_offset
        self.io = io
        self.files = files
        prefix = os.path.join(directory, segment_prefix(base_offset))
        self.log_path = prefix + LOG_SUFFIX
        self.offset_index = OffsetIndex(prefix + INDEX_SUFFIX, base_offset,
                                        segment_index_bytes // OffsetIndex.ENTRY_BYTES, io, files)
        self.time_index = TimeIndex(prefix + TIMEINDEX_SUFFIX, base_offset,
                                    segment_index_bytes // TimeIndex.ENTRY_BYTES, io, files)
        # The .log file, opened on demand through the open-file cache (handles.py).
        self.file: FileHandle = files.handle(io, self.log_path)
        self.size = 0  # logical size: complete batches only
        self.next_offset = base_offset
        self.max_timestamp = -1
        self.offset_of_max_timestamp = -1
        self.bytes_since_index_entry = 0
        self.created_ms = created_ms
        self.data_dirty = False  # appended since the last fsync
        self.garbage_tail = False  # the file may hold bytes past self.size
        self.deleted = False
        self.indexes_offline: str | None = None  # why the index files are absent (see above)
        self.index_removal_failed = False  # a wrong index file could not be removed
        self.index_fsync_error: str | None = None  # noted by fsync_indexes, for settle_indexes
        # Recovery checks that the CRC cannot: baseOffset and partitionLeaderEpoch sit before
        # the CRC'd range. Without compaction every batch starts where the previous one ended
        # (so a damaged baseOffset shows as a gap), and every epoch is one we stamped.
        self.contiguous_offsets = True
        self.leader_epoch_max = 0
        # Lazy verification (module docstring): byte ranges not CRC-checked in this process,
        # the damaged ranges found on read ((start, resume) pairs), and their descriptions.
        self.unverified = ByteRanges()
        self.skips: list[tuple[int, int]] = []
        self.damage: list[DamagedRange] = []

    # ------------------------------------------------------------------------ lifecycle
    @classmethod
    def create(cls, directory: str, base_offset: int, io: FileIO, *, segment_index_bytes: int,
               created_ms: int, files: OpenFiles) -> "LogSegment":
        seg = cls(directory, base_offset, io, segment_index_bytes=segment_index_bytes,
                  created_ms=created_ms, files=files)
        try:
            seg.file.open_now(os.O_CREAT | os.O_EXCL)
        except OSError as e:
            raise storage_error("cannot create segment", seg.log_path, e) from e
        try:
            # Create the index files now so a directory listing always shows whole segments.
            seg.offset_index.create_file()
            seg.time_index.create_file()
        except OSError as e:
            seg.close()
            for path in (seg.log_path, seg.offset_index.path, seg.time_index.path):
                try:
                    io.unlink(path)
                except OSError:
                    pass
            raise storage_error("cannot create index for segment", seg.log_path, e) from e
        seg.data_dirty = True  # the new files' existence must reach the disk with the next flush
        return seg

    @classmethod
    def open_existing(cls, directory: str, base_offset: int, io: FileIO, *,
                      segment_index_bytes: int, created_ms: int,
                      files: OpenFiles) -> "LogSegment":
        """The segment's files are opened when first used (recovery opens the .log)."""
        return cls(directory, base_offset, io, segment_index_bytes=segment_index_bytes,
                   created_ms=created_ms, files=files)

    def close(self) -> None:
        self.offset_index.close()
        self.time_index.close()
        self.file.close()

    def release_index_fds(self) -> None:
        """Indexes of a closed, flushed segment are only read (from memory)."""
        if not self.offset_index.dirty and not self.time_index.dirty:
            self.offset_index.release()
            self.time_index.release()

    @contextmanager
    def pinned_fd(self) -> Iterator[int]:
        """The .log descriptor for helpers that take (io, fd); kept open until the end."""
        fd = self.file.pin()
        try:
            yield fd
        finally:
            self.file.unpin()

    def renamed(self, suffix: str) -> None:
        """Its files were renamed to ``<path><suffix>`` (deletion): reopen them there."""
        self.file.renamed(self.log_path + suffix)
        self.offset_index.renamed(self.offset_index.path + suffix)
        self.time_index.renamed(self.time_index.path + suffix)

    @property
    def is_empty(self) -> bool:
        return self.size == 0

    @property
    def dirty(self) -> bool:
        return (self.data_dirty or self.offset_index.dirty or self.time_index.dirty
                or self.indexes_offline is not None)

    def largest_timestamp(self) -> int:
        """Newest record timestamp, or the file's mtime when no batch carries one (as Kafka)."""
        if self.max_timestamp >= 0:
            return self.max_timestamp
        try:
            return int(os.stat(self.log_path).st_mtime * 1000)
        except OSError:
            return 0

    # -------------------------------------------------------------------------- append
    def can_hold(self, last_offset: int) -> bool:
        return last_offset - self.base_offset <= REL_OFFSET_MAX

    def append(self, iovecs: list, batches: list[tuple[int, int, int]], index_interval_bytes: int) -> None:
        """Write stamped batches at the end. ``batches``: (last_offset, size, max_timestamp)
        per batch, in order. All or nothing: raises KafkaStorageError with state unchanged."""
        start = self.size
        if self.garbage_tail:
            self._truncate_garbage()
        try:
            written = self.file.pwritev(iovecs, start)
        except OSError as e:
            self._undo_data(start)
            raise storage_error("cannot append to", self.log_path, e) from e
        saved = (self.bytes_since_index_entry, self.max_timestamp, self.offset_of_max_timestamp)
        n_offset, n_time = len(self.offset_index), len(self.time_index)
        pos = start
        last = self.next_offset - 1
        try:
            for last, size, max_ts in batches:
                self._index_batch(last, pos, size, max_ts, index_interval_bytes,
                                  write=self.indexes_offline is None)
                pos += size
        except OSError as e:
            self.bytes_since_index_entry, self.max_timestamp, self.offset_of_max_timestamp = saved
            for index, n in ((self.offset_index, n_offset), (self.time_index, n_time)):
                try:
                    index.truncate_entries(n)
                except OSError:
                    index._drop_from(n)  # memory matches the valid prefix; recovery fixes the file
            self._undo_data(start)
            raise storage_error("cannot write index of", self.log_path, e) from e
        assert pos - start == written
        self.size = pos
        self.next_offset = last + 1
        self.data_dirty = True

    def _index_batch(self, last_offset: int, position: int, size: int, max_ts: int,
                     interval: int, *, write: bool) -> None:
        """The one indexing rule, shared by append and recovery."""
        if max_ts > self.max_timestamp:
            self.max_timestamp = max_ts
            self.offset_of_max_timestamp = last_offset
        if self.bytes_since_index_entry > interval:
            if write:
                self.offset_index.append(last_offset, position)
                self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
            else:
                self.offset_index.add_in_memory(last_offset, position)
                self.time_index.maybe_add_in_memory(self.max_timestamp, self.offset_of_max_timestamp)
            self.bytes_since_index_entry = 0
        self.bytes_since_index_entry += size

    def _undo_data(self, size: int) -> None:
        try:
            self.file.ftruncate(size)
            self.garbage_tail = False
        except OSError:
            self.garbage_tail = True

    def _truncate_garbage(self) -> None:
        try:
            self.file.ftruncate(self.size)
            self.garbage_tail = False
        except OSError as e:
            raise storage_error("cannot truncate failed write in", self.log_path, e) from e

    def seal(self) -> None:
        """On roll or close: record the segment's max timestamp as the last time-index entry.
        Never fails: an entry that cannot be written takes the index files offline."""
        if self.indexes_offline is not None:
            self.seal_in_memory()
            return
        try:
            if self.max_timestamp >= 0:
                self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
        except OSError as e:
            self.seal_in_memory()
            self._take_indexes_offline(f"cannot seal the time index: {e.strerror or e}")

    # --------------------------------------------------------------------------- flush
    def fsync_data(self) -> None:
        if self.garbage_tail:
            self._truncate_garbage()
        self.data_dirty = False
        try:
            self.file.fdatasync()
        except OSError:
            self.data_dirty = True
            raise

    def fsync_indexes(self) -> None:
        """fsync both indexes. Never fails: a failure is noted, and ``settle_indexes``
        removes the files (it changes files, so it runs where appends cannot interleave)."""
        if self.indexes_offline is not None:
            return
        try:
            self.offset_index.fsync()
            self.time_index.fsync()
        except OSError as e:
            self.index_fsync_error = f"cannot fsync an index: {e.strerror or e}"

    def settle_indexes(self) -> None:
        """After ``fsync_indexes``, under the lock appends take: remove indexes that could
        not be made durable (recovery rebuilds them), or write offline ones anew."""
        if self.index_fsync_error is not None:
            reason, self.index_fsync_error = self.index_fsync_error, None
            self._take_indexes_offline(reason)
        elif self.indexes_offline is not None:
            self.write_indexes()

    def write_indexes(self) -> bool:
        """Replace both index files with the in-memory entries. On failure (ENOSPC, EIO) the
        files are removed and the entries kept in memory; returns whether it worked."""
        try:
            self.offset_index.rewrite()
            self.time_index.rewrite()
        except OSError as e:
            self._take_indexes_offline(f"cannot rewrite the indexes: {e.strerror or e}")
            return False
        if self.indexes_offline is not None:
            log.info("segment %s: indexes written again", self.log_path)
            self.indexes_offline = None
            self.index_removal_failed = False
        return True

    def _take_indexes_offline(self, reason: str) -> None:
        """Keep the entries in memory and remove the files we cannot make right (unlink needs
        no free space), so the next start rebuilds them from the log instead of trusting them."""
        first = self.indexes_offline is None
        self.indexes_offline = reason
        for index in (self.offset_index, self.time_index):
            try:
                index.close()
            except OSError:
                pass
            index.dirty = False
            for path in (index.path, index.path + ".rebuild"):
                try:
                    self.io.unlink(path)
                except FileNotFoundError:
                    pass
                except OSError as e:
                    # A wrong index left behind: recovery checks the entries it uses and
                    # rebuilds on a mismatch, but the caller must not claim a clean close.
                    self.indexes_offline = f"{reason}; cannot remove {path}: {e.strerror or e}"
                    self.index_removal_failed = True
        if first:
            log.warning("segment %s: %s; its indexes are kept in memory and rebuilt from the "
                        "log at the next start", self.log_path, reason)

    # ---------------------------------------------------------------------------- read
    def find_batch(self, offset: int, end: int, file: PinnedFile | None = None) -> int | None:
        """Position of the first batch whose last offset >= ``offset`` (None: past the end).

        Raises IndexMismatch when the index entry used does not name the batch it points at
        (an index damaged while the data is fine): the caller rebuilds the index."""
        entry_offset, pos = self.offset_index.lookup(offset)
        from_entry = pos != 0 or entry_offset != self.base_offset
        scan = self.headers_from(pos, end, file=file)
        for p, fields, _ in scan:
            last = fields[0] + fields[6]
            if from_entry and p == pos and last != entry_offset:
                raise IndexMismatch(f"{self.offset_index.path}: entry {entry_offset}@{pos} names "
                                    f"a batch ending at {last}")
            if last >= offset:
                return p
        if scan.stop_reason is not None:
            if from_entry:
                raise IndexMismatch(f"{self.offset_index.path}: entry {entry_offset}@{pos} does "
                                    f"not lead to valid batches ({scan.stop_reason})")
            raise KafkaStorageError(f"{self.log_path}: invalid batch at {scan.stop_position} "
                                    f"({scan.stop_reason})")
        return None

    def rebuild_indexes(self, index_interval_bytes: int) -> None:
        """Rebuild both indexes from the (valid) data below the logical size, in place."""
        offset_index = OffsetIndex(self.offset_index.path, self.base_offset,
                                   self.offset_index.entries_max, self.io, self.files)
        time_index = TimeIndex(self.time_index.path, self.base_offset,
                               self.time_index.entries_max, self.io, self.files)
        saved = (self.offset_index, self.time_index, self.size, self.next_offset,
                 self.max_timestamp, self.offset_of_max_timestamp, self.bytes_since_index_entry)
        self.offset_index, self.time_index = offset_index, time_index
        self._reset_state()
        valid_end, reason = self._scan(0, saved[2], index_interval_bytes, verify=True,
                                       resume_entry=None)
        if valid_end != saved[2]:
            (self.offset_index, self.time_index, self.size, self.next_offset, self.max_timestamp,
             self.offset_of_max_timestamp, self.bytes_since_index_entry) = saved
            raise KafkaStorageError(f"{self.log_path}: data damaged at {valid_end} ({reason})")
        saved[0].close()
        saved[1].close()
        self.write_indexes()
        self.unverified = ByteRanges()  # the rebuild CRC-checked every batch
        log.warning("segment %s: index did not match the data; rebuilt it", self.log_path)

    def headers_from(self, position: int, end: int, *, stop_at_gap: bool = False,
                     file: PinnedFile | None = None):
        """Batches from ``position``: (position, header fields, view or None). Bytes this
        process has not CRC-checked are checked on the way (VerifyingScan). ``file``: the
        segment's file already pinned by the caller (one pin for a whole read)."""
        if self.needs_care(position, end):
            return VerifyingScan(self, position, end, stop_at_gap=stop_at_gap)
        return BatchScan(file or self.file, position, end, need_body=False,
                         chunk_bytes=READ_CHUNK_BYTES)

    def bodies_from(self, position: int, end: int):
        if self.needs_care(position, end):
            return VerifyingScan(self, position, end)
        return BatchScan(self.file, position, end, need_body=True)

    def needs_care(self, start: int, end: int) -> bool:
        """Does [start, end) hold bytes not CRC-checked in this process, or a known bad batch?"""
        if self.unverified and self.unverified.overlaps(start, end):
            return True
        return bool(self.skips) and any(a < end and start < b for a, b in self.skips)

    def skip_target(self, position: int) -> int | None:
        for a, b in self.skips:
            if a <= position < b:
                return b
        return None

    def isolate(self, position: int, end: int, reason: str, after_offset: int,
                declared_end: int | None) -> int:
        """A bad batch found on read: find where valid batches resume (``end`` if nowhere),
        remember it so no read serves or re-checks these bytes, and log it once."""
        bounds = BatchBounds(self.base_offset, after_offset, None, self.leader_epoch_max)
        with self.pinned_fd() as fd:
            found = find_next_batch(self.io, fd, position, end, bounds, declared_end)
        resume, last = (found[0], found[1][0] - 1) if found else (end, None)
        if self.skip_target(position) is None:
            self.skips = self.skips + [(position, resume)]
            damage = DamagedRange(self.base_offset, position, resume - position, reason,
                                  after_offset + 1, last)
            self.damage.append(damage)
            log.error("%s: not serving a damaged batch: %s", self.log_path, damage.describe())
        return resume

    # ------------------------------------------------------------------------ recovery
    def recover(self, mode: str, index_interval_bytes: int, *, next_base: int | None = None,
                keep_cut: bool = False) -> SegmentRecovery:
        """Scan (see module docstring), isolate or cut off what is invalid, rebuild what the
        indexes miss. ``next_base``: the next segment's base offset (offsets here must stay
        below it). ``keep_cut``: bytes cut off the end are quarantined, not just dropped
        (the caller knows they were flushed, or more segments follow)."""
        report = SegmentRecovery(self.base_offset, mode)
        file_size = self.file.fstat_size()
        raw_offset = self.offset_index.read_file()
        raw_time = self.time_index.read_file()
        if mode != "full":
            problem = None
            if raw_offset is None or raw_time is None:
                problem = "index file missing"
            elif not self.offset_index.load(raw_offset) or not self.time_index.load(raw_time):
                problem = "index entries inconsistent"
            elif len(self.offset_index) and self.offset_index.positions[-1] >= file_size:
                problem = "index points past the end of the log"
            if problem is None:
                result = self._scan_from_last_entry(mode, file_size, index_interval_bytes)
                if isinstance(result, str):
                    problem = result
                else:
                    changed, checked_from = result
                    self.unverified = ByteRanges([(0, checked_from if mode == "tail" else self.size)])
            if problem is not None:
                log.info("segment %s: %s; scanning it whole", self.log_path, problem)
                mode = report.mode = "full"
        if mode == "full":
            self._scan_full(file_size, index_interval_bytes, report, next_base, keep_cut)
            self.unverified = ByteRanges()
            changed = (self.offset_index.file_bytes() != raw_offset
                       or self.time_index.file_bytes() != raw_time)
        if changed:
            self.write_indexes()  # on a full disk: kept in memory (see the module docstring)
            report.index_rebuilt = True
        return report

    def _reset_state(self) -> None:
        self.size = 0
        self.next_offset = self.base_offset
        self.max_timestamp = -1
        self.offset_of_max_timestamp = -1
        self.bytes_since_index_entry = 0

    def _scan_full(self, file_size: int, interval: int, report: SegmentRecovery,
                   next_base: int | None, keep_cut: bool) -> None:
        self.offset_index.clear()
        self.time_index.clear()
        self._reset_state()
        valid_end, reason = self._scan(0, file_size, interval, verify=True, resume_entry=None)
        if valid_end == 0:
            self.next_offset = self.base_offset
        self.seal_in_memory()
        if valid_end == file_size:
            return
        report.reason = reason
        bounds = BatchBounds(self.base_offset, self.next_offset - 1, next_base, self.leader_epoch_max)
        with self.pinned_fd() as fd:
            found = find_next_batch(self.io, fd, valid_end, file_size, bounds,
                                    declared_end(self.io, fd, valid_end, file_size))
        damaged_end, last_lost = file_size, (next_base - 1 if next_base is not None else None)
        if found is not None:
            damaged_end, new_base = found[0], found[1][0]
            last_lost = new_base - 1
            # The valid tail is safe in its own segment before a byte of this one is cut.
            self._copy_range(damaged_end, file_size, segment_prefix(new_base) + LOG_SUFFIX)
            report.split_base, report.moved_bytes = new_base, file_size - damaged_end
        quarantine = None
        if found is not None or keep_cut:
            name = quarantine_name(self.base_offset, valid_end)
            try:
                self._copy_range(valid_end, damaged_end, name)
                quarantine = name
            except KafkaStorageError as e:  # forensics only: never a reason to keep bad bytes
                log.warning("segment %s: cannot quarantine damaged bytes: %s", self.log_path, e)
        report.damage = DamagedRange(self.base_offset, valid_end, damaged_end - valid_end,
                                     reason or "invalid batch", self.next_offset, last_lost,
                                     quarantine)
        self._cut(valid_end, file_size)
        report.truncated_bytes = damaged_end - valid_end

    def _copy_range(self, start: int, end: int, name: str) -> None:
        """Copy bytes [start, end) of this file into ``name`` in the same directory, durably
        (tmp file, fsync, rename, fsync dir)."""
        path = os.path.join(self.directory, name)
        tmp = path + TMP_SUFFIX
        try:
            fd = self.io.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            try:
                pos = start
                while pos < end:
                    chunk = self.file.pread(min(SCAN_CHUNK_BYTES, end - pos), pos)
                    if not chunk:
                        raise OSError(f"short read at {pos}")
                    self.io.pwritev(fd, [chunk], pos - start)
                    pos += len(chunk)
                self.io.fsync(fd)
            finally:
                self.io.close(fd)
            self.io.rename(tmp, path)
            self.io.fsync_dir(self.directory)
        except OSError as e:
            raise storage_error("cannot write", path, e) from e

    def _scan_from_last_entry(self, mode: str, file_size: int, interval: int):
        """Returns (index changed, position the scan started at) when the scan from the last
        index entry reaches the end of the file cleanly, else a problem string that asks for
        a full scan (which also isolates what is damaged)."""
        self._reset_state()
        n_offset, n_time = len(self.offset_index), len(self.time_index)
        last_time = self.time_index.last_entry()
        if last_time is not None:
            self.max_timestamp, self.offset_of_max_timestamp = last_time
        entry = self.offset_index.last_entry()
        start = entry[1] if entry else 0
        result = self._scan(start, file_size, interval, verify=(mode == "tail"),
                            resume_entry=entry)
        if isinstance(result, str):
            return result
        valid_end, reason = result
        if entry is not None and valid_end <= start:
            return "last index entry points at an invalid batch"
        if valid_end != file_size:
            return f"invalid batch at position {valid_end} ({reason})"
        if last_time is not None and last_time[1] >= self.next_offset:
            return "time index points past the end of the log"
        self.seal_in_memory()
        changed = len(self.offset_index) != n_offset or len(self.time_index) != n_time
        return changed, start

    def _scan(self, start: int, end: int, interval: int, *, verify: bool,
              resume_entry: tuple[int, int] | None):
        """Scan from ``start``; returns (valid end position, stop reason or None), or a problem
        string when the resume point does not match the index."""
        scan = BatchScan(self.file, start, end, need_body=verify, verify_crc=verify,
                         chunk_bytes=SCAN_CHUNK_BYTES if verify else READ_CHUNK_BYTES)
        expected = self.base_offset
        valid_end = start
        reason = None
        for pos, fields, _view in scan:
            base, last_delta = fields[0], fields[6]
            last = base + last_delta
            resumed = resume_entry is not None and pos == start
            if base < expected or last_delta < 0 or last - self.base_offset > REL_OFFSET_MAX:
                reason = f"offsets [{base}, {last}] out of order after {expected - 1}"
                break
            if self.contiguous_offsets and base != expected and not resumed:
                reason = f"batch at offset {base} leaves a gap after {expected - 1}"
                break
            if not -1 <= fields[2] <= self.leader_epoch_max:
                reason = f"impossible partition leader epoch {fields[2]}"
                break
            size = fields[1] + LOG_OVERHEAD
            if resumed:
                # This batch already has the last index entry: it must be the one it names.
                if last != resume_entry[0]:
                    return "last index entry names a different batch"
                if fields[8] > self.max_timestamp:
                    self.max_timestamp, self.offset_of_max_timestamp = fields[8], last
                self.bytes_since_index_entry = size
            else:
                self._index_batch(last, pos, size, fields[8], interval, write=False)
            expected = last + 1
            self.next_offset = expected
            valid_end = pos + size
        else:
            reason = scan.stop_reason
        self.size = valid_end
        return valid_end, reason

    def seal_in_memory(self) -> None:
        if self.max_timestamp >= 0:
            self.time_index.maybe_add_in_memory(self.max_timestamp, self.offset_of_max_timestamp)

    def _cut(self, valid_end: int, file_size: int) -> int:
        """Cut the log at ``valid_end`` and drop index entries that point past it."""
        self.size = valid_end
        if self.size == 0:
            self.next_offset = self.base_offset
        keep = self.offset_index.entries_below_position(valid_end)
        self.offset_index._drop_from(keep)
        keep = self.time_index.entries_below_offset(self.next_offset)
        self.time_index._drop_from(keep)
        if self.max_timestamp >= 0 and self.offset_of_max_timestamp >= self.next_offset:
            # The max came from a cut batch; the time index's last entry is the best we know.
            last = self.time_index.last_entry()
            self.max_timestamp, self.offset_of_max_timestamp = last if last else (-1, -1)
        truncated = file_size - valid_end
        if truncated > 0:
            try:
                self.file.ftruncate(valid_end)
            except OSError as e:
                raise storage_error("cannot truncate", self.log_path, e) from e
            self.data_dirty = True
        return truncated

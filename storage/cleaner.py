"""Log compaction: keep the latest record of each key (Kafka's LogCleaner, in its semantics).

Theory of operation.

*What may be cleaned.* A compacted log (``cleanup.policy`` has ``compact``) is split at two
offsets: the *first dirty offset* (where the last clean stopped, kept in the partition's
``cleaner-offset-checkpoint``; the log start offset when there is none) and the *cleanable
upper bound*: no closed segment at or past ``cleanable_upper_offset`` (today the active
segment's base offset or the flushed offset, whichever is lower; with transactions the last
stable offset), nor one whose newest record is younger than ``min.compaction.lag.ms``, is
cleaned. Below the first dirty offset is the *clean* section, above it the *dirty* one.
``plan`` measures them; a log is due when dirty / (clean + dirty) reaches
``min.cleanable.dirty.ratio``, when its oldest dirty record is older than
``max.compaction.lag.ms``, or when a delete horizon it recorded has passed (tombstones or
markers may go). ``choose`` orders the due logs dirtiest first (Kafka's order).

*One clean* (``Cleaner.clean``) is two reads:

1. The *offset map*: the dirty section is read batch by batch and each key's latest offset
   put in a map of at most ``capacity`` keys (``log.cleaner.dedupe.buffer.size`` / 24 bytes,
   Kafka's MD5 + offset, times ``log.cleaner.io.buffer.load.factor``; keys longer than 15
   bytes are kept as 16-byte BLAKE2b digests). When the next batch would not fit, the map
   ends there: this clean goes up to that offset and the next clean starts at it (several
   passes for a log with more keys than the map holds). Control batches are not keys; a
   transactional batch's keys wait beside the map until its producer's marker is read (a
   commit adds them, an abort drops them); a transaction whose marker lies past the map's
   end is looked up in the aborted-transaction index (``_MarkerBook``).
2. The *rewrite*: every segment from the log start up to the map's end is read again, in
   groups of consecutive segments whose sizes sum to at most ``segment.bytes`` (small
   cleaned segments are merged), and each group is written as one new segment,
   ``<base>.log.cleaned``, swapped in by the log (segment_swap.py). A record is kept when
   its offset is at or past the map's end, or the map has no later offset for its key;
   except that records of aborted transactions go, keyless records go (Kafka counts them
   invalid), and a tombstone goes once its batch's *delete horizon* has passed. A batch
   keeps its base offset, its last offset delta (so the producer's last sequence is still
   ``baseSequence + lastOffsetDelta``), producer id, epoch, sequence and codec; a batch that
   keeps every record and needs no horizon is copied byte for byte, others are rebuilt from
   the kept records' own bytes (offsets, timestamps and headers unchanged) and compressed
   again with their codec. A batch left empty is dropped, unless it is its producer's last
   batch: then an empty batch (no records, no codec) stays, so idempotent deduplication
   survives a restart that rebuilds producer state from the log (Kafka does the same).

*Delete horizon* (KIP-534). The first clean that keeps a batch holding a tombstone or a
transaction marker stamps its horizon into it: attribute bit 6 set and ``baseTimestamp`` =
now + ``delete.retention.ms`` (record timestamp deltas are rewritten so every record keeps
its timestamp). Cleans after the horizon drop the tombstones; a marker goes too once its
transaction has no batch left in the log (not even one emptied and kept for its producer,
which producer state rebuilt from the log would otherwise read as still open). So a tombstone lives at least
``delete.retention.ms`` after the clean that first saw it, long enough for a consumer that
read the old value to read the delete.

*Transactions* (bit 4 transactional, bit 5 control): a marker's type is the control record
key's int16 at bytes 2..4 (0 abort, 1 commit). In the rewrite (and for the transactions
still open at the map's end) a transactional batch's status is its producer's next marker,
which the log's ``.txnindex`` gives without reading the log:
aborted iff an aborted transaction's ``[first offset, marker]`` holds the batch, committed
otherwise (everything cleaned lies below the last stable offset, so it is decided); only
batches below the log start, where that index may not reach, are looked up by reading the
log's markers (``_MarkerBook``).

Everything here is pure planning and file writing: no threads, no sleeping. ``throttle``
(called with the bytes read and written) and ``should_stop`` (called between batches) are
the hooks the broker's runner (broker/log_cleaner.py) supplies. Both passes hand each
batch's records to the offset map (storage/offset_map.py), whose C loops run without the
GIL: the clean's Python work is per batch, not per record.
"""

from __future__ import annotations

import bisect
import logging
import os
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable

from crc32c import crc32c

from kafkito.records import codecs
from kafkito.records.batch import (
    ATTRIBUTES_AT,
    COMPRESSION_MASK,
    CONTROL_BIT,
    CRC_AT,
    DELETE_HORIZON_BIT,
    HEADER,
    HEADER_BYTES,
    LOG_OVERHEAD,
    MAGIC,
    TIMESTAMP_TYPE_BIT,
    TRANSACTIONAL_BIT,
    read_varint,
    write_varint,
)
from kafkito.records.codecs import DECOMPRESSED_BYTES_MAX
from kafkito.records.errors import CorruptRecordError

from . import metafile
from .config import LONG_MAX
from .offset_map import new_offset_map, walk_records
from .errors import CorruptMetadataError
from .producer_state import snapshot_offsets
from .segment import LogSegment, REL_OFFSET_MAX, storage_error
from .segment_swap import cleaned_path

if TYPE_CHECKING:
    from .log import PartitionLog

log = logging.getLogger("kafkito.storage.cleaner")

CHECKPOINT_FILE = "cleaner-offset-checkpoint"
DEDUPE_ENTRY_BYTES = 24  # Kafka's SkimpyOffsetMap: a 16-byte MD5 and an 8-byte offset
_U32 = struct.Struct(">I")

ABORT, COMMIT = 0, 1  # control record types (the int16 at key bytes 2..4)


class CleanerAborted(Exception):
    """``should_stop`` said stop (the broker is shutting down): nothing was swapped."""


# ------------------------------------------------------------------------ the one bound
def cleanable_upper_offset(log: "PartitionLog") -> int:
    """The offset no clean reaches: it never touches the active segment, nor data a crash
    could take back, nor anything at or past the last stable offset (an undecided
    transaction's records, whose fate a clean cannot know; the LSO is never above the
    flushed offset)."""
    return min(log.active_segment.base_offset, log.last_stable_offset)


# ------------------------------------------------------------------------- checkpoint
@dataclass(frozen=True)
class CleanerCheckpoint:
    first_dirty_offset: int = 0
    delete_horizon_ms: int = -1  # the earliest horizon stamped and not yet passed; -1: none


def read_checkpoint(directory: str) -> CleanerCheckpoint:
    """A missing or damaged checkpoint reads as "all dirty": it costs a clean, never data."""
    path = os.path.join(directory, CHECKPOINT_FILE)
    if not os.path.exists(path):
        return CleanerCheckpoint()
    try:
        body = metafile.read(path, "cleaner-checkpoint")
        return CleanerCheckpoint(int(body["first_dirty_offset"]), int(body["delete_horizon_ms"]))
    except (CorruptMetadataError, KeyError, TypeError, ValueError) as e:
        log.warning("%s: ignoring the cleaner checkpoint (%s)", path, e)
        return CleanerCheckpoint()


def write_checkpoint(log_: "PartitionLog", checkpoint: CleanerCheckpoint) -> None:
    path = os.path.join(log_.directory, CHECKPOINT_FILE)
    try:
        metafile.write(path, "cleaner-checkpoint",
                       {"first_dirty_offset": checkpoint.first_dirty_offset,
                        "delete_horizon_ms": checkpoint.delete_horizon_ms}, log_.io)
    except OSError as e:
        raise storage_error("cannot write", path, e) from e


# ---------------------------------------------------------------------------- planning
@dataclass
class CleanPlan:
    """What ``plan`` measured for one log (module docstring, *What may be cleaned*)."""

    log: "PartitionLog"
    first_dirty: int
    upper: int  # first offset not cleaned this time (a segment boundary)
    clean_bytes: int
    dirty_bytes: int
    due: str | None  # why it is due ("dirty ratio", "max.compaction.lag.ms", "delete horizon")

    @property
    def dirty_ratio(self) -> float:
        total = self.clean_bytes + self.dirty_bytes
        return self.dirty_bytes / total if total else 0.0


def plan(log_: "PartitionLog", now_ms: int, checkpoint: CleanerCheckpoint | None = None) -> CleanPlan | None:
    """Measure a compacted log; None when it is not compacted or holds nothing closed."""
    config = log_.config
    if not config.compact or log_.is_offline:
        return None
    checkpoint = checkpoint or read_checkpoint(log_.directory)
    with log_._lock:
        if log_._closed:
            return None
        segments = list(log_.segments)
        start = log_.log_start_offset
        bound = cleanable_upper_offset(log_)
        leo = log_.log_end_offset
    first_dirty = max(checkpoint.first_dirty_offset, start)
    lag_limit = now_ms - config.min_compaction_lag_ms
    upper = start
    clean_bytes = dirty_bytes = 0
    first_dirty_seg = None
    for i, seg in enumerate(segments):
        next_base = segments[i + 1].base_offset if i + 1 < len(segments) else leo
        if next_base <= start:
            continue
        if next_base > bound or i == len(segments) - 1:
            break
        if next_base <= first_dirty:
            clean_bytes += seg.size
            upper = next_base
            continue
        if config.min_compaction_lag_ms > 0 and seg.largest_timestamp() > lag_limit:
            break
        if first_dirty_seg is None:
            first_dirty_seg = seg
        dirty_bytes += seg.size
        upper = next_base
    upper = max(upper, first_dirty) if dirty_bytes else first_dirty
    due = None
    total = clean_bytes + dirty_bytes
    if dirty_bytes and total and dirty_bytes / total >= config.min_cleanable_dirty_ratio:
        due = "dirty ratio"
    elif (dirty_bytes and config.max_compaction_lag_ms < LONG_MAX
          and first_dirty_seg is not None
          and now_ms - _first_timestamp(first_dirty_seg) > config.max_compaction_lag_ms):
        due = "max.compaction.lag.ms"
    elif 0 <= checkpoint.delete_horizon_ms <= now_ms and total:
        due = "delete horizon"
    return CleanPlan(log_, first_dirty, upper, clean_bytes, dirty_bytes, due)


def _first_timestamp(seg: LogSegment) -> int:
    """The first batch's max timestamp (Kafka: the segment's first batch timestamp)."""
    for _p, fields, _v in seg.headers_from(0, seg.size):
        return fields[8] if fields[8] >= 0 else seg.largest_timestamp()
    return seg.largest_timestamp()


def choose(plans: Iterable[CleanPlan | None]) -> list[CleanPlan]:
    """The due plans, dirtiest first (a log overdue by max.compaction.lag.ms goes first)."""
    due = [p for p in plans if p is not None and p.due is not None]
    due.sort(key=lambda p: (p.due != "max.compaction.lag.ms", -p.dirty_ratio))
    return due


# --------------------------------------------------------------------------- the records
def marker_type(section: bytes) -> int | None:
    """A control batch's marker type (0 abort, 1 commit), or None when unreadable."""
    try:
        records = walk_records(section, 1) if section else []
    except CorruptRecordError:
        return None
    if not records or records[0][5] is None or len(records[0][5]) < 4:
        return None
    return struct.unpack_from(">h", records[0][5], 2)[0]


# ----------------------------------------------------------------------- transactions
class _MarkerBook:
    """Whether a transactional batch being cleaned was committed or aborted, from the log's
    aborted-transaction index (Kafka's cleaner asks the same index).

    Below the last stable offset every transaction is decided, and the batches of one lie
    between its first offset and its marker; an aborted one's ``[first offset, marker]`` is
    an entry of the ``.txnindex``. So a batch at or past the log start and below the LSO
    (both read when the clean starts, the LSO before the entries, so that every abort below
    it is among them) was aborted iff an entry of its producer holds its offset, and
    committed otherwise. One producer's ranges never overlap, so data it committed is never
    taken for a later abort of its own, cleaned or not; an entry whose batches were all
    cleaned away (or whose marker went) holds no batch any more and misleads nobody.

    The index cannot answer below the log start: a transaction still open when the log
    start passed its first batches restarts at its first batch past it
    (producer_state.restart_txns), so its entry does not hold the older ones, and the LSO
    may pass them before their marker exists. Only for those (a compact,delete log whose
    start DeleteRecords moved inside a segment; and, should one ever be asked, a batch at or
    past the LSO) the markers of the whole log are read, once per clean, and the answer is
    the producer's first marker after the batch, or None when it has none yet: the batch is
    then left as it is."""

    def __init__(self, log_: "PartitionLog", segments: list[tuple[LogSegment, int]],
                 decompressed_bytes_max: int, result: "CleanResult"):
        self._lso = log_.last_stable_offset  # first: every abort below it is indexed already
        self._start = log_.local_log_start_offset
        by_producer: dict[int, list[tuple[int, int]]] = {}
        for e in log_.aborted_txns_overlapping(0, self._lso):
            by_producer.setdefault(e.producer_id, []).append((e.first_offset, e.last_offset))
        # Per producer: first offsets, sorted, and the furthest marker reached by then.
        self._aborted: dict[int, tuple[list[int], list[int]]] = {}
        for producer_id, ranges in by_producer.items():
            ranges.sort()
            reach = []
            top = -1
            for _first, last in ranges:
                top = max(top, last)
                reach.append(top)
            self._aborted[producer_id] = ([first for first, _last in ranges], reach)
        self._segments = segments
        self._cap = decompressed_bytes_max
        self._result = result
        self._markers: dict[int, list[tuple[int, int]]] | None = None  # the scan's, by producer

    def status(self, producer_id: int, offset: int) -> int | None:
        """ABORT, COMMIT, or None: no marker yet (the transaction is open)."""
        aborted = self._aborted.get(producer_id)
        if aborted is not None:
            i = bisect.bisect_right(aborted[0], offset) - 1
            if i >= 0 and offset <= aborted[1][i]:
                return ABORT
        if self._start <= offset < self._lso:
            return COMMIT
        return self._scanned(producer_id, offset)

    def _scanned(self, producer_id: int, offset: int) -> int | None:
        """The producer's first marker after ``offset``, read from the log itself (batch
        headers, and the small control batches whole)."""
        if self._markers is None:
            self._markers = {}
            for seg, end in self._segments:
                for position, f, _view in seg.headers_from(0, end):
                    self._result.marker_scan_batches += 1
                    if f[5] & CONTROL_BIT:
                        batch = seg.file.pread(f[1] + LOG_OVERHEAD, position)
                        section = codecs.decompress(f[5] & COMPRESSION_MASK,
                                                    memoryview(batch)[HEADER_BYTES:], self._cap)
                        kind = marker_type(section)
                        if kind is not None:
                            self._markers.setdefault(f[9], []).append((f[0], kind))
        marks = self._markers.get(producer_id, [])
        i = bisect.bisect_right(marks, (offset, 2))
        return marks[i][1] if i < len(marks) else None


# ---------------------------------------------------------------------------- cleaning
@dataclass
class CleanResult:
    topic: str
    partition: int
    first_dirty: int
    end_offset: int  # the map's end: the next clean's first dirty offset
    segments_in: int = 0
    segments_out: int = 0
    bytes_read: int = 0  # input: the segments rewritten (the map's read counts apart)
    map_bytes_read: int = 0
    bytes_written: int = 0
    records_read: int = 0
    records_kept: int = 0
    tombstones_removed: int = 0
    aborted_removed: int = 0
    markers_removed: int = 0
    swaps_abandoned: int = 0
    marker_scan_batches: int = 0  # batches read for markers the .txnindex cannot give (_MarkerBook)
    keys: int = 0
    horizon_ms: int = -1

    def describe(self) -> str:
        return (f"{self.topic}-{self.partition}: cleaned offsets up to {self.end_offset} "
                f"({self.segments_in} segments into {self.segments_out}, {self.bytes_read} "
                f"-> {self.bytes_written} bytes, {self.records_kept}/{self.records_read} "
                f"records kept, {self.keys} keys, {self.tombstones_removed} tombstones and "
                f"{self.aborted_removed} aborted records removed)")


@dataclass
class _Survivor:
    """Per-clean state of the rewrite: transactions seen open, horizons stamped."""

    open_txn_data: dict[int, bool] = field(default_factory=dict)  # producer -> a batch kept
    horizon_min: int = -1

    def note_horizon(self, horizon: int) -> None:
        if self.horizon_min < 0 or horizon < self.horizon_min:
            self.horizon_min = horizon


class Cleaner:
    """One cleaner thread's worker: its offset map and its hooks (module docstring)."""

    def __init__(self, map_capacity: int, *,
                 throttle: Callable[[int], None] = lambda nbytes: None,
                 should_stop: Callable[[], bool] = lambda: False,
                 decompressed_bytes_max: int = DECOMPRESSED_BYTES_MAX,
                 new_map: Callable[[], object] = new_offset_map):
        self.map_capacity = max(1, map_capacity)
        self.new_map = new_map  # storage/offset_map.py: the C map when built
        self.throttle = throttle
        self.should_stop = should_stop
        self.decompressed_bytes_max = decompressed_bytes_max

    def _between_batches(self, nbytes: int) -> None:
        """Each batch read: the throttle counts it (so a rate far below a segment's size
        still spreads the reads evenly), and a stop is heard."""
        self.throttle(nbytes)
        if self.should_stop():
            raise CleanerAborted()

    # -- the whole clean --------------------------------------------------------------
    def clean(self, log_: "PartitionLog", now_ms: int,
              plan_: CleanPlan | None = None) -> CleanResult | None:
        """One clean of ``log_`` (module docstring), swapped in and checkpointed. Returns
        None when there is nothing to clean."""
        checkpoint = read_checkpoint(log_.directory)
        plan_ = plan_ or plan(log_, now_ms, checkpoint)
        if plan_ is None or (plan_.dirty_bytes == 0 and plan_.clean_bytes == 0):
            return None
        config = log_.config
        with log_._lock:
            segments = [(s, s.size) for s in log_.segments]
            last_batch = {pid: e.batches[-1].last_offset
                          for pid, e in log_.producer_state.producers.items() if e.batches}
        result = CleanResult(log_.topic, log_.partition, plan_.first_dirty, plan_.first_dirty)
        book = _MarkerBook(log_, segments, self.decompressed_bytes_max, result)
        offsets = self._build_map(log_, segments, plan_, book, result)
        end = result.end_offset
        if not os.path.exists(os.path.join(log_.directory, CHECKPOINT_FILE)):
            # Before the first swap: the file tells every later open that this log has
            # offset gaps by design, whatever its policy then (PartitionLog._configure).
            write_checkpoint(log_, checkpoint)
        # Segments to rewrite: every closed one starting below the map's end.
        todo = [(s, size) for s, size in segments[:-1] if s.base_offset < end and size]
        groups = self._group(todo, segments, config.segment_bytes)
        state = _Survivor()
        carry: list[LogSegment] = []
        for i, (group, group_end) in enumerate(groups):
            if self.should_stop():
                raise CleanerAborted()
            carry = self._clean_group(log_, group, group_end, carry, i == len(groups) - 1,
                                      offsets, end, book, last_batch, now_ms, state, result)
        # Every batch with a horizon lies below ``end`` and was seen: the earliest one still
        # ahead is when tombstones may next go (plan's "delete horizon").
        result.horizon_ms = state.horizon_min
        if not result.swaps_abandoned:
            write_checkpoint(log_, CleanerCheckpoint(end, state.horizon_min))
            _prune_producer_snapshots(log_, end)
        return result

    # -- pass 1: the offset map -----------------------------------------------------
    def _build_map(self, log_: "PartitionLog", segments, plan_: CleanPlan, book: _MarkerBook,
                   result: CleanResult):
        offsets = self.new_map()
        # producer -> [its open transaction's keys, their records, the first one's offset]
        pending: dict[int, list] = {}
        pending_count = 0
        start, upper = plan_.first_dirty, plan_.upper
        end = start
        cap = self.decompressed_bytes_max
        full = False
        for seg, size in segments:
            if seg.base_offset >= upper or full:
                break
            if seg.next_offset <= start:
                continue
            pos = log_._find_batch(seg, start, size) if seg.base_offset < start else 0
            if pos is None:
                continue
            read_from = pos
            for p, f, view in seg.bodies_from(pos, size):
                self._between_batches(len(view))
                base, last = f[0], f[0] + f[6]
                if last < start:
                    continue
                if base >= upper:
                    break
                attrs = f[5]
                if attrs & CONTROL_BIT:
                    section = codecs.decompress(attrs & COMPRESSION_MASK, view[HEADER_BYTES:], cap)
                    kind = marker_type(section)
                    txn = pending.pop(f[9], None)
                    if txn:
                        pending_count -= txn[1]
                        if kind == COMMIT:  # a later plain record of the key may be there
                            offsets.merge_newer(txn[0])
                    end = last + 1
                    continue
                count = f[12]
                if end > start and len(offsets) + pending_count + count > self.map_capacity:
                    full = True
                    break
                section = codecs.decompress(attrs & COMPRESSION_MASK, view[HEADER_BYTES:], cap)
                if attrs & TRANSACTIONAL_BIT:
                    txn = pending.get(f[9])
                    if txn is None:
                        txn = pending[f[9]] = [self.new_map(), 0, base]
                    txn[0].add_records(section, count, base)
                    txn[1] += count
                    pending_count += count
                else:
                    offsets.add_records(section, count, base)
                end = last + 1
            result.map_bytes_read += size - read_from
            if self.should_stop():
                raise CleanerAborted()
            if not full and seg.next_offset <= upper:
                end = max(end, min(upper, _next_base(segments, seg)))
        # Transactions still open at the map's end: their markers lie past it (everything
        # below the map's end is below the LSO). All of one producer's pending keys are one
        # transaction (a marker ends it).
        if pending:
            for producer_id, (keys, _count, first) in pending.items():
                if book.status(producer_id, first) == COMMIT:
                    offsets.merge_newer(keys)
        result.end_offset = end
        result.keys = len(offsets)
        return offsets

    # -- pass 2: the rewrite ----------------------------------------------------------
    @staticmethod
    def _group(todo, segments, segment_bytes: int):
        """Consecutive segments into groups of at most ``segment.bytes`` (and of an offset
        range a segment can address); returns (group, base offset of what follows)."""
        groups = []
        current: list[tuple[LogSegment, int]] = []
        total = 0
        index_entries = 0
        for seg, size in todo:
            entries = len(seg.offset_index)
            if current and (total + size > segment_bytes
                            or seg.next_offset - 1 - current[0][0].base_offset > REL_OFFSET_MAX
                            or index_entries + entries >= seg.offset_index.entries_max):
                groups.append(current)
                current, total, index_entries = [], 0, 0
            current.append((seg, size))
            total += size
            index_entries += entries
        if current:
            groups.append(current)
        return [(g, _next_base(segments, g[-1][0])) for g in groups]

    def _clean_group(self, log_: "PartitionLog", group, group_end: int, carry: list,
                     is_last: bool, offsets, end: int, book: _MarkerBook,
                     last_batch: dict[int, int], now_ms: int, state: _Survivor,
                     result: CleanResult) -> list:
        """Write one group's survivors and swap them in for ``carry`` + the group. A group
        with no survivor is carried into the next one (returned), so a cleaned segment is
        never empty and the log's first segment keeps its base offset; the last group's
        emptiness is swapped in as an offset gap."""
        config = log_.config
        if carry and group[-1][0].next_offset - 1 - carry[0].base_offset > REL_OFFSET_MAX:
            self._swap_in(log_, carry, group[0][0].base_offset, None, None, result)
            carry = []
        first = (carry or [group[0][0]])[0]
        new = LogSegment(log_.directory, first.base_offset, log_.io,
                         segment_index_bytes=config.segment_index_bytes,
                         created_ms=first.created_ms, files=log_.files)
        path = cleaned_path(log_.directory, first.base_offset)
        interval = config.index_interval_bytes
        horizon_new = now_ms + config.delete_retention_ms
        try:
            fd = log_.io.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        except OSError as e:
            raise storage_error("cannot create", path, e) from e
        position = 0
        last = first.base_offset - 1
        try:
            for seg, size in group:
                pending: list = []
                pending_bytes = 0
                for _p, f, view in seg.bodies_from(0, size):
                    self._between_batches(len(view))
                    result.bytes_read += len(view)
                    out = self._filter_batch(f, view, offsets, end, book, last_batch, now_ms,
                                             horizon_new, state, result)
                    if out is None:
                        continue
                    out_fields = HEADER.unpack_from(out, 0) if out is not view else f
                    batch_last = out_fields[0] + out_fields[6]
                    new._index_batch(batch_last, position, len(out), out_fields[8], interval,
                                     write=False)
                    pending.append(out)
                    pending_bytes += len(out)
                    position += len(out)
                    last = batch_last
                    if pending_bytes >= (1 << 20):
                        self._write(log_, fd, pending, position - pending_bytes, path)
                        pending, pending_bytes = [], 0
                if pending:
                    self._write(log_, fd, pending, position - pending_bytes, path)
                if self.should_stop():
                    raise CleanerAborted()
            if position:
                log_.io.fsync(fd)
        except BaseException:
            log_.io.close(fd)
            _unlink_quietly(log_, path)
            raise
        log_.io.close(fd)
        result.segments_in += len(group)
        old = carry + [s for s, _ in group]
        if not position:
            _unlink_quietly(log_, path)
            if not is_last:
                return old
            self._swap_in(log_, old, group_end, None, None, result)
            return []
        new.size = position
        new.next_offset = last + 1
        new.seal_in_memory()
        result.bytes_written += position
        self._swap_in(log_, old, group_end, new, path, result)
        return []

    @staticmethod
    def _swap_in(log_: "PartitionLog", old: list, end_offset: int, new: LogSegment | None,
                 path: str | None, result: CleanResult) -> None:
        if new is None:  # replaced by nothing: an empty cleaned file makes the same swap
            new = LogSegment(log_.directory, old[0].base_offset, log_.io,
                             segment_index_bytes=log_.config.segment_index_bytes,
                             created_ms=old[0].created_ms, files=log_.files)
            path = cleaned_path(log_.directory, old[0].base_offset)
            try:
                fd = log_.io.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                log_.io.close(fd)
            except OSError as e:
                raise storage_error("cannot create", path, e) from e
        if log_.replace_segments(old, new, path, end_offset):
            result.segments_out += 0 if new.is_empty else 1
        else:
            result.swaps_abandoned += 1

    def _write(self, log_: "PartitionLog", fd: int, chunks: list, at: int, path: str) -> None:
        try:
            log_.io.pwritev(fd, chunks, at)
        except OSError as e:
            raise storage_error("cannot write", path, e) from e
        self.throttle(sum(len(c) for c in chunks))

    def _filter_batch(self, f: tuple, view: memoryview, offsets, end: int,
                      book: _MarkerBook, last_batch: dict[int, int], now_ms: int,
                      horizon_new: int, state: _Survivor, result: CleanResult):
        """The kept part of one batch: ``view`` itself, rebuilt bytes, or None."""
        base, attrs, count, producer_id = f[0], f[5], f[12], f[9]
        last = base + f[6]
        if base >= end:
            result.records_read += count
            result.records_kept += count
            return view  # past the map: untouched
        has_horizon = bool(attrs & DELETE_HORIZON_BIT)
        horizon_passed = has_horizon and now_ms >= f[7]
        if has_horizon and not horizon_passed:
            state.note_horizon(f[7])
        section = codecs.decompress(attrs & COMPRESSION_MASK, view[HEADER_BYTES:],
                                    self.decompressed_bytes_max)
        result.records_read += count
        is_last_of_producer = producer_id >= 0 and last_batch.get(producer_id) == last
        body = None  # the kept records' bytes, when not all are kept
        max_delta = None
        tombstones = 0
        if attrs & CONTROL_BIT:
            data_kept = state.open_txn_data.pop(producer_id, False)
            if not data_kept and horizon_passed:
                result.markers_removed += 1
                return self._empty(f) if is_last_of_producer else None
            kept = count
            needs_horizon = not has_horizon
        else:
            status = book.status(producer_id, base) if attrs & TRANSACTIONAL_BIT else COMMIT
            if status == ABORT:
                result.aborted_removed += count
                kept = 0
            elif status is None:  # undecided: left as it is
                kept = count
            else:
                kept, removed, tombstones, body, max_delta = offsets.select(
                    section, count, base, horizon_passed)
                result.tombstones_removed += removed
            needs_horizon = bool(tombstones) and not has_horizon
            if attrs & TRANSACTIONAL_BIT and (kept or is_last_of_producer):
                # An emptied batch kept for its producer is still the transaction's batch:
                # without its marker, a rebuild of producer state from the log would take
                # it for an open transaction and pin the last stable offset there forever
                # (Kafka keeps a marker while any batch of its transaction is in the log).
                state.open_txn_data[producer_id] = True
        result.records_kept += kept
        if not kept:
            return self._empty(f) if is_last_of_producer else None
        if kept == count and not needs_horizon:
            return view
        horizon = f[7] if has_horizon else (horizon_new if needs_horizon else None)
        if horizon is not None and horizon > now_ms:
            state.note_horizon(horizon)
        if body is None:
            body = bytes(section)
        return self._rebuild(f, body, kept, max_delta, horizon)

    @staticmethod
    def _empty(f: tuple) -> bytes:
        """The header of an emptied batch kept for its producer (uncompressed, no records,
        the same offsets and sequence)."""
        attrs = f[5] & (TIMESTAMP_TYPE_BIT | TRANSACTIONAL_BIT | CONTROL_BIT)
        ts = f[8]
        hdr = bytearray(HEADER.pack(f[0], HEADER_BYTES - LOG_OVERHEAD, f[2], MAGIC, 0, attrs,
                                    f[6], ts, ts, f[9], f[10], f[11], 0))
        _U32.pack_into(hdr, CRC_AT, crc32c(hdr[ATTRIBUTES_AT:]))
        return bytes(hdr)

    @staticmethod
    def _rebuild(f: tuple, body: bytes, count: int, max_delta: int | None,
                 horizon: int | None) -> bytes:
        """A batch of ``count`` kept records (``body``, their bytes as stored; timestamp
        deltas moved to a new base when a horizon is stamped), compressed with the batch's
        codec. ``max_delta`` is their largest timestamp delta (``select`` gives it; the
        horizon rewrite walks the records anyway and computes it)."""
        attrs = f[5]
        base_ts = f[7]
        new_base_ts = base_ts
        if horizon is not None:
            # Timestamps are kept: each delta is re-expressed against the horizon.
            new_base_ts = horizon
            shift = base_ts - horizon if not attrs & DELETE_HORIZON_BIT else 0
            out = bytearray()
            records = walk_records(body, count)
            for r in records:
                rec = bytearray(body[r[1]:r[1] + 1])  # attributes
                write_varint(rec, r[3] + shift)
                p = r[1] + 1
                _old, p = read_varint(body, p, r[2])
                rec += body[p:r[2]]
                write_varint(out, len(rec))
                out += rec
            body = bytes(out)
            attrs |= DELETE_HORIZON_BIT
            max_delta = max(r[3] for r in records)
        codec = attrs & COMPRESSION_MASK
        payload = codecs.compress(codec, body) if codec else body
        max_ts = f[8] if attrs & TIMESTAMP_TYPE_BIT else base_ts + max_delta
        hdr = bytearray(HEADER.pack(f[0], HEADER_BYTES - LOG_OVERHEAD + len(payload), f[2],
                                    MAGIC, 0, attrs, f[6], new_base_ts, max_ts, f[9], f[10],
                                    f[11], count))
        _U32.pack_into(hdr, CRC_AT, crc32c(payload, crc32c(hdr[ATTRIBUTES_AT:])))
        return bytes(hdr) + payload


def _prune_producer_snapshots(log_: "PartitionLog", end: int) -> None:
    """A compacted log keeps its first segment forever, so retention never removes the
    producer snapshots of its rolls: keep the newest below ``end`` (and all above it) and
    remove the rest. A load that cannot use those replays from the log start instead."""
    below = [o for o in snapshot_offsets(log_.directory) if o < end]
    for offset in below[:-1]:
        log_._remove_snapshot(offset)


def _unlink_quietly(log_: "PartitionLog", path: str) -> None:
    try:
        log_.io.unlink(path)
    except OSError:
        pass


def _next_base(segments, seg: LogSegment) -> int:
    for i, (s, _size) in enumerate(segments):
        if s is seg:
            return segments[i + 1][0].base_offset if i + 1 < len(segments) else s.next_offset
    return seg.next_offset


__all__ = ["Cleaner", "CleanerAborted", "CleanerCheckpoint", "CleanPlan", "CleanResult",
           "cleanable_upper_offset", "choose", "plan",
           "read_checkpoint", "write_checkpoint"]

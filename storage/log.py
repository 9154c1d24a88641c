"""PartitionLog: one partition's durable log, a sequence of segments in one directory.

Theory of operation.

*Offsets.* ``log_start_offset`` <= every readable offset < ``log_end_offset`` (LEO). The
``flushed_offset`` is the first offset not yet fsynced; the broker uses it as the high
watermark, so a consumer never sees data a crash could take back.

*Append* (serialised by the caller): validate the blob as Kafka's LogValidator does
(validator.py: header, CRC, every record walked in C), roll the active segment if
``segment.bytes``, ``segment.ms``, a full index or the int32 relative-offset range ask for
it (an append that would not fit even an empty segment is refused: a segment never spans
more than 2^31 offsets), stamp base offsets, the leader epoch and the max timestamp (the
records' true one, or LogAppendTime) into copies of the 61-byte headers, and write headers
and untouched bodies with one ``pwritev``. Index entries follow the data. A failed write is
undone (``KafkaStorageError``, nothing changes), so the log stays readable and appendable once
the disk has room again.

Deliberate differences from Kafka: ``segment.ms`` counts from the segment's creation on
the injected clock (Kafka compares record timestamps with the first batch's), so tests drive
it with ``ManualClock``; ``segment.jitter.ms`` is accepted but not applied; the log start
offset is checkpointed per partition (``log-start-offset``, a checksummed metadata file)
rather than in one file per data directory.

*Flush* (group commit): callers note the LEO they need, then queue on one flush mutex; the
first one in fsyncs data, then indexes, then the directory, for everything appended so far;
callers behind it whose LEO is covered return without another fsync. State is guarded by a
separate lock that is never held across an fsync, so appends and reads continue meanwhile.
An fsync failure takes the log offline (the kernel may have dropped the dirty pages, so
retrying would lie); reopening recovers it. *When* to flush is a policy, not an action:
``flush_due_ms`` says when unflushed data is due (``flush_policy``: ``flush.ms`` from the
oldest unflushed append, or at once past ``flush.messages``; the manager gives a topic that
sets neither the broker's ``log.flush.interval.*``). ``append`` never fsyncs: whoever owns
the threads (the broker's flusher, or ``maybe_flush`` for an embedder) calls ``flush``.

*Producer state* (Kafka's ProducerStateManager, producer_state.py) is the log's: ``append``
checks every producer batch against it (fencing, sequences; a retried single batch is
answered with the original's offsets and not written) and commits the batches' effect only
once they are written. At every roll the state is snapshotted as of the new segment's base
offset (``<base offset>.snapshot``, a checksummed metafile; the bytes are taken under the
lock and written by the next ``flush``, in its thread, so a roll never waits for an fsync),
and ``close`` writes one at the LEO. Open loads the newest snapshot that nothing recovery
cut lies below (snapshots above that are deleted: they describe data the log no longer
holds) and replays only the batch headers after it; ``RecoveryReport`` says which snapshot
and how many headers. After a clean shutdown that is no read at all; after a crash, the
tail since the last roll. Retention removes the snapshots of deleted segments and the
producers whose batches all went with them.

*Transactions* (KIP-98). Transactional batches and the COMMIT/ABORT control batches of
``append_control`` go through the same producer-state check (producer_state.py: open
transactions, markers, fencing). The *last stable offset* is the first offset of the
earliest transaction that is open or whose marker is not flushed yet, floored at the log
start and capped at the high watermark; read_committed reads stop there. Each ABORT adds an
entry to the ``.txnindex`` of the segment holding its marker (txn_index.py), which
``aborted_transactions`` searches. Snapshots carry the open transactions and, per segment,
how many aborted entries lie below them; recovery replays markers with the batch headers
(reading the small control batches whole), rebuilds every index entry from the replay
point on, and replays from an older snapshot when a ``.txnindex`` below the newest one was
lost or damaged. Retention drops the indexes of deleted segments with them; a transaction
whose data retention or DeleteRecords removed stays open until its marker comes, and the
last stable offset then sits at the log start, never below it.

*Read* returns a ``FileSlice``: whole batches of one segment, starting with the batch holding
the offset, at least one batch even past ``max_bytes``, none reaching ``max_offset``. Segment
and index files are opened on demand behind the open-file cache (handles.py); the slice pins
its segment's descriptor until it is closed or dropped, so the broker can ``sendfile`` it
and it always reads the file it was cut from.

*Retention* deletes whole segments from the front: past ``retention.ms`` (newest record
timestamp), beyond ``retention.bytes``, or below the log start offset (DeleteRecords). Only
flushed segments go, the active one after a roll. Deleted segments are renamed ``.deleted``
and their files removed after ``file.delete.delay.ms`` (by the clock); a FileSlice handed out
before holds its own pin on the descriptor, so it stays valid for sendfile in any case.

*Tiers.* A tiered topic's log holds its remote tier in ``tier`` (remote/tier.py), given at
open: this object is then Kafka's UnifiedLog with the segments here as its LocalLog.
``log_start_offset`` is the start over both tiers, ``local_log_start_offset`` this
directory's; ``read`` and ``offset_for_timestamp`` below the local start ask the tier;
DeleteRecords moves the remote start first; local retention applies ``local.retention.*``
and deletes only segments a durable manifest already holds; producer state is kept from
the start over both tiers.

*Recovery* on open (Kafka's LogLoader, with isolation instead of truncation): leftovers of
interrupted operations are removed, then each segment is checked (see segment.py). After a
clean shutdown closed segments are walked from their last index entry and the active one is
CRC-checked from there. After an unclean shutdown, segments wholly below the *recovery
point* (``recovery-point``, a checksummed metadata file: the flushed offset, written by
``checkpoint_recovery_point()`` every ``log.flush.offset.checkpoint.interval.ms`` and on
close) are walked the same way, and every segment reaching it is CRC-checked from byte 0 with
its indexes rebuilt. Bytes a walk did not CRC-check are checked lazily, once, by the first
read that touches them, and a bad batch found then is stepped over and logged, never served.

A damaged batch is isolated, never a reason to drop what follows it: its segment is cut where
the damage starts, the damaged bytes are moved to a ``.quarantine`` file, valid batches after
it in the same segment are moved to a new segment, and later segments are kept. The log then
has an offset gap (the fetch of an offset inside it returns the next batch, as after
compaction). Only an incomplete tail of the last segment past the recovery point (the normal
result of a crash) is simply cut. ``RecoveryReport`` names every cut: segment, position,
bytes, the offsets it may have held, the quarantine file.
"""

from __future__ import annotations

import bisect
import logging
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Iterator, NamedTuple

from kafkito.records.batch import (
    CONTROL_BIT,
    HEADER_BYTES,
    LOG_APPEND_TIME,
    LOG_OVERHEAD,
    TRANSACTIONAL_BIT,
    RecordBatch,
    stamp_header,
)
from kafkito.records.control import ABORT, COMMIT, build_control_batch, control_marker_of
from kafkito.records.codecs import DECOMPRESSED_BYTES_MAX

from . import metafile
from .clock import Clock, SystemClock
from .config import LogConfig
from .errors import (
    CorruptMetadataError,
    InvalidRecordError,
    KafkaStorageError,
    LogClosedError,
    OffsetOutOfRangeError,
    StorageError,
)
from .fileio import DEFAULT_IO, FileIO
from .handles import OpenFiles, PinnedFile, default_open_files
from .key_index import KeyIndex
from .damage import QUARANTINE_SUFFIX, DamagedRange
from .producer_state import (
    CompletedTxn,
    OutOfOrderSequenceError,
    ProducerInfo,
    ProducerStateManager,
    encode_snapshot,
    load_snapshot,
    snapshot_offsets,
    snapshot_path,
)
from .cleaner import CHECKPOINT_FILE as CLEANER_CHECKPOINT_FILE
from .segment_swap import finish_interrupted_swaps, swap_path
from .segment import (
    DELETED_SUFFIX,
    REL_OFFSET_MAX,
    IndexMismatch,
    LogSegment,
    SegmentRecovery,
    segment_prefix,
    storage_error,
)
from .txn_index import AbortedTxn, TxnIndexes
from .validator import validate_batches

log = logging.getLogger("kafkito.storage.log")

LOG_START_OFFSET_FILE = "log-start-offset"
RECOVERY_POINT_FILE = "recovery-point"
_SEGMENT_FILE = re.compile(r"^(\d{20})\.(log|index|timeindex)$")
_LEFTOVER_SUFFIXES = (DELETED_SUFFIX, ".rebuild", metafile.TMP_SUFFIX, ".cleaned", ".swap")

ORIGIN_CLIENT = "client"
ORIGIN_COORDINATOR = "coordinator"


def read_recovery_point(directory: str) -> int:
    """The checkpointed recovery point, or 0 (scan everything) when there is none. A damaged
    checkpoint also reads as 0: unlike other metadata it only saves work, so the safe guess
    costs time, never data."""
    path = os.path.join(directory, RECOVERY_POINT_FILE)
    if not os.path.exists(path):
        return 0
    try:
        return int(metafile.read(path, "recovery-point")["recovery_point"])
    except (CorruptMetadataError, KeyError, TypeError, ValueError) as e:
        log.warning("%s: ignoring the recovery point (%s); every segment will be scanned", path, e)
        return 0


class FlushPolicy(NamedTuple):
    """When unflushed data is due for fsync: after ``interval_ms`` (``flush.ms``, counted
    from the oldest unflushed append) or once ``messages`` (``flush.messages``) offsets are
    unflushed, whichever comes first."""

    interval_ms: int
    messages: int

    @classmethod
    def of(cls, config: LogConfig) -> "FlushPolicy":
        return cls(config.flush_ms, config.flush_messages)


class AppendInfo(NamedTuple):
    base_offset: int
    last_offset: int
    log_append_time_ms: int  # -1 unless the topic uses LogAppendTime
    log_start_offset: int
    record_count: int


class FileSlice:
    """A byte range of one segment file holding whole batches, ready for ``os.sendfile``.

    ``first_offset`` is the base offset of the first batch (or the requested offset when the
    slice is empty); ``next_offset`` the offset after the last batch. A non-empty slice pins
    its segment's file handle (handles.py) until ``close()`` or until it is garbage: the
    descriptor ``fileno()`` returns stays open and names this file for the slice's whole
    life, even if the open-file cache needs the slot, the segment is deleted or the log is
    closed meanwhile. Do not close the descriptor yourself.
    """

    __slots__ = ("_pin", "position", "size", "first_offset", "next_offset", "batch_count")

    def __init__(self, pin: PinnedFile | None, position: int, size: int, first_offset: int,
                 next_offset: int, batch_count: int):
        """``pin``: the segment's file, pinned; the slice owns the pin from here on."""
        self._pin = None
        self.position = position
        self.size = size
        self.first_offset = first_offset
        self.next_offset = next_offset
        self.batch_count = batch_count
        if pin is not None:
            if size:
                self._pin = pin
            else:
                pin.unpin()

    def fileno(self) -> int:
        if self._pin is None:
            raise ValueError("empty or closed FileSlice has no file")
        return self._pin.fd

    @property
    def nbytes(self) -> int:
        return self.size

    @property
    def last_offset(self) -> int:
        return self.next_offset - 1

    def tobytes(self) -> bytes:
        if self.size == 0:
            return b""
        if self._pin is None:
            raise ValueError("closed FileSlice")
        data = self._pin.pread(self.size, self.position)
        if len(data) != self.size:
            raise KafkaStorageError(f"short read: {len(data)} of {self.size} bytes")
        return data

    def close(self) -> None:
        """Unpin the file (idempotent); the slice cannot be read afterwards."""
        pin, self._pin = self._pin, None
        if pin is not None:
            pin.unpin()

    def __del__(self) -> None:
        pin, self._pin = self._pin, None
        if pin is not None:
            pin.unpin(from_finalizer=True)

    def __repr__(self) -> str:
        fd = self._pin.fd if self._pin is not None else -1
        return (f"FileSlice(fd={fd}, position={self.position}, size={self.size}, "
                f"offsets=[{self.first_offset}, {self.next_offset}))")


@dataclass
class RecoveryReport:
    topic: str
    partition: int
    clean_shutdown: bool
    recovery_point: int = 0  # from the checkpoint; 0 when there was none
    segments: list[SegmentRecovery] = field(default_factory=list)
    deleted_segments: list[int] = field(default_factory=list)  # base offsets (emptied ones)
    removed_leftovers: list[str] = field(default_factory=list)
    offset_gaps: list[tuple[int, int]] = field(default_factory=list)  # [first, last] missing
    producer_snapshot: int | None = None  # offset of the producer snapshot loaded, if any
    producer_batches_replayed: int = 0  # batch headers read to rebuild producer state

    @property
    def truncated_bytes(self) -> int:
        return sum(s.truncated_bytes for s in self.segments)

    @property
    def damage(self) -> list[DamagedRange]:
        """Every range recovery cut out (incomplete tails included), in log order."""
        return [s.damage for s in self.segments if s.damage is not None]

    def modes(self) -> dict[int, str]:
        """Segment base offset -> how it was checked (walk, tail, full, quarantined)."""
        return {s.base_offset: s.mode for s in self.segments}

    @property
    def changed(self) -> bool:
        return bool(self.truncated_bytes or self.deleted_segments
                    or any(s.index_rebuilt or s.split_base is not None for s in self.segments))


class PartitionLog:
    """See the module docstring. Construct with ``PartitionLog.open``."""

    def __init__(self, directory: str, topic: str, partition: int, config: LogConfig,
                 clock: Clock, io: FileIO, files: OpenFiles,
                 decompressed_bytes_max: int = DECOMPRESSED_BYTES_MAX):
        self.directory = directory
        self.files = files
        self.decompressed_bytes_max = decompressed_bytes_max
        self.topic = topic
        self.partition = partition
        self.config = config
        self.clock = clock
        self.io = io
        self.leader_epoch = 0  # single node: stamped into every appended batch
        self.segments: list[LogSegment] = []
        self._bases: list[int] = []
        self._lock = threading.RLock()
        self._flush_lock = threading.Lock()
        self._checkpoint_lock = threading.Lock()  # one recovery-point write at a time
        self._recovery_point_written = 0
        self._log_start_offset = 0
        self._flushed_offset = 0
        self._dir_dirty = False
        self._pending_deletes: list[tuple[int, LogSegment]] = []
        self._offline: str | None = None
        self._closed = False
        self._last_flush_ms = clock.now_ms()
        self._first_unflushed_ms: int | None = None  # when the oldest unflushed append came
        self.flush_policy = FlushPolicy.of(config)
        self.flush_count = 0  # fsync rounds done (group commit is measured by tests)
        # Idempotent producers' state, checked and advanced by append() only. Transactions
        # put ongoing transactions and the last stable offset here too (producer_state.py),
        # and Fetch's read_committed will read them through this log.
        self.producer_state = ProducerStateManager()
        self.txn_indexes = TxnIndexes(directory, io)  # every segment's .txnindex
        self._pending_snapshots: list[tuple[int, bytes]] = []  # taken at roll, written by flush
        self.recovery = RecoveryReport(topic, partition, True)
        # key.index.enable: the per-key index (key_index.py), fed by append, kept by the hooks
        # at roll, flush, segment deletion, compaction swaps and close.
        self.key_index = KeyIndex(directory, io, self._lock, self.name, decompressed_bytes_max)
        self._compacted_once = False  # a cleaner checkpoint exists (cleaner.py)
        # The remote tier of a tiered topic (remote/tier.py; given to open by the LogManager,
        # or set when a topic becomes tiered), asked below the local log start.
        self.tier = None

    # ---------------------------------------------------------------------------- open
    @classmethod
    def open(cls, directory: str, topic: str, partition: int, config: LogConfig, *,
             clock: Clock | None = None, io: FileIO = DEFAULT_IO,
             clean_shutdown: bool = True,
             decompressed_bytes_max: int = DECOMPRESSED_BYTES_MAX,
             files: OpenFiles | None = None, tier=None) -> "PartitionLog":
        """``files``: the open-file cache to share (a LogManager passes its own); by default
        the process-wide one sized from ``ulimit -n``."""
        self = cls(directory, topic, partition, config, clock or SystemClock(), io,
                   files or default_open_files(), decompressed_bytes_max)
        self.recovery.clean_shutdown = clean_shutdown
        self.tier = tier  # known before the load: producer state is kept from its start
        try:
            self._load(clean_shutdown)
        except OSError as e:
            self._close_fds()
            raise storage_error("cannot open log", directory, e) from e
        except BaseException:
            self._close_fds()
            raise
        return self

    def _load(self, clean: bool) -> None:
        if not self.io.isdir(self.directory):
            self.io.mkdir(self.directory)
            self.io.fsync_dir(os.path.dirname(os.path.abspath(self.directory)))
        self._compacted_once = self.io.exists(os.path.join(self.directory, CLEANER_CHECKPOINT_FILE))
        bases = self._clean_directory()
        now = self.clock.now_ms()
        index_bytes = self.config.segment_index_bytes
        for base in bases:
            self.segments.append(self._configure(LogSegment.open_existing(
                self.directory, base, self.io, segment_index_bytes=index_bytes, created_ms=now,
                files=self.files)))
        recovery_point = read_recovery_point(self.directory)
        self.recovery.recovery_point = recovery_point
        self._recover_segments(clean, recovery_point)
        checkpoint = self._read_log_start_checkpoint()
        if not self.segments:
            self._add_segment(LogSegment.create(self.directory, checkpoint, self.io,
                                                segment_index_bytes=index_bytes, created_ms=now,
                                                files=self.files))
        self._log_start_offset = max(checkpoint, self.segments[0].base_offset)
        if self._log_start_offset > self.log_end_offset:
            # DeleteRecords moved the start past data a crash then took: start afresh there.
            log.warning("%s: log start offset %d is past the recovered end %d; starting an "
                        "empty log at %d", self.name, self._log_start_offset, self.log_end_offset,
                        self._log_start_offset)
            for seg in list(self.segments):
                self.recovery.deleted_segments.append(seg.base_offset)
                self._unlink_segment_now(seg)
            self.segments, self._bases = [], []
            self._add_segment(LogSegment.create(self.directory, self._log_start_offset, self.io,
                                                segment_index_bytes=index_bytes, created_ms=now,
                                                files=self.files))
        # Whatever is on disk now is what we serve: make it durable so flushed_offset = LEO
        # is true even if the previous process died with dirty pages in the page cache.
        # After a clean shutdown everything was fsynced before the marker was written, so
        # only what recovery changed (or created) needs a sync: a clean start then neither
        # reopens nor syncs every closed segment of every partition.
        if not clean:
            for seg in self.segments:
                seg.data_dirty = True
            self._dir_dirty = True
            self._fsync_all()
        else:
            self._dir_dirty = True
            self._flush_unlocked()
        # Closed segments are only read from here on: give their descriptors back to the
        # open-file cache (handles.py); a read reopens them.
        for seg in self.segments[:-1]:
            seg.file.release()
            seg.release_index_fds()
        self._flushed_offset = self.log_end_offset
        self._recovery_point_written = recovery_point
        if recovery_point > self.log_end_offset:
            # The log is shorter than the checkpoint says (damage cut it): new appends must
            # not be mistaken for flushed data by the next unclean start.
            try:
                self._write_recovery_point(self.log_end_offset)
            except KafkaStorageError:  # no room for the file: no checkpoint is safe too
                self.io.unlink(os.path.join(self.directory, RECOVERY_POINT_FILE))
                self._recovery_point_written = 0
        self._load_producer_state()
        if self.config.key_index_enable:
            self.key_index.load(self.segments, clean)
        if self.recovery.changed:
            log.warning("%s: recovery cut %d bytes (%d damaged ranges), rebuilt indexes of %d "
                        "segments, removed %d empty segments, offset gaps %s", self.name,
                        self.recovery.truncated_bytes, len(self.recovery.damage),
                        sum(1 for s in self.recovery.segments if s.index_rebuilt),
                        len(self.recovery.deleted_segments), self.recovery.offset_gaps or "none")

    def _clean_directory(self) -> list[int]:
        """Remove leftovers of interrupted operations; return the segment base offsets."""
        # A committed cleaner swap is finished first (segment_swap.py); others are leftovers.
        self.recovery.removed_leftovers += finish_interrupted_swaps(self.io, self.directory)
        logs, others = set(), {}
        for name in sorted(self.io.listdir(self.directory)):
            path = os.path.join(self.directory, name)
            if name.endswith(_LEFTOVER_SUFFIXES):
                self.io.unlink(path)
                self.recovery.removed_leftovers.append(name)
                continue
            m = _SEGMENT_FILE.match(name)
            if not m:
                continue
            base = int(m.group(1))
            if m.group(2) == "log":
                logs.add(base)
            else:
                others.setdefault(base, []).append(path)
        for base, paths in others.items():
            if base not in logs:  # an index without its log: derived data of nothing
                for path in paths:
                    self.io.unlink(path)
                    self.recovery.removed_leftovers.append(os.path.basename(path))
        return sorted(logs)

    def _recover_segments(self, clean: bool, recovery_point: int) -> None:
        """Check every segment (module docstring, *Recovery*). A damaged segment is isolated
        (cut, its valid tail split off into a new segment); later segments are kept."""
        interval = self.config.index_interval_bytes
        work = list(self.segments)
        split_off: set[int] = set()  # ids of segments made by a split: scanned in full
        kept: list[LogSegment] = []
        i = 0
        while i < len(work):
            seg = work[i]
            is_last = i == len(work) - 1
            next_base = None if is_last else work[i + 1].base_offset
            if kept and seg.base_offset < kept[-1].next_offset:
                self._quarantine_segment(seg, f"segment {seg.base_offset} overlaps offsets up to "
                                              f"{kept[-1].next_offset - 1} of the one before it")
                i += 1
                continue
            # Kafka's rule: after an unclean shutdown only segments reaching the recovery
            # point (data maybe never flushed) are scanned in full; older ones are trusted
            # like after a clean shutdown, and verified lazily when read.
            flushed = next_base is not None and next_base <= recovery_point
            if id(seg) in split_off:
                mode = "full"
            elif clean or flushed:
                mode = "tail" if is_last else "walk"
            else:
                mode = "full"
            report = seg.recover(mode, interval, next_base=next_base,
                                 keep_cut=flushed or not is_last or clean)
            self.recovery.segments.append(report)
            self._log_segment_report(seg, report)
            if report.split_base is not None:
                # A split interrupted before its cut needs nothing special: the tail's copy
                # is the next segment, and batches reaching it cannot be resynced onto
                # (next_base bounds them), so the rest of this file is simply cut.
                new = self._configure(LogSegment.open_existing(
                    self.directory, report.split_base, self.io,
                    segment_index_bytes=self.config.segment_index_bytes, created_ms=seg.created_ms,
                    files=self.files))
                work.insert(i + 1, new)
                split_off.add(id(new))
            kept.append(seg)
            i += 1
        if len(kept) > 1:
            for a, b in zip(kept, kept[1:]):
                if b.base_offset > a.next_offset:
                    self.recovery.offset_gaps.append((a.next_offset, b.base_offset - 1))
        # An empty segment is only legitimate at the end of the log (one emptied by damage
        # at its first batch has given its bytes to quarantine and its tail to a split).
        self.segments = [s for s in kept[:-1] if not s.is_empty] + kept[-1:]
        for seg in kept[:-1]:
            if seg.is_empty:
                self.recovery.deleted_segments.append(seg.base_offset)
                self._unlink_segment_now(seg)
        self._bases = [s.base_offset for s in self.segments]

    # ------------------------------------------------------------------- producer state
    def _load_producer_state(self) -> None:
        """Rebuild producer state (module docstring, *Producer state*): the newest snapshot
        whose offset nothing recovery cut lies below, then the batch headers after it."""
        trusted = self.log_end_offset
        for damage in self.recovery.damage:
            trusted = min(trusted, damage.first_offset)
        for first, _last in self.recovery.offset_gaps:
            trusted = min(trusted, first)
        start = self._log_start_offset
        legacy = os.path.join(self.directory, "producer_state.snapshot")  # kafkito before 11
        if os.path.exists(legacy):
            self.io.unlink(legacy)  # its state is rebuilt from the log below
        # A damaged .txnindex is rebuilt by replaying from a snapshot at or below its segment.
        damaged = self.txn_indexes.load(self._bases)
        for base, problem in damaged.items():
            log.warning("%s: aborted-transaction index of segment %s: %s; rebuilding it",
                        self.name, segment_prefix(base), problem)
        limit = min(damaged, default=trusted)
        for offset in reversed(snapshot_offsets(self.directory)):
            if offset > trusted:  # describes data this log no longer holds as it was
                self._remove_snapshot(offset)
                continue
            if self.recovery.producer_snapshot is not None or offset > limit:
                continue  # an older one: kept for now, retention removes it
            try:
                snapshot = load_snapshot(self.directory, offset)
            except (CorruptMetadataError, KeyError, TypeError, ValueError) as e:
                log.warning("%s: ignoring producer snapshot %d (%s); using an older one",
                            self.name, offset, e)
                self._remove_snapshot(offset)
                continue
            if snapshot.txn_index_counts is not None:
                lost = self.txn_indexes.first_mismatch(snapshot.txn_index_counts, self._bases,
                                                       offset)
                if lost is not None:
                    log.warning("%s: aborted-transaction index of segment %s is missing "
                                "entries; rebuilding it from the log", self.name,
                                segment_prefix(lost))
                    limit = lost
                    continue
            self.producer_state = snapshot.state
            self.recovery.producer_snapshot = start = max(offset, start)
        self.txn_indexes.truncate_from(start)  # every entry from here on comes from the replay
        self.recovery.producer_batches_replayed = self._replay_producer_state(start)
        self.producer_state.on_high_watermark(self.log_end_offset)
        self._restart_txns(self.producer_state.truncate_before(self.log_start_offset))
        self.txn_indexes.sync()

    def _replay_producer_state(self, start: int) -> int:
        """Record every producer batch from ``start`` to the LEO; returns batches read.
        Headers only: 61 bytes of each batch, read in chunks."""
        state = self.producer_state
        count = 0
        for seg in self.segments[self._segment_index_for(start):]:
            end = seg.size
            pos = self._find_batch(seg, start, end)
            if pos is None:
                continue
            for _p, f, _view in seg.headers_from(pos, end):
                last = f[0] + f[6]
                if last < start:
                    continue
                count += 1
                if f[9] < 0:
                    continue
                if not f[5] & CONTROL_BIT:
                    state.record(f[9], f[10], f[11], f[0], last, f[8],
                                 bool(f[5] & TRANSACTIONAL_BIT))
                    continue
                # A marker: its type and coordinator epoch are in its one record, so the
                # (small) batch is read whole.
                try:
                    marker = control_marker_of(seg.file.pread(f[1] + LOG_OVERHEAD, _p))
                except StorageError as e:
                    log.warning("%s: control batch at offset %d cannot be read (%s); "
                                "skipped", self.name, f[0], e)
                    continue
                if marker.type in (ABORT, COMMIT):
                    self._complete_txns([state.record_marker(
                        f[9], f[10], marker.is_commit, marker.coordinator_epoch, f[0], f[8])])
        return count

    def _restart_txns(self, producer_ids: list[int]) -> None:
        """Transactions that began below the log start begin, from now on, at their
        producer's first transactional batch at or past it (producer_state.restart_txns):
        what a replay from the log start finds, so the LSO is the same before and after a
        restart. Under the lock; headers only, and only when the log start passed an
        unstable transaction."""
        if not producer_ids:
            return
        start = self._log_start_offset
        wanted, found = set(producer_ids), {}
        for seg in self.segments[self._segment_index_for(start):]:
            pos = self._find_batch(seg, start, seg.size)
            if pos is None:
                continue
            for _p, f, _view in seg.headers_from(pos, seg.size):
                if f[0] + f[6] >= start and f[9] in wanted and f[5] & TRANSACTIONAL_BIT:
                    wanted.discard(f[9])
                    if not f[5] & CONTROL_BIT:
                        found[f[9]] = f[0]
                    if not wanted:
                        break
            if not wanted:
                break
        self.producer_state.restart_txns(found, producer_ids)

    def _complete_txns(self, completed: list[CompletedTxn]) -> None:
        """Index the aborted ones of transactions a marker just ended (under the lock)."""
        state = self.producer_state
        for txn in completed:
            if txn.is_aborted:
                seg = self.segments[self._segment_index_for(txn.last_offset)]
                entry = AbortedTxn(txn.producer_id, txn.first_offset, txn.last_offset,
                                   state.next_stable_offset(txn))
                if self.txn_indexes.append(seg.base_offset, entry):
                    self._dir_dirty = True
            state.complete_txn(txn)

    def _take_producer_snapshot(self, offset: int) -> None:
        """Queue a snapshot of the state as it is before ``offset`` (called at a roll, under
        the lock, usually on the broker's event loop): the next flush writes it, in the
        flushing thread, so no roll waits for an fsync."""
        self._pending_snapshots.append((offset, encode_snapshot(
            self.producer_state, offset, self.txn_indexes.counts_below(offset))))

    def _write_pending_snapshots(self) -> None:
        """Write queued snapshots (atomically, fsynced). Derived data: a failure is logged,
        and the next open replays from an older snapshot instead."""
        with self._lock:
            pending, self._pending_snapshots = self._pending_snapshots, []
        for offset, data in pending:
            path = snapshot_path(self.directory, offset)
            try:
                metafile.write_atomic(path, data, self.io)
            except OSError as e:
                log.warning("%s: cannot write producer snapshot %s: %s", self.name,
                            os.path.basename(path), e.strerror or e)

    def _remove_snapshot(self, offset: int) -> None:
        try:
            self.io.unlink(snapshot_path(self.directory, offset))
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("%s: cannot remove producer snapshot %d: %s", self.name, offset, e)

    def _log_segment_report(self, seg: LogSegment, report: SegmentRecovery) -> None:
        name = segment_prefix(seg.base_offset)
        if report.damage is not None:
            what = report.damage.describe()
            if report.split_base is not None:
                log.error("%s: damaged batch isolated in %s; the %d bytes after it moved to new "
                          "segment %s", self.name, what, report.moved_bytes,
                          segment_prefix(report.split_base))
            elif report.damage.quarantine is not None:
                log.error("%s: damaged data cut off the end of segment %s: %s", self.name, name, what)
            else:
                log.warning("%s: incomplete tail cut off the end of segment %s: %s", self.name,
                            name, what)
        if report.index_rebuilt:
            log.info("%s: segment %s: indexes rebuilt", self.name, name)

    def _quarantine_segment(self, seg: LogSegment, reason: str) -> None:
        """Move a whole segment file aside (its indexes are derived: dropped)."""
        seg.close()
        target = seg.log_path + QUARANTINE_SUFFIX
        size = os.path.getsize(seg.log_path)
        self.io.rename(seg.log_path, target)
        for path in (seg.offset_index.path, seg.time_index.path):
            try:
                self.io.unlink(path)
            except FileNotFoundError:
                pass
        self._dir_dirty = True
        log.error("%s: %s; moved it to %s (%d bytes)", self.name, reason,
                  os.path.basename(target), size)
        self.recovery.segments.append(SegmentRecovery(
            seg.base_offset, "quarantined", truncated_bytes=size, reason=reason,
            damage=DamagedRange(seg.base_offset, 0, size, reason, seg.base_offset, None,
                                os.path.basename(target))))

    def _unlink_segment_now(self, seg: LogSegment) -> None:
        seg.close()
        for path in (seg.log_path, seg.offset_index.path, seg.time_index.path):
            try:
                self.io.unlink(path)
            except FileNotFoundError:
                pass
        self._dir_dirty = True

    def _read_log_start_checkpoint(self) -> int:
        path = os.path.join(self.directory, LOG_START_OFFSET_FILE)
        if not self.io.exists(path):
            return 0
        return int(metafile.read(path, "log-start-offset")["log_start_offset"])

    def _write_recovery_point(self, offset: int) -> None:
        path = os.path.join(self.directory, RECOVERY_POINT_FILE)
        try:
            metafile.write(path, "recovery-point", {"recovery_point": offset}, self.io)
        except OSError as e:
            raise storage_error("cannot write", path, e) from e
        self._recovery_point_written = offset

    def checkpoint_recovery_point(self) -> bool:
        """Persist the flushed offset as the recovery point, if it moved: an unclean start
        then scans only the segments reaching past it (Kafka's
        ``log.flush.offset.checkpoint.interval.ms`` task calls this, and close). Not done on
        every flush: that would add an fsync and a rename to every acks=all round."""
        with self._checkpoint_lock:
            with self._lock:
                if self._closed or self._offline is not None:
                    return False
                point = self._flushed_offset
            return self._checkpoint(point)

    def _checkpoint(self, point: int) -> bool:
        if point == self._recovery_point_written:
            return False
        self._write_recovery_point(point)
        return True

    def _write_log_start_checkpoint(self, log_start_offset: int) -> None:
        path = os.path.join(self.directory, LOG_START_OFFSET_FILE)
        try:
            metafile.write(path, "log-start-offset",
                           {"log_start_offset": log_start_offset}, self.io)
        except OSError as e:
            raise storage_error("cannot write", path, e) from e

    def _configure(self, seg: LogSegment) -> LogSegment:
        # A log compacted once keeps its offset gaps after its policy goes back to delete.
        seg.contiguous_offsets = not self.config.compact and not self._compacted_once
        seg.leader_epoch_max = self.leader_epoch
        return seg

    def _add_segment(self, seg: LogSegment) -> None:
        self._configure(seg)
        self.segments.append(seg)
        self._bases.append(seg.base_offset)
        self._dir_dirty = True

    # ---------------------------------------------------------------------- properties
    @property
    def name(self) -> str:
        return f"{self.topic}-{self.partition}"

    @property
    def log_start_offset(self) -> int:
        """The log start over both tiers (the remote one's when it holds data below ours)."""
        remote = self.tier.log_start_offset if self.tier is not None else None
        return self._log_start_offset if remote is None else min(remote, self._log_start_offset)

    @property
    def local_log_start_offset(self) -> int:
        return self._log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self.segments[-1].next_offset

    @property
    def flushed_offset(self) -> int:
        return self._flushed_offset

    high_watermark = flushed_offset

    @property
    def last_stable_offset(self) -> int:
        """The offset below which every transaction is decided and its marker flushed
        (module docstring, *Transactions*): where read_committed reads stop."""
        with self._lock:
            hw = self._flushed_offset
            first = self.producer_state.first_unstable_offset()
            if first is None or first >= hw:
                return hw
            return min(hw, max(first, self._log_start_offset))

    def aborted_transactions(self, fetch_offset: int, upper_bound_offset: int) -> list[tuple[int, int]]:
        """(producer id, first offset) of every aborted transaction overlapping
        ``[fetch_offset, upper_bound_offset)``: what a read_committed fetch of that range
        tells the consumer to drop. Below the local log start the remote tier's uploaded
        ``.txnindex`` files answer, then the local ones (an abort's entry lives with its
        marker, which may be local while the transaction began remotely)."""
        found: list[tuple[int, int]] = []
        if self.tier is not None and fetch_offset < self._log_start_offset:
            found = self.tier.aborted_transactions(fetch_offset, upper_bound_offset)
            fetch_offset = self._log_start_offset
            if upper_bound_offset <= fetch_offset:
                return found
        with self._lock:
            start = self.segments[self._segment_index_for(fetch_offset)].base_offset
            local = self.txn_indexes.collect(fetch_offset, upper_bound_offset, start)
        found += [(e.producer_id, e.first_offset) for e in local]
        return list(dict.fromkeys(found))

    def aborted_txns_overlapping(self, first_offset: int, upper_bound_offset: int) -> list[AbortedTxn]:
        """The local ``.txnindex`` entries overlapping ``[first_offset, upper_bound_offset)``,
        markers' offsets included (the cleaner's question: was a batch there aborted?). Every
        entry is looked at: unlike a fetch's search, nothing here rests on the entries' LSOs
        (which a rebuild from a cleaned log computes from the batches left)."""
        with self._lock:
            return [e for e in self.txn_indexes.entries()
                    if e.last_offset >= first_offset and e.first_offset < upper_bound_offset]

    def active_producers(self) -> list[ProducerInfo]:
        """Every producer this partition keeps state for (DescribeProducers)."""
        with self._lock:
            return self.producer_state.describe()

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return sum(s.size for s in self.segments)

    @property
    def active_segment(self) -> LogSegment:
        return self.segments[-1]

    @property
    def damaged_ranges(self) -> list[DamagedRange]:
        """What recovery cut out, then every damaged batch reads have stepped over since."""
        with self._lock:
            found = [d for s in self.segments for d in s.damage]
        return self.recovery.damage + found

    @property
    def is_offline(self) -> bool:
        return self._offline is not None

    def update_config(self, config: LogConfig, flush_policy: FlushPolicy | None = None) -> None:
        with self._lock:
            if config.key_index_enable != self.config.key_index_enable:
                # Turned on: index what is there now (a walk of the log, under the lock);
                # turned off: the sidecars go.
                if config.key_index_enable:
                    self.key_index.load(self.segments, clean=False)
                else:
                    self.key_index.remove_all()
            self.config = config
            self.flush_policy = flush_policy or FlushPolicy.of(config)
            for seg in self.segments:
                self._configure(seg)

    def _check_writable(self) -> None:
        if self._closed:
            raise LogClosedError(f"log {self.name} is closed")
        if self._offline is not None:
            raise KafkaStorageError(f"log {self.name} is offline ({self._offline}); "
                                    "reopen it to recover")

    # -------------------------------------------------------------------------- append
    def append(self, records: bytes | bytearray | memoryview, now_ms: int, *,
               origin: str = ORIGIN_CLIENT) -> AppendInfo:
        mv = memoryview(records).cast("B")
        config = self.config
        headers = validate_batches(mv, config, now_ms, from_client=(origin == ORIGIN_CLIENT),
                                   decompressed_bytes_max=self.decompressed_bytes_max,
                                   key_hashes=config.key_index_enable)
        lat = now_ms if config.log_append_time else None
        with self._lock:
            self._check_writable()
            record_count = sum(h.last_offset_delta + 1 for h in headers)
            base_offset = self.log_end_offset
            last_offset = base_offset + record_count - 1
            producer_append = None
            if any(h.producer_id >= 0 for h in headers):
                producer_append, duplicate = self._check_producers(mv, headers, base_offset, lat)
                if duplicate is not None:  # a retry: answered with the original's offsets
                    return duplicate
            total = sum(h.size for h in headers)
            active = self.segments[-1]
            if not active.is_empty and self._should_roll(active, total, last_offset, now_ms):
                active = self._roll_locked(now_ms)
            if not active.can_hold(last_offset):
                # Only an append of more offsets than a segment can address gets here (an
                # empty active segment starts at the LEO). One append is one all-or-nothing
                # write into one segment, so it is refused rather than split.
                raise InvalidRecordError(
                    f"an append of {record_count} offsets does not fit one segment "
                    f"({REL_OFFSET_MAX + 1} offsets at most)")
            iovecs: list = []
            index_batches: list[tuple[int, int, int]] = []
            offset = base_offset
            for h in headers:
                iovecs.append(stamp_header(mv, h, offset, self.leader_epoch, lat))
                iovecs.append(mv[h.position + HEADER_BYTES : h.position + h.size])
                offset += h.last_offset_delta + 1
                index_batches.append((offset - 1, h.size, lat if lat is not None else h.max_timestamp))
            position = active.size
            active.append(iovecs, index_batches, config.index_interval_bytes)
            if config.key_index_enable:
                self.key_index.on_append(active, position, headers)
            if producer_append is not None:
                self._complete_txns(producer_append.commit())
            if self._first_unflushed_ms is None:
                self._first_unflushed_ms = now_ms
            return AppendInfo(base_offset, last_offset, now_ms if lat is not None else -1,
                              self._log_start_offset, record_count)

    def _check_producers(self, mv: memoryview, headers, base_offset: int, lat: int | None):
        """Check every producer batch of one append (producer_state.py); returns the staged
        ``ProducerAppendInfo`` and, for a retried batch, the AppendInfo to answer with."""
        producer_append = self.producer_state.begin_append()
        offset = base_offset
        for h in headers:
            last = offset + h.last_offset_delta
            timestamp = lat if lat is not None else h.max_timestamp
            if h.producer_id >= 0 and h.attributes & CONTROL_BIT:
                # A marker carries no sequence: its epochs are checked instead.
                marker = control_marker_of(mv[h.position : h.position + h.size])
                if marker.type in (ABORT, COMMIT):
                    producer_append.append_marker(h.producer_id, h.producer_epoch,
                                                  marker.is_commit, marker.coordinator_epoch,
                                                  offset, timestamp)
            elif h.producer_id >= 0:
                duplicate = producer_append.append(
                    h.producer_id, h.producer_epoch, h.base_sequence, offset, last, timestamp,
                    bool(h.attributes & TRANSACTIONAL_BIT))
                if duplicate is not None:
                    if len(headers) > 1:  # only a client's single-batch append is a retry
                        raise OutOfOrderSequenceError(
                            f"producer {h.producer_id}: batch at sequence {h.base_sequence} "
                            "repeats an appended batch inside a multi-batch append")
                    return producer_append, AppendInfo(duplicate.first_offset, duplicate.last_offset,
                                                       -1, self._log_start_offset, 0)
            offset = last + 1
        return producer_append, None

    def append_control(self, producer_id: int, producer_epoch: int, commit: bool,
                       coordinator_epoch: int, now_ms: int) -> int:
        """Write one COMMIT or ABORT marker for the producer's transaction (the transaction
        coordinator's write); returns its offset. Raises ``InvalidProducerEpochError`` for
        an epoch older than the producer's, ``TransactionCoordinatorFencedError`` for an
        older coordinator epoch. A marker with no transaction open is written anyway, as
        Kafka does (a retried or fencing marker)."""
        blob = build_control_batch(producer_id, producer_epoch, commit, coordinator_epoch, now_ms)
        return self.append(blob, now_ms, origin=ORIGIN_COORDINATOR).base_offset

    def _should_roll(self, active: LogSegment, incoming_bytes: int, last_offset: int,
                     now_ms: int) -> bool:
        c = self.config
        return (active.size > c.segment_bytes - incoming_bytes
                or now_ms - active.created_ms > c.segment_ms
                or active.offset_index.is_full
                or active.time_index.is_full
                or not active.can_hold(last_offset))

    def roll(self, now_ms: int | None = None) -> int:
        """Start a new active segment at the LEO (no-op when the active one is empty).
        Returns the active segment's base offset."""
        with self._lock:
            self._check_writable()
            return self._roll_locked(self.clock.now_ms() if now_ms is None else now_ms).base_offset

    def _roll_locked(self, now_ms: int) -> LogSegment:
        old = self.segments[-1]
        if old.is_empty:
            return old
        new = LogSegment.create(self.directory, old.next_offset, self.io,
                                segment_index_bytes=self.config.segment_index_bytes,
                                created_ms=now_ms, files=self.files)
        try:
            old.seal()
        except OSError as e:  # derived data: recovery re-adds the entry
            log.warning("%s: cannot seal time index of %s: %s", self.name, old.log_path, e)
        self._add_segment(new)
        self._take_producer_snapshot(new.base_offset)
        self.key_index.on_roll(old)
        log.debug("%s: rolled new segment at %d", self.name, new.base_offset)
        return new

    # --------------------------------------------------------------------------- flush
    def flush(self) -> int:
        """fsync data, then indexes, then the directory, up to the current LEO; returns the
        flushed offset. Thread-safe; concurrent callers share fsyncs (group commit)."""
        with self._lock:
            self._check_writable()
            needed = self.log_end_offset
            if self._flushed_offset >= needed:
                return self._flushed_offset
        with self._flush_lock:
            with self._lock:
                self._check_writable()
                if self._flushed_offset >= needed:
                    return self._flushed_offset  # an fsync that started after our append covered us
                target = self.log_end_offset
                started_ms = self.clock.now_ms()
                dirty = [s for s in self.segments if s.dirty]
                dir_dirty, self._dir_dirty = self._dir_dirty, False
                dirty_txn = self.txn_indexes.dirty()
            try:
                for seg in dirty:
                    seg.fsync_data()
                for seg in dirty:
                    seg.fsync_indexes()  # never fails: indexes are derived (segment.py)
                # Before any snapshot this flush writes: one counts the entries as durable.
                self.txn_indexes.sync(dirty_txn)
                with self._lock:  # removing or rewriting index files: no append in between
                    for seg in dirty:
                        seg.settle_indexes()
                        if seg.indexes_offline is not None:
                            dir_dirty = True  # their files were removed: make that durable
                if dir_dirty:
                    self.io.fsync_dir(self.directory)
            except OSError as e:
                with self._lock:
                    self._dir_dirty = True
                    self._offline = f"fsync failed: {e.strerror or e}"
                log.error("%s: %s; taking the log offline", self.name, self._offline)
                raise storage_error("cannot fsync", self.directory, e) from e
            with self._lock:
                self.flush_count += 1
                self._flushed_offset = max(self._flushed_offset, target)
                self.producer_state.on_high_watermark(self._flushed_offset)
                self._last_flush_ms = self.clock.now_ms()
                # Appends that came during the fsync are no older than its start.
                self._first_unflushed_ms = (
                    None if self._flushed_offset >= self.log_end_offset else started_ms)
                active = self.segments[-1]
                for seg in dirty:
                    if seg is not active and not seg.deleted:
                        seg.release_index_fds()
                flushed = self._flushed_offset
            if self._pending_snapshots:
                self._write_pending_snapshots()
            self.key_index.write_pending()
            return flushed

    def flush_due_ms(self) -> int | None:
        """The flush policy (``flush_policy``): the clock time at which the unflushed data
        is due for fsync (a time already past when ``flush.messages`` is reached), or None
        when everything is flushed. The policy never fsyncs: the broker's flusher (or
        ``maybe_flush``) calls ``flush`` when this time comes, in its own thread."""
        with self._lock:
            unflushed = self.log_end_offset - self._flushed_offset
            if unflushed <= 0 or self._first_unflushed_ms is None:
                return None
            policy = self.flush_policy
            if unflushed >= policy.messages:
                return self._first_unflushed_ms
            return self._first_unflushed_ms + policy.interval_ms

    def maybe_flush(self, now_ms: int | None = None) -> bool:
        """Apply the flush policy once, in the calling thread: flush when due."""
        now = self.clock.now_ms() if now_ms is None else now_ms
        due = self.flush_due_ms()
        if due is None or due > now:
            return False
        self.flush()
        return True

    def _fsync_all(self) -> None:
        for seg in self.segments:
            seg.fsync_data()
            seg.fsync_indexes()
            seg.settle_indexes()
        self.io.fsync_dir(self.directory)
        self._dir_dirty = False

    # ---------------------------------------------------------------------------- read
    def _find_batch(self, seg: LogSegment, offset: int, end: int,
                    file: PinnedFile | None = None) -> int | None:
        try:
            return seg.find_batch(offset, end, file)
        except IndexMismatch as e:
            log.warning("%s: %s; rebuilding the index", self.name, e)
            with self._lock:
                if not seg.deleted and not self._closed:
                    seg.rebuild_indexes(self.config.index_interval_bytes)
            return seg.find_batch(offset, end, file)

    def _segment_index_for(self, offset: int) -> int:
        return max(0, bisect.bisect_right(self._bases, offset) - 1)

    def read(self, offset: int, max_bytes: int, max_offset: int | None = None) -> FileSlice:
        if self.tier is not None and offset < self._log_start_offset:
            remote = self.tier.read(offset, max_bytes, max_offset)  # a RemoteSlice: bytes
            if remote is not None:
                return remote
        with self._lock:
            if self._closed:
                raise LogClosedError(f"log {self.name} is closed")
            leo = self.log_end_offset
            if offset < self._log_start_offset or offset > leo:
                raise OffsetOutOfRangeError(offset, self._log_start_offset, leo)
            limit = leo if max_offset is None else min(max_offset, leo)
            first = self._segment_index_for(offset)
            candidates = [(s, s.size) for s in self.segments[first:]]
        if offset >= limit:
            return FileSlice(None, candidates[-1][1], 0, offset, offset, 0)
        for seg, end in candidates:
            if seg.base_offset >= limit:
                break
            # One pin for the scans and the slice (handles.py): the slice then owns it.
            try:
                pin = PinnedFile(seg.file)
            except LogClosedError:
                raise LogClosedError(f"log {self.name} is closed") from None
            try:
                pos = self._find_batch(seg, offset, end, pin)
                if pos is None:
                    pin.unpin()
                    continue  # the offset lies past this segment's last batch
                size = 0
                count = 0
                first_offset = next_offset = offset
                for p, fields, _ in seg.headers_from(pos, end, stop_at_gap=True, file=pin):
                    last = fields[0] + fields[6]
                    if last >= limit:
                        break
                    batch_size = fields[1] + LOG_OVERHEAD
                    if count and size + batch_size > max_bytes:
                        break
                    if not count:
                        first_offset = fields[0]
                        pos = p  # a damaged batch at pos was stepped over
                    size += batch_size
                    count += 1
                    next_offset = last + 1
                if not count and pos < end and seg.needs_care(pos, end):
                    pin.unpin()
                    continue  # nothing valid left in this segment below the limit
            except BaseException:
                pin.unpin()
                raise
            return FileSlice(pin, pos, size, first_offset, next_offset, count)
        seg, end = candidates[-1]
        return FileSlice(None, end, 0, offset, offset, 0)

    def batches(self, start_offset: int = 0) -> Iterator[RecordBatch]:
        """Every batch holding an offset >= ``start_offset`` up to the LEO at the call."""
        with self._lock:
            start = max(start_offset, self._log_start_offset)
            first = self._segment_index_for(start)
            snapshot = [(s, s.size) for s in self.segments[first:]]
        for seg, end in snapshot:
            pos = self._find_batch(seg, start, end)
            if pos is None:
                continue
            for _p, fields, view in seg.bodies_from(pos, end):
                if fields[0] + fields[6] >= start:
                    yield RecordBatch(view.tobytes())

    # ----------------------------------------------------------------- timestamp lookup
    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record with timestamp >= ``timestamp_ms`` at or
        after the log start offset, or None (ListOffsets by timestamp)."""
        if self.tier is not None:
            found = self.tier.offset_for_timestamp(timestamp_ms, self._log_start_offset)
            if found is not None:
                return found
        with self._lock:
            start = self._log_start_offset
            snapshot = [(s, s.size) for s in self.segments]
        for seg, end in snapshot:
            if seg.max_timestamp < timestamp_ms or seg.next_offset <= start:
                continue
            below = seg.time_index.lookup_below(timestamp_ms)
            from_offset = max(start, below if below is not None else seg.base_offset)
            pos = self._find_batch(seg, from_offset, end)
            if pos is None:
                continue
            for _p, fields, view in seg.bodies_from(pos, end):
                if fields[8] < timestamp_ms or fields[0] + fields[6] < start:
                    continue
                try:
                    for rec in RecordBatch(view).records(self.decompressed_bytes_max):
                        if rec.offset >= start and rec.timestamp >= timestamp_ms:
                            return rec.offset, rec.timestamp
                except StorageError as e:
                    # A batch stored before produce validation existed (a decompression
                    # bomb, records that do not parse): answer at batch precision, as the
                    # time index would, instead of failing every lookup that reaches it.
                    log.warning("%s: batch at offset %d cannot be read for a timestamp lookup "
                                "(%s); answering with its base offset", self.name, fields[0], e)
                    return max(fields[0], start), fields[8]
        return None

    def max_timestamp(self) -> tuple[int, int]:
        """(offset, timestamp) of the first record carrying the log's largest timestamp, or
        (-1, -1) when no record has one (ListOffsets MAX_TIMESTAMP)."""
        with self._lock:
            best = None
            for s in self.segments:
                if s.max_timestamp >= 0 and (best is None or s.max_timestamp > best[0].max_timestamp):
                    best = (s, s.size)
            start = self._log_start_offset
        if self.tier is not None:  # the first record carrying it: the remote one on a tie
            remote = self.tier.max_timestamp(start)
            if remote is not None and (best is None or remote[1] >= best[0].max_timestamp):
                return remote
        if best is None:
            return -1, -1
        seg, end = best
        target = seg.max_timestamp
        pos = self._find_batch(seg, max(seg.offset_of_max_timestamp, start), end)
        if pos is not None:
            for _p, fields, view in seg.bodies_from(pos, end):
                if fields[8] != target:
                    continue
                batch = RecordBatch(view)
                if batch.timestamp_type == LOG_APPEND_TIME:
                    return max(batch.base_offset, start), target
                for rec in batch.records():
                    if rec.timestamp == target and rec.offset >= start:
                        return rec.offset, target
        return seg.offset_of_max_timestamp, target

    # ----------------------------------------------------------------------- retention
    def delete_records_before(self, offset: int) -> int:
        """DeleteRecords: move the log start offset up to ``offset`` (persisted), then delete
        the segments wholly below it. Returns the log start offset."""
        with self._lock:
            self._check_writable()
            leo = self.log_end_offset
            if offset > leo or offset < 0:
                raise OffsetOutOfRangeError(offset, self._log_start_offset, leo)
        if self.tier is not None:
            self.tier.delete_records_before(offset)  # the remote start moves first
        with self._lock:
            if offset <= self._log_start_offset:
                return self.log_start_offset
        if offset > self._flushed_offset:
            self.flush()  # the checkpoint must never point past durable data
        with self._lock:
            if offset > self._log_start_offset:
                # Durable first: a failed write must not move the start a later answer reports.
                self._write_log_start_checkpoint(offset)
                self._log_start_offset = offset
        self._retain(self.clock.now_ms(), below_log_start_only=True)
        return self.log_start_offset

    def apply_retention(self, now_ms: int | None = None) -> int:
        """Delete segments past retention.ms / retention.bytes / below the log start offset,
        and close deleted segments whose file.delete.delay.ms has passed. Returns the number
        of segments deleted now."""
        return self._retain(self.clock.now_ms() if now_ms is None else now_ms)

    def _retain(self, now: int, below_log_start_only: bool = False) -> int:
        with self._lock:
            if self._closed:
                return 0
            count = self._deletable_prefix(now, below_log_start_only)
            if count:
                if count == len(self.segments):
                    self._roll_locked(now)
                doomed = self.segments[:count]
                self._delete_segments(doomed, now)
                self.txn_indexes.drop_below(self.segments[0].base_offset)
                if self.segments[0].base_offset > self._log_start_offset:
                    self._log_start_offset = self.segments[0].base_offset
            if count or below_log_start_only:
                # Over both tiers: local retention of offloaded data keeps producers.
                self._restart_txns(self.producer_state.truncate_before(self.log_start_offset))
                oldest = self.segments[0].base_offset
            else:
                oldest = None
        if oldest is not None:
            # Snapshots are kept for the segments still here (the oldest one's included):
            # one below them could only be replayed over data retention removed.
            for offset in snapshot_offsets(self.directory):
                if offset < oldest:
                    self._remove_snapshot(offset)
        self._close_expired_deletes(now)
        return count

    def _deletable_prefix(self, now: int, below_log_start_only: bool) -> int:
        segs = self.segments
        n = len(segs)
        leo = self.log_end_offset

        def upper(i: int) -> int:
            return segs[i + 1].base_offset if i + 1 < n else leo

        def eligible(i: int) -> bool:
            # Never delete data a crash could still take back, nor the empty active segment.
            return upper(i) <= self._flushed_offset and not (i == n - 1 and segs[i].is_empty)

        c = self.config
        offloaded = leo
        if self.tier is not None and c.remote_storage_enable:
            # Tiered: local.retention.* applies, to offloaded segments only (remote/tier.py).
            c, offloaded = self.tier.local_retention(c, segs, self._flushed_offset, now)
        k = 0
        if c.delete and not below_log_start_only:
            if c.retention_ms >= 0:
                while (k < n and eligible(k) and upper(k) <= offloaded
                       and now - segs[k].largest_timestamp() > c.retention_ms):
                    k += 1
            if c.retention_bytes >= 0:
                excess = sum(s.size for s in segs[k:]) - c.retention_bytes
                while k < n and eligible(k) and upper(k) <= offloaded and excess - segs[k].size >= 0:
                    excess -= segs[k].size
                    k += 1
        while k < n and eligible(k) and upper(k) <= self._log_start_offset:
            k += 1
        return k

    def replace_segments(self, old: list[LogSegment], new: LogSegment, cleaned: str,
                         end_offset: int) -> bool:
        """The cleaner's swap (segment_swap.py): replace the consecutive segments ``old``
        (ending where offset ``end_offset`` begins) by ``new``, whose data is the fsynced file
        ``cleaned`` and whose index entries are in memory (an empty ``new`` replaces them
        by nothing). Returns False, changing nothing
        but removing ``cleaned``, when the log moved on meanwhile (retention or DeleteRecords
        took one of them, the log closed or went offline)."""
        with self._lock:
            live = (not self._closed and self._offline is None and old
                    and all(s in self.segments and not s.deleted for s in old))
            if not live:
                try:
                    self.io.unlink(cleaned)
                except OSError:
                    pass
                return False
            self._compacted_once = True
            at = self.segments.index(old[0])
            assert self.segments[at:at + len(old)] == old and old[-1] is not self.segments[-1]
            swap = swap_path(self.directory, new.base_offset, end_offset)
            try:
                self.io.rename(cleaned, swap)
                self.io.fsync_dir(self.directory)  # committed: recovery finishes it from here
            except OSError as e:
                raise storage_error("cannot swap in cleaned segment", swap, e) from e
            try:
                self._delete_segments(old, self.clock.now_ms())
                if new.is_empty:  # nothing survived: the run leaves an offset gap
                    self.io.unlink(swap)
                else:
                    self.io.rename(swap, new.log_path)
                    self._configure(new)
                    new.write_indexes()  # on failure kept in memory, rebuilt at the next start
                self.io.fsync_dir(self.directory)
            except (OSError, KafkaStorageError) as e:
                # The swap is committed on disk but not in memory: stop serving until a
                # reopen finishes it (finish_interrupted_swaps), as after an fsync failure.
                self._offline = f"segment swap failed: {e}"
                raise KafkaStorageError(f"{self.name}: cannot swap in cleaned segment {swap}: "
                                        f"{e}") from e
            if not new.is_empty:
                self.segments.insert(at, new)
                self._bases.insert(at, new.base_offset)
                if self.config.key_index_enable:  # _delete_segments dropped the old ones'
                    self.key_index.rebuild(new)
                new.file.release()
                new.release_index_fds()
            # Their aborted-transaction entries go with them (to the next segment when
            # nothing survived): still facts about the log, written at the next flush.
            self.txn_indexes.replace([s.base_offset for s in old],
                                     end_offset if new.is_empty else new.base_offset)
            return True

    def _delete_segments(self, doomed: list[LogSegment], now: int) -> None:
        due = now + self.config.file_delete_delay_ms
        for seg in doomed:
            renamed = []
            try:
                for path in (seg.log_path, seg.offset_index.path, seg.time_index.path):
                    if self.io.exists(path):
                        self.io.rename(path, path + DELETED_SUFFIX)
                        renamed.append(path)
            except OSError as e:
                for path in renamed:  # put the segment back as it was
                    try:
                        self.io.rename(path + DELETED_SUFFIX, path)
                    except OSError:
                        pass
                raise storage_error("cannot delete segment", seg.log_path, e) from e
            seg.renamed(DELETED_SUFFIX)
            seg.deleted = True
            self.key_index.drop(seg.base_offset)
            self.segments.remove(seg)
            self._bases.remove(seg.base_offset)
            self._pending_deletes.append((due, seg))
            self._dir_dirty = True
            log.info("%s: deleted segment %s (%d bytes, offsets %d..%d)", self.name,
                     segment_prefix(seg.base_offset), seg.size, seg.base_offset,
                     seg.next_offset - 1)

    def _close_expired_deletes(self, now: int) -> None:
        if not self._pending_deletes:
            return
        # The flush mutex first: an fsync in progress may still use these fds.
        with self._flush_lock, self._lock:
            keep = []
            for due, seg in self._pending_deletes:
                if due > now and not self._closed:
                    keep.append((due, seg))
                    continue
                seg.close()
                for path in (seg.log_path, seg.offset_index.path, seg.time_index.path):
                    try:
                        self.io.unlink(path + DELETED_SUFFIX)
                    except FileNotFoundError:
                        pass
                    except OSError as e:
                        log.warning("%s: cannot remove %s: %s", self.name, path, e)
            self._pending_deletes = keep

    # --------------------------------------------------------------------------- close
    def close(self) -> None:
        """Seal the active segment's time index, flush, checkpoint the recovery point, close
        every fd.

        Derived data never makes close fail: a time-index entry or an index that cannot be
        written (a full disk) is left to the next start's recovery (see segment.py). Data
        that cannot be made durable does: a failed fsync raises ``KafkaStorageError`` and
        takes the log offline. A log that is offline (now or since an earlier fsync failure)
        must not be called cleanly shut down: see ``unclean_reason``."""
        with self._checkpoint_lock, self._flush_lock, self._lock:
            if self._closed:
                return
            try:
                if self._offline is None:
                    self.segments[-1].seal()
                    self._flush_unlocked()
                    # A clean start then loads producer state without reading the log.
                    self._take_producer_snapshot(self.log_end_offset)
                    self._write_pending_snapshots()
                    if self.config.key_index_enable:
                        self.key_index.close(self.segments[-1])
                    try:
                        self._checkpoint(self._flushed_offset)
                    except KafkaStorageError as e:  # the old checkpoint stays valid, only older
                        log.warning("%s: %s", self.name, e)
            finally:
                self._closed = True
                self._close_fds()

    @property
    def offline_reason(self) -> str | None:
        """Why the log is offline (an fsync failed: its unflushed data may be lost), or None."""
        return self._offline

    @property
    def unclean_reason(self) -> str | None:
        """Why the next start must verify this log as after a crash, or None: it is offline,
        or an index file we could not make right could not be removed either."""
        if self._offline is not None:
            return self._offline
        for seg in self.segments:
            if seg.index_removal_failed:
                return f"segment {seg.log_path}: {seg.indexes_offline}"
        return None

    def _flush_unlocked(self) -> None:
        try:
            for seg in self.segments:
                if seg.dirty:
                    seg.fsync_data()
                    seg.fsync_indexes()
                    seg.settle_indexes()
            self.txn_indexes.sync()
            if self._dir_dirty:
                self.io.fsync_dir(self.directory)
                self._dir_dirty = False
        except OSError as e:
            self._offline = f"fsync failed: {e.strerror or e}"
            raise storage_error("cannot fsync", self.directory, e) from e
        self._flushed_offset = self.log_end_offset
        self.producer_state.on_high_watermark(self._flushed_offset)

    def _close_fds(self) -> None:
        for seg in self.segments:
            try:
                seg.close()
            except OSError:
                pass
        for _due, seg in self._pending_deletes:
            try:
                seg.close()
                for path in (seg.log_path, seg.offset_index.path, seg.time_index.path):
                    if self.io.exists(path + DELETED_SUFFIX):
                        self.io.unlink(path + DELETED_SUFFIX)
            except OSError:
                pass
        self._pending_deletes = []

    def mark_deleted(self) -> None:
        """Topic deletion: refuse further use but keep fds open (in-flight sendfiles)."""
        with self._lock:
            self._closed = True

    def release(self) -> None:
        """Close fds after mark_deleted (once file.delete.delay.ms has passed)."""
        with self._flush_lock, self._lock:
            self._closed = True
            self._close_fds()

    def __repr__(self) -> str:
        return (f"PartitionLog({self.name}, start={self._log_start_offset}, "
                f"end={self.log_end_offset}, flushed={self._flushed_offset}, "
                f"segments={len(self.segments)})")

"""RemoteTier: one partition's remote log (Kafka's remote half of UnifiedLog).

Theory of operation.

A ``PartitionLog`` whose topic is tiered holds a ``RemoteTier`` in ``log.tier`` and asks it
four things, each in a few lines of log.py: the remote log start (the log's start is the
smaller of the two tiers'), reads below the local log start, timestamp lookups below it,
and how far local retention may delete (only what a durable manifest holds). The local log
stays Kafka's LocalLog; this object is the remote half, and everything it knows about the
bucket is its current ``PartitionManifest`` (manifest.py), replaced whole on every change,
so readers take the reference and never lock.

*Offload* (``offload``, in a worker thread, one pass at a time per partition): every closed
local segment at or past the manifest's end and wholly below the flushed offset (never data
a crash could take back) is uploaded: ``.log`` streamed from the segment's pinned
descriptor, its offset and time index (from memory: exactly the entries), the producer
snapshot taken at its end, its ``.txnindex`` if there is one, and with
``remote.storage.parquet.enable`` a Parquet rendering; then the manifest naming the
uploaded segments is put (after each ``COMMIT_BYTES`` uploaded, and at the end of the
pass). That put is the commit point (see manifest.py for why a crash on either side of it is
harmless). Local retention runs after a pass, so local copies go only once the manifest
that names them is durable in the store.

*Retention over both tiers* (``apply_retention``): ``retention.ms`` drops remote segments
whose newest record is older; ``retention.bytes`` counts the remote segments below the
local log plus the local log. Local retention uses ``local.retention.ms`` /
``local.retention.bytes`` (-2: the total ones) and may delete only offloaded segments; when
it would delete one that is not offloaded yet it waits, and says once that the disk may
fill. *DeleteRecords* moves the manifest's log start; segments wholly below it are dropped
from the manifest first and their objects deleted after.

*Outages*: every store call may raise ``RemoteStorageError``. The tier itself keeps no
half state: a failed pass leaves the old manifest in force. The caller (remote_log_manager.py)
backs off and logs state changes.
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
from functools import partial
from typing import TYPE_CHECKING

import msgspec

from kafkito.records.batch import iter_batches

from .. import metafile
from ..errors import CorruptMetadataError, OffsetOutOfRangeError
from ..handles import PinnedFile
from ..producer_state import snapshot_path
from ..segment import segment_prefix
from .manifest import (
    INDEX, LOG, MANIFEST_KIND, PARQUET, SNAPSHOT, TIMEINDEX, TXNINDEX, PartitionManifest,
    RemoteSegment, garbage, manifest_key, partition_dir, segment_key,
)
from .reader import RemoteReader
from .store import PUT_PART_BYTES, ObjectNotFoundError, ObjectStore, RemoteStorageError

if TYPE_CHECKING:
    from ..config import LogConfig
    from ..log import PartitionLog

log = logging.getLogger("kafkito.storage.remote")

UPLOAD_READ_BYTES = PUT_PART_BYTES
REMOTE_BOUNDS_FILE = "remote-log-bounds"  # in the partition directory (see __init__)
COMMIT_BYTES = 64 << 20  # a manifest commit at least every this many uploaded bytes
PINNED_MAX = 8  # local segments an offload pass holds open at once


class RemoteSlice:
    """Whole batches read from the remote tier, as bytes: what a FileSlice is for local
    reads (``size``, ``first_offset``, ``next_offset``, ``tobytes``), but already in
    memory, so the broker copies it into the response instead of sendfile'ing it."""

    __slots__ = ("data", "size", "first_offset", "next_offset", "batch_count")

    def __init__(self, data: bytes, first_offset: int, next_offset: int, batch_count: int):
        self.data = data
        self.size = len(data)
        self.first_offset = first_offset
        self.next_offset = next_offset
        self.batch_count = batch_count

    @property
    def nbytes(self) -> int:
        return self.size

    def tobytes(self) -> bytes:
        return self.data

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"RemoteSlice(size={self.size}, offsets=[{self.first_offset}, {self.next_offset}))"


class _Upload(msgspec.Struct):
    """What an offload pass takes from a local segment, under the log's lock."""

    base_offset: int
    next_offset: int
    size: int
    max_timestamp: int
    offset_of_max_timestamp: int
    index: bytes
    timeindex: bytes
    pin: object  # PinnedFile of the .log: valid even if retention renames the file


class RemoteTier:
    def __init__(self, store: ObjectStore, reader: RemoteReader, topic: str, topic_id: str,
                 partition: int, *, decompressed_max: int, directory: str | None = None):
        """``directory``: the partition's local directory, where the remote bounds last
        committed are kept (``REMOTE_BOUNDS_FILE``), so a start while the store is down
        still knows what the remote tier holds."""
        self.directory = directory
        self.store = store
        self.reader = reader
        self.topic = topic
        self.topic_id = topic_id
        self.partition = partition
        self.decompressed_max = decompressed_max
        self.manifest: PartitionManifest | None = None  # None: not loaded (store down)
        self._write_lock = threading.Lock()  # one manifest change at a time
        self._waiting_logged = False  # local retention waits for offload (logged once)
        self.uploaded_segments = 0
        self.uploaded_bytes = 0
        self._known_bounds = self._read_bounds()  # (log start, end) as last committed, or None

    @property
    def name(self) -> str:
        return f"{self.topic}-{self.partition}"

    def _key(self, base_offset: int) -> str:
        return segment_key(self.topic, self.topic_id, self.partition, base_offset, "")

    # -------------------------------------------------------------------- the manifest
    def load(self) -> PartitionManifest:
        """Read the manifest from the store (an absent one is empty)."""
        key = manifest_key(self.topic, self.topic_id, self.partition)
        try:
            manifest = PartitionManifest.decode(self.store.get(key), f"{self.store.url}/{key}")
        except ObjectNotFoundError:
            manifest = PartitionManifest(self.topic, self.topic_id, self.partition)
        except CorruptMetadataError:
            log.error("%s: the remote manifest is corrupt; remote reads and offload stay off "
                      "for this partition until it is repaired", self.name)
            raise
        self.manifest = manifest
        return manifest

    def _commit(self, manifest: PartitionManifest) -> None:
        key = manifest_key(self.topic, self.topic_id, self.partition)
        self.store.put(key, manifest.encode())
        self.manifest = manifest
        self._write_bounds(manifest)

    def _bounds_path(self) -> str | None:
        return os.path.join(self.directory, REMOTE_BOUNDS_FILE) if self.directory else None

    def _read_bounds(self) -> tuple[int, int] | None:
        path = self._bounds_path()
        if path is None or not os.path.exists(path):
            return None
        try:
            body = metafile.read(path, REMOTE_BOUNDS_FILE)
            return int(body["log_start_offset"]), int(body["end_offset"])
        except (CorruptMetadataError, KeyError, TypeError, ValueError):
            return None  # the manifest, once loaded, is the truth anyway

    def _write_bounds(self, manifest: PartitionManifest) -> None:
        """A local note of what the remote tier holds (derived: a failure is only logged)."""
        path = self._bounds_path()
        if path is None:
            return
        start = manifest.log_start_offset if manifest.segments else manifest.end_offset
        try:
            metafile.write(path, REMOTE_BOUNDS_FILE,
                           {"log_start_offset": start, "end_offset": manifest.end_offset})
        except OSError as e:
            log.warning("%s: cannot write %s: %s", self.name, path, e.strerror or e)

    # ----------------------------------------------------------------- asked by the log
    @property
    def log_start_offset(self) -> int | None:
        """The remote log start, or None when the tier holds no segment. Before the
        manifest is loaded (the store was down at start), the bounds last committed."""
        m = self.manifest
        if m is None:
            known = self._known_bounds
            return known[0] if known is not None and known[0] < known[1] else None
        return m.log_start_offset if m.segments else None

    @property
    def highest_offset(self) -> int:
        """The last offset in the remote tier, or -1 (ListOffsets LATEST_TIERED, -5)."""
        m = self.manifest
        return m.end_offset - 1 if m is not None and m.segments else -1

    @property
    def offloaded_end(self) -> int:
        """Local data below this offset is in a durable manifest (-1: unknown)."""
        m = self.manifest
        return m.end_offset if m is not None else -1

    def local_retention(self, config: "LogConfig", segments, flushed: int,
                        now_ms: int) -> tuple["LogConfig", int]:
        """The config local retention applies (``local.retention.*`` in place of the total
        ones) and the offset below which it may delete; logs once (per state change) when
        local retention would delete a segment that is not offloaded yet."""
        local = msgspec.structs.replace(
            config,
            retention_ms=config.retention_ms if config.local_retention_ms == -2 else config.local_retention_ms,
            retention_bytes=(config.retention_bytes if config.local_retention_bytes == -2
                             else config.local_retention_bytes))
        offloaded = self.offloaded_end
        waiting = [s for s in segments[:-1] if s.next_offset > offloaded and s.next_offset <= flushed]
        if waiting and local.delete:
            first = waiting[0]
            kept = sum(s.size for s in segments[segments.index(first):])
            due = ((local.retention_ms >= 0 and now_ms - first.largest_timestamp() > local.retention_ms)
                   or (local.retention_bytes >= 0 and kept - first.size >= local.retention_bytes))
            if not due:
                waiting = []
        if waiting and not self._waiting_logged:
            log.warning("%s: local retention waits for %d segment(s) (%d bytes) to be offloaded "
                        "to %s; the disk may fill if the object store stays unavailable",
                        self.name, len(waiting), sum(s.size for s in waiting), self.store.url)
            self._waiting_logged = True
        elif not waiting and self._waiting_logged:
            log.info("%s: offload caught up with local retention", self.name)
            self._waiting_logged = False
        return local, offloaded

    def read(self, offset: int, max_bytes: int, max_offset: int | None) -> RemoteSlice | None:
        """Batches from the remote segment holding ``offset``; None when the remote tier
        does not hold it (the local log answers then)."""
        m = self.manifest
        if m is None and self.log_start_offset is not None:
            # Remote data exists, but the store has not answered since the start: a
            # retriable error, never "out of range" (a consumer would reset its offset).
            raise RemoteStorageError(f"{self.name}: the remote tier is not loaded yet "
                                     f"({self.store.url} unavailable)")
        if m is None or not m.segments or offset >= m.end_offset:
            return None
        if offset < m.log_start_offset:
            raise OffsetOutOfRangeError(offset, m.log_start_offset, m.end_offset)
        limit = m.end_offset if max_offset is None else min(max_offset, m.end_offset)
        segs = m.segments
        i = max(0, bisect.bisect_right([s.base_offset for s in segs], offset) - 1)
        for seg in segs[i:]:
            if seg.base_offset >= limit:
                break
            data, first, nxt, count = self.reader.read(self._key(seg.base_offset), seg, offset,
                                                       max_bytes, limit)
            if count:
                return RemoteSlice(data, first, nxt, count)
        return RemoteSlice(b"", offset, offset, 0)

    def offset_for_timestamp(self, timestamp_ms: int, below: int) -> tuple[int, int] | None:
        """The first record at or after ``timestamp_ms`` in the remote segments below offset
        ``below`` (the local log start: the local log answers from there)."""
        m = self.manifest
        if m is None:
            return None
        for seg in m.segments:
            if seg.base_offset >= below:
                break
            if seg.max_timestamp < timestamp_ms:
                continue
            found = self.reader.offset_for_timestamp(self._key(seg.base_offset), seg, timestamp_ms,
                                                     m.log_start_offset, self.decompressed_max)
            if found is not None:
                return found
        return None

    def aborted_transactions(self, fetch_offset: int, upper_bound_offset: int) -> list[tuple[int, int]]:
        """(producer id, first offset) of every aborted transaction overlapping
        ``[fetch_offset, upper_bound_offset)`` in the remote segments, from their uploaded
        ``.txnindex`` (read_committed Fetch of remote data). As Kafka: from the segment
        holding ``fetch_offset`` on, stopping at the first entry whose last stable offset
        reaches ``upper_bound_offset`` (every later abort began past the range)."""
        m = self.manifest
        if m is None:
            return []
        found = []
        i = max(0, bisect.bisect_right([s.base_offset for s in m.segments], fetch_offset) - 1)
        for seg in m.segments[i:]:
            if seg.base_offset >= upper_bound_offset:
                break
            for pid, first, last, lso in self.reader.aborted_transactions(
                    self._key(seg.base_offset), seg):
                if last >= fetch_offset and first < upper_bound_offset:
                    found.append((pid, first))
                if lso >= upper_bound_offset:
                    return found
        return found

    def max_timestamp(self, below: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record carrying the largest timestamp of the
        remote segments below offset ``below``, or None (ListOffsets MAX_TIMESTAMP)."""
        m = self.manifest
        if m is None:
            return None
        best = None
        for seg in m.segments:
            if seg.base_offset >= below:
                break
            if seg.max_timestamp >= 0 and (best is None or seg.max_timestamp > best.max_timestamp):
                best = seg
        if best is None:
            return None
        return self.reader.offset_for_timestamp(self._key(best.base_offset), best,
                                                best.max_timestamp, m.log_start_offset,
                                                self.decompressed_max)

    # -------------------------------------------------------------------------- offload
    def pending_segments(self, plog: "PartitionLog") -> int:
        """Closed, flushed local segments not offloaded yet (the offload lag)."""
        end = self.offloaded_end
        with plog._lock:
            flushed = plog.flushed_offset
            return sum(1 for s in plog.segments[:-1]
                       if s.base_offset >= end and s.next_offset <= flushed and not s.is_empty)

    def _take_uploads(self, plog: "PartitionLog", end: int, count_max: int) -> list[_Upload]:
        out = []
        with plog._lock:
            if plog._closed:
                return []
            flushed = plog.flushed_offset
            # With transactions the log also has a last stable offset: nothing at or past it
            # is offloaded (Kafka's rule: an undecided transaction may still be aborted).
            lso = getattr(plog, "last_stable_offset", None)
            if lso is not None:
                flushed = min(flushed, lso)
            for seg in plog.segments[:-1]:
                if len(out) >= count_max:
                    break
                if seg.base_offset < end or seg.is_empty:
                    continue
                if seg.next_offset > flushed:
                    break
                out.append(_Upload(seg.base_offset, seg.next_offset, seg.size, seg.max_timestamp,
                                   seg.offset_of_max_timestamp, seg.offset_index.file_bytes(),
                                   seg.time_index.file_bytes(), PinnedFile(seg.file)))
        return out

    def offload(self, plog: "PartitionLog", *, count_max: int = 64) -> int:
        """Upload the closed segments past the manifest's end (module docstring); returns
        how many were committed. Raises RemoteStorageError; what was committed stays."""
        with self._write_lock:
            if self.manifest is None:
                self.load()
            done = 0
            staged: list[RemoteSegment] = []
            end = self.manifest.end_offset
            while done + len(staged) < count_max:
                # A few segments pinned at a time: the open-file cache stays in bounds.
                uploads = self._take_uploads(plog, end, min(PINNED_MAX, count_max - done - len(staged)))
                if not uploads:
                    break
                try:
                    for up in uploads:
                        staged.append(self._upload(plog, up))
                        end = up.next_offset
                        if sum(s.size for s in staged) >= COMMIT_BYTES:
                            done += self._commit_segments(staged)
                            staged = []
                finally:
                    for up in uploads:
                        up.pin.unpin()
            return done + self._commit_segments(staged)

    def _commit_segments(self, staged: list[RemoteSegment]) -> int:
        """Put the manifest naming ``staged`` (the commit point); returns their count."""
        if not staged:
            return 0
        manifest = self.manifest
        for seg in staged:
            manifest = manifest.adding(seg)
        # one write, one generation
        manifest = msgspec.structs.replace(manifest, version=self.manifest.version + 1)
        self._commit(manifest)
        self.uploaded_segments += len(staged)
        self.uploaded_bytes += sum(s.size for s in staged)
        log.info("%s: offloaded %d segment(s) (%d bytes, offsets %d..%d), manifest v%d",
                 self.name, len(staged), sum(s.size for s in staged), staged[0].base_offset,
                 staged[-1].end_offset, manifest.version)
        return len(staged)

    def _upload(self, plog: "PartitionLog", up: _Upload) -> RemoteSegment:
        """Put one segment's objects (not visible to readers until a manifest names it)."""
        key = self._key(up.base_offset)
        config = plog.config
        files = [LOG]
        pin: PinnedFile = up.pin  # type: ignore[assignment]

        def chunks():
            pos = 0
            while pos < up.size:
                n = min(UPLOAD_READ_BYTES, up.size - pos)
                data = pin.pread(n, pos)
                if len(data) != n:
                    raise RemoteStorageError(f"{plog.name}: short read of segment "
                                             f"{segment_prefix(up.base_offset)}")
                yield data
                pos += n

        # durable=False: the manifest put that names them is the barrier (store.py)
        put = partial(self.store.put, durable=False)
        self.store.put_file(key + LOG, pin.fd, up.size, durable=False)
        put(key + INDEX, up.index)
        files.append(INDEX)
        put(key + TIMEINDEX, up.timeindex)
        files.append(TIMEINDEX)
        snap = snapshot_path(plog.directory, up.next_offset)
        txnindex = os.path.join(plog.directory, segment_prefix(up.base_offset) + TXNINDEX)
        for suffix, path in ((SNAPSHOT, snap), (TXNINDEX, txnindex)):
            data = _read_if_exists(path)
            if data is not None:
                put(key + suffix, data)
                files.append(suffix)
        if getattr(config, "remote_storage_parquet_enable", False):
            from .parquet import segment_to_parquet
            blob = b"".join(chunks())
            put(key + PARQUET, segment_to_parquet(
                iter_batches(blob), self.partition,
                json_columns=getattr(config, "remote_storage_parquet_json_columns", False),
                decompressed_max=self.decompressed_max))
            files.append(PARQUET)
        return RemoteSegment(up.base_offset, up.next_offset - 1, up.size, up.max_timestamp,
                             up.offset_of_max_timestamp, tuple(files))

    # ------------------------------------------------------------------------- deletion
    def delete_records_before(self, offset: int) -> None:
        """DeleteRecords: move the remote log start to ``offset`` (a no-op at or below it)."""
        with self._write_lock:
            if self.manifest is None:
                self.load()
            if offset > self.manifest.log_start_offset:
                # Even with no segment: a later upload must not start below this offset.
                self._drop_to(offset)

    def apply_retention(self, plog: "PartitionLog", now_ms: int) -> int:
        """Total retention over both tiers (module docstring); returns segments dropped."""
        config = plog.config
        with self._write_lock:
            m = self.manifest
            if m is None or not m.segments or not config.delete:
                return 0
            segs = m.segments
            k = 0
            if config.retention_ms >= 0:
                while (k < len(segs) and segs[k].max_timestamp >= 0
                       and now_ms - segs[k].max_timestamp > config.retention_ms):
                    k += 1
            if config.retention_bytes >= 0:
                local_start = plog.local_log_start_offset
                total = plog.size_bytes + sum(s.size for s in segs if s.next_offset <= local_start)
                for j in range(k):
                    if segs[j].next_offset <= local_start:
                        total -= segs[j].size
                while k < len(segs) and total > config.retention_bytes:
                    if segs[k].next_offset <= local_start:
                        total -= segs[k].size
                    k += 1
            if not k:
                return 0
            target = segs[k].base_offset if k < len(segs) else m.end_offset
            self._drop_to(target)
            return k

    def _drop_to(self, offset: int) -> None:
        manifest, dropped = self.manifest.starting_at(offset)
        self._commit(manifest)  # first: no manifest may name a deleted object
        keys = [self._key(s.base_offset) + suffix for s in dropped for suffix in s.files]
        for s in dropped:
            self.reader.forget(self._key(s.base_offset))
        if keys:
            self.store.delete(keys)
            log.info("%s: remote log start moved to %d; deleted %d remote segment(s)",
                     self.name, manifest.log_start_offset, len(dropped))

    def collect_garbage(self) -> int:
        """Delete objects a crash left unreferenced (manifest.garbage); returns how many."""
        with self._write_lock:
            if self.manifest is None:
                return 0
            prefix = partition_dir(self.topic, self.topic_id, self.partition)
            doomed = garbage(self.manifest, self.store.list(prefix))
            if doomed:
                self.store.delete(doomed)
                log.info("%s: deleted %d unreferenced remote object(s)", self.name, len(doomed))
            return len(doomed)


def _read_if_exists(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


__all__ = ["MANIFEST_KIND", "RemoteSlice", "RemoteTier"]

"""Helpers for the cleaner tests: writing keyed, idempotent and transactional batches into a
log, reading it back as a consumer would, and the oracle (the latest value per key)."""

from __future__ import annotations

import errno
import struct

from kafkito.records import build_batch
from kafkito.storage import FileIO, LogConfig, PartitionLog
from kafkito.storage.log import ORIGIN_COORDINATOR

from storage_testlib import read_all

ABORT, COMMIT = 0, 1

COMPACT = LogConfig(cleanup_policy=("compact",), segment_bytes=1024, index_interval_bytes=256,
                    delete_retention_ms=1000, file_delete_delay_ms=0,
                    min_cleanable_dirty_ratio=0.0)


def marker(producer_id: int, kind: int, ts: int, epoch: int = 0) -> bytes:
    """A transaction marker as the coordinator writes it: key (version, type), value
    (version, coordinator epoch)."""
    return build_batch([(struct.pack(">hh", 0, kind), struct.pack(">hi", 0, 0), [], ts)],
                       is_control=True, is_transactional=True, producer_id=producer_id,
                       producer_epoch=epoch, base_sequence=-1)


def append_marker(plog: PartitionLog, producer_id: int, kind: int, now_ms: int):
    return plog.append(marker(producer_id, kind, now_ms), now_ms, origin=ORIGIN_COORDINATOR)


def control_type(batch) -> int:
    rec = next(iter(batch.records()))
    return struct.unpack(">h", rec.key[2:4])[0]


def txn_fates(batches) -> dict[int, int | None]:
    """Base offset -> its producer's next marker type (None: no marker yet) for every
    transactional data batch of ``batches`` (a full read, in offset order)."""
    fates: dict[int, int | None] = {}
    waiting: dict[int, list[int]] = {}  # producer -> its batches since its last marker
    for b in batches:
        if not b.is_transactional:
            continue
        if not b.is_control:
            waiting.setdefault(b.producer_id, []).append(b.base_offset)
        elif b.records_count:
            kind = control_type(b)
            for base in waiting.pop(b.producer_id, []):
                fates[base] = kind
    for bases in waiting.values():
        fates.update(dict.fromkeys(bases))
    return fates


def consumed(plog: PartitionLog, start: int | None = None):
    """(batches, records) a read_committed consumer gets from a full read: aborted and still
    open transactions' records left out (decided by the markers in the log, as a client
    does with the aborted list), control batches skipped."""
    batches = read_all(plog, start)
    fates = txn_fates(batches)
    records = []
    for b in batches:
        if b.is_control:
            continue
        if b.is_transactional and fates[b.base_offset] != COMMIT:
            continue
        records.extend(b.records())
    return batches, records


def aborted_left(plog: PartitionLog, end: int) -> list[int]:
    """Base offsets of batches below ``end`` that still hold records of an aborted
    transaction (their producer's next marker in the log is an ABORT): a clean up to
    ``end`` removes those records, though a read_committed consumer would not see them."""
    batches = read_all(plog)
    fates = txn_fates(batches)
    return [b.base_offset for b in batches if b.base_offset < end and b.records_count
            and fates.get(b.base_offset, COMMIT) == ABORT]


def latest(records) -> dict[bytes, tuple[int, bytes | None]]:
    out: dict[bytes, tuple[int, bytes | None]] = {}
    for r in records:
        if r.key is not None and (r.key not in out or r.offset > out[r.key][0]):
            out[r.key] = (r.offset, r.value)
    return out


class SimulatedCrash(BaseException):
    """The process died here (BaseException: nothing on the way catches it)."""


class CrashingIO(FileIO):
    """Real file calls; the ``armed``-th state-changing call (write, rename, unlink, fsync,
    truncate) raises SimulatedCrash before it happens. ``calls`` counts them."""

    def __init__(self):
        self.armed: int | None = None
        self.calls = 0
        self.trace: list[str] = []

    def _step(self, what: str) -> None:
        self.calls += 1
        self.trace.append(what)
        if self.armed is not None and self.calls >= self.armed:
            self.armed = None
            raise SimulatedCrash(what)

    def pwritev(self, fd, buffers, offset):
        self._step("pwritev")
        return super().pwritev(fd, buffers, offset)

    def rename(self, src, dst):
        self._step(f"rename {src.rsplit('/', 1)[-1]} -> {dst.rsplit('/', 1)[-1]}")
        return super().rename(src, dst)

    def unlink(self, path):
        self._step(f"unlink {path.rsplit('/', 1)[-1]}")
        return super().unlink(path)

    def fsync(self, fd):
        self._step("fsync")
        return super().fsync(fd)

    def fsync_dir(self, path):
        self._step("fsync_dir")
        return super().fsync_dir(path)

    def ftruncate(self, fd, size):
        self._step("ftruncate")
        return super().ftruncate(fd, size)


class FailingRenameIO(FileIO):
    """Every rename whose target ends with ``suffix`` fails (EIO)."""

    def __init__(self, suffix: str):
        self.suffix = suffix

    def rename(self, src, dst):
        if dst.endswith(self.suffix):
            raise OSError(errno.EIO, "injected rename failure")
        return super().rename(src, dst)

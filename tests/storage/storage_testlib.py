"""Helpers shared by the storage tests (imported as a plain module via conftest's sys.path)."""

from __future__ import annotations

import hashlib
import os

from kafkito.records import build_batch, iter_batches
from kafkito.storage import LogConfig, PartitionLog

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def payload(tag: int, n: int = 3, size: int = 40, ts: int = 1_700_000_000_000,
            compression: str = "none", key: bool = True) -> bytes:
    """A deterministic client batch (base offset 0) identified by ``tag``."""
    recs = []
    for i in range(n):
        body = hashlib.sha256(f"{tag}/{i}".encode()).digest()
        value = (body * (size // 32 + 1))[:size]
        recs.append((f"k{tag}-{i}".encode() if key else None, value, [("tag", str(tag).encode())], ts + i))
    return build_batch(recs, compression=compression)


def content(batch) -> tuple:
    """What a batch means, independent of the offsets the log stamped."""
    return tuple((r.key, r.value, tuple(r.headers), r.timestamp) for r in batch.records())


def read_all(plog: PartitionLog, start: int | None = None, max_bytes: int = 1 << 20,
             max_offset: int | None = None) -> list:
    """Every batch from ``start`` through repeated reads, as the broker's fetch loop does."""
    offset = plog.log_start_offset if start is None else start
    out = []
    while True:
        s = plog.read(offset, max_bytes, max_offset)
        if s.size == 0:
            return out
        batches = list(iter_batches(s.tobytes()))
        assert batches and batches[0].base_offset == s.first_offset
        assert sum(b.size_bytes for b in batches) == s.size
        for b in batches:
            assert b.is_valid(), b
        out.extend(batches)
        offset = s.next_offset


def open_log(path, clock, config: LogConfig | None = None, **kw) -> PartitionLog:
    return PartitionLog.open(str(path), "t", 0, config or LogConfig(), clock=clock, **kw)


def crash(plog: PartitionLog) -> None:
    """Drop a log as a killed process would: fds closed by the kernel, nothing else done
    (no flush, no sealing, no removal of .deleted files)."""
    for seg in list(plog.segments) + [s for _due, s in plog._pending_deletes]:
        seg.close()
    plog._closed = True


def sendfile_bytes(s) -> bytes:
    """What ``os.sendfile`` of a FileSlice puts on the wire (through a pipe)."""
    r, w = os.pipe()
    try:
        assert os.sendfile(w, s.fileno(), s.position, s.size) == s.size
        return os.read(r, 1 << 20)
    finally:
        os.close(r)
        os.close(w)

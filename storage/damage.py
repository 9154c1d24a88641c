"""Damaged batches: how to tell one, where the next good batch starts, how to describe it.

Theory of operation. A segment file is a plain run of record batches, so one damaged batch
(a flipped bit in an old file, a block the disk gave back as zeros, a file cut short) would
hide everything after it from a reader that only follows ``batchLength``. Kafka's answer on
recovery is to truncate; ours is to *isolate*: the damaged bytes are cut out, and reading
*resyncs* at the next position that holds a batch which is whole by every check we have:

- its header is sane (magic 2, a length that fits the segment, offsets above the last good
  batch's and inside the segment's int32 relative range and below the next segment, a leader
  epoch we could have stamped), and
- its CRC-32C matches.

The damaged batch's own ``batchLength`` is tried first (damage in the body leaves it
intact); otherwise every later position whose magic byte is 2 is a candidate, found with
``bytes.find`` so long runs of zeros cost C speed, not Python speed. A random candidate
passes the offset checks and a 32-bit CRC essentially never, so resync does not invent
batches. The same checks serve recovery (segment.py), lazy verification on read (segment
``VerifyingScan``) and ``kafkito verify`` (verify.py).

``ByteRanges`` is the per-segment record of what this process has *not* CRC-checked yet; it
is a list of at most a handful of intervals (normally none).
"""

from __future__ import annotations

from dataclasses import dataclass

from crc32c import crc32c

from kafkito.records.batch import (
    ATTRIBUTES_AT,
    BATCH_LENGTH_MIN,
    HEADER,
    HEADER_BYTES,
    LOG_OVERHEAD,
    MAGIC,
)

from .fileio import FileIO

REL_OFFSET_MAX = 2**31 - 1
MAGIC_AT = 16
RESYNC_CHUNK_BYTES = 1 << 20
QUARANTINE_SUFFIX = ".quarantine"


@dataclass
class DamagedRange:
    """Bytes of one segment that held no valid batch, and what they may have held."""

    segment: int  # the segment's base offset
    position: int  # first damaged byte
    size: int  # damaged bytes (cut out, skipped on read, or reported by verify)
    reason: str
    first_offset: int  # the first offset that may have been lost (last good + 1)
    last_offset: int | None  # the last one (the next good batch's base - 1), when known
    quarantine: str | None = None  # where the bytes were moved, if they were

    def describe(self) -> str:
        last = "?" if self.last_offset is None else str(self.last_offset)
        where = f"; bytes moved to {self.quarantine}" if self.quarantine else ""
        return (f"segment {self.segment:020d} position {self.position}: {self.reason}; "
                f"{self.size} bytes, offsets {self.first_offset}..{last}{where}")


@dataclass(frozen=True)
class BatchBounds:
    """What a batch at some position must satisfy beyond its own CRC."""

    base_offset: int  # the segment's base offset
    after_offset: int  # offsets must be above this (the last good batch's last offset)
    offset_limit: int | None  # offsets must be below this (the next segment's base)
    epoch_max: int  # the largest partition leader epoch we ever stamped


def header_problem(fields: tuple, position: int, end: int, bounds: BatchBounds) -> str | None:
    """Why a batch with header ``fields`` at ``position`` cannot be valid (None: plausible)."""
    base, batch_length, epoch, magic = fields[0], fields[1], fields[2], fields[3]
    last_delta = fields[6]
    if magic != MAGIC:
        return f"bad magic {magic}"
    if batch_length < BATCH_LENGTH_MIN or position + batch_length + LOG_OVERHEAD > end:
        return f"batch length {batch_length} overruns the segment"
    last = base + last_delta
    if (last_delta < 0 or base <= bounds.after_offset
            or last - bounds.base_offset > REL_OFFSET_MAX
            or (bounds.offset_limit is not None and last >= bounds.offset_limit)):
        return f"offsets [{base}, {last}] out of order after {bounds.after_offset}"
    if not -1 <= epoch <= bounds.epoch_max:
        return f"impossible partition leader epoch {epoch}"
    return None


def crc_ok(batch: bytes | memoryview, fields: tuple) -> bool:
    return crc32c(memoryview(batch)[ATTRIBUTES_AT:]) == fields[4]


def find_next_batch(io: FileIO, fd: int, damaged_at: int, end: int, bounds: BatchBounds,
                    declared_end: int | None = None) -> tuple[int, tuple] | None:
    """Resync: (position, header fields) of the first whole, valid batch after
    ``damaged_at`` (and below ``end``), or None. ``declared_end`` (the damaged batch's own
    length, when its header parsed) is tried first."""
    if declared_end is not None and damaged_at < declared_end:
        fields = _valid_at(io, fd, declared_end, end, bounds)
        if fields is not None:
            return declared_end, fields
    pos = damaged_at + 1
    while pos + HEADER_BYTES <= end:
        chunk = io.pread(fd, min(RESYNC_CHUNK_BYTES, end - pos), pos)
        if len(chunk) < HEADER_BYTES:
            return None
        i = 0
        while True:
            hit = chunk.find(b"\x02", i + MAGIC_AT, len(chunk) - HEADER_BYTES + MAGIC_AT + 1)
            if hit < 0:
                break
            candidate = hit - MAGIC_AT
            fields = HEADER.unpack_from(chunk, candidate)
            at = pos + candidate
            if header_problem(fields, at, end, bounds) is None and _crc_at(io, fd, at, fields, chunk, candidate):
                return at, fields
            i = candidate + 1
        # Candidates need a whole header inside the chunk: overlap the next chunk by one.
        pos += len(chunk) - HEADER_BYTES + 1
    return None


def _valid_at(io: FileIO, fd: int, at: int, end: int, bounds: BatchBounds) -> tuple | None:
    if at + HEADER_BYTES > end:
        return None
    head = io.pread(fd, HEADER_BYTES, at)
    if len(head) < HEADER_BYTES:
        return None
    fields = HEADER.unpack_from(head, 0)
    if header_problem(fields, at, end, bounds) is None and _crc_at(io, fd, at, fields, head, 0):
        return fields
    return None


def declared_end(io: FileIO, fd: int, position: int, end: int) -> int | None:
    """Where the batch at ``position`` says it ends, if its length field is plausible."""
    head = io.pread(fd, HEADER_BYTES, position)
    if len(head) < HEADER_BYTES:
        return None
    batch_length = HEADER.unpack_from(head, 0)[1]
    if batch_length < BATCH_LENGTH_MIN or position + batch_length + LOG_OVERHEAD > end:
        return None
    return position + batch_length + LOG_OVERHEAD


def _crc_at(io: FileIO, fd: int, at: int, fields: tuple, buf: bytes, offset: int) -> bool:
    size = fields[1] + LOG_OVERHEAD
    if offset + size <= len(buf):
        return crc_ok(memoryview(buf)[offset : offset + size], fields)
    batch = io.pread(fd, size, at)
    return len(batch) == size and crc_ok(batch, fields)


def quarantine_name(base_offset: int, position: int) -> str:
    return f"{base_offset:020d}.{position}{QUARANTINE_SUFFIX}"


class ByteRanges:
    """Disjoint, sorted [start, end) byte ranges (the bytes not yet CRC-checked)."""

    __slots__ = ("ranges",)

    def __init__(self, ranges: list[tuple[int, int]] | None = None):
        self.ranges = [r for r in (ranges or []) if r[0] < r[1]]

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def overlaps(self, start: int, end: int) -> bool:
        for a, b in self.ranges:
            if a < end and start < b:
                return True
        return False

    def remove(self, start: int, end: int) -> None:
        out = []
        for a, b in self.ranges:
            if b <= start or end <= a:
                out.append((a, b))
                continue
            if a < start:
                out.append((a, start))
            if end < b:
                out.append((end, b))
        self.ranges = out  # one assignment: readers in other threads see old or new

    def clip(self, end: int) -> None:
        self.remove(end, 1 << 62)

    def __repr__(self) -> str:
        return f"ByteRanges({self.ranges})"

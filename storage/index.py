"""Sparse segment indexes in Kafka's byte layout: ``.index`` and ``.timeindex``.

``.index`` (OffsetIndex): 8-byte big-endian entries ``(relative offset int32, position
int32)``. An entry ``(o, p)`` says the batch starting at byte ``p`` ends at offset
``base + o``; a lookup for offset ``t`` takes the largest entry with offset <= t and scans
forward from its position, which is safe because every batch before ``p`` ends below ``o``.

``.timeindex`` (TimeIndex): 12-byte entries ``(timestamp int64, relative offset int32)``:
the largest timestamp seen so far in the segment and the offset of the batch carrying it.
Entries strictly increase in timestamp, so a lookup for ``ts`` takes the last entry with a
timestamp < ts: no record at or before its offset can be >= ts.

Entries are added every ``index.interval.bytes`` of log (the same rule at append and at
recovery, so a rebuilt index equals the original). Kafka preallocates both files to
``segment.index.bytes`` and trims them on close; we never preallocate, so the files always
hold exactly the entries (what Kafka leaves after a clean close). ``segment.index.bytes``
still bounds the entry count: a full index rolls the segment.

The entries are mirrored in memory (compact ``array`` columns) for lookups; the files are
only appended to, and rewritten whole (temp file, rename) when recovery rebuilds them.
Indexes are derived data: any doubt and they are rebuilt from the log.
"""

from __future__ import annotations

import os
import struct
import sys
from array import array
from bisect import bisect_left, bisect_right

from .fileio import FileIO
from .handles import OpenFiles

_OFFSET_ENTRY = struct.Struct(">ii")
_TIME_ENTRY = struct.Struct(">qi")


class _Index:
    ENTRY_BYTES = 0

    def __init__(self, path: str, base_offset: int, entries_max: int, io: FileIO,
                 files: OpenFiles):
        self.path = path
        self.base_offset = base_offset
        self.entries_max = max(1, entries_max)
        self.io = io
        # Opened on demand through the open-file cache; O_CREAT as before: the file is
        # created with its segment and may be re-created empty only if someone removed it.
        self.file = files.handle(io, path, os.O_RDWR | os.O_CREAT)
        self.dirty = False  # written since the last fsync

    # -- file handling ------------------------------------------------------------------
    def create_file(self) -> None:
        self.file.open_now()

    def _write_entry(self, raw: bytes) -> None:
        self.file.pwritev([raw], len(self) * self.ENTRY_BYTES)
        self.dirty = True

    def fsync(self) -> None:
        if self.dirty:
            self.dirty = False
            try:
                self.file.fdatasync()  # the size is data here; mtime is not worth a sync
            except OSError:
                self.dirty = True
                raise

    def close(self) -> None:
        """Close the descriptor; a later write reopens the file (an index taken offline and
        written again, a rewrite). Only the .log handle has readers that outlive a close."""
        self.file.release(sync=False)

    def release(self) -> None:
        """Close the descriptor until the next write needs it (entries are read from memory)."""
        self.file.release()

    def renamed(self, path: str) -> None:
        self.file.renamed(path)

    def truncate_entries(self, n: int) -> None:
        if n >= len(self):
            return
        self._drop_from(n)
        self.file.ftruncate(n * self.ENTRY_BYTES)
        self.dirty = True

    def file_bytes(self) -> bytes:
        raise NotImplementedError

    def rewrite(self) -> None:
        """Replace the file with the in-memory entries (temp file + rename)."""
        self.file.release()
        tmp = self.path + ".rebuild"
        fd = self.io.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            self.io.pwritev(fd, [self.file_bytes()], 0)
            self.io.fsync(fd)
        finally:
            self.io.close(fd)
        self.io.rename(tmp, self.path)
        self.dirty = False

    def read_file(self) -> bytes | None:
        try:
            with open(self.path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    @property
    def is_full(self) -> bool:
        return len(self) >= self.entries_max

    def __len__(self) -> int:
        raise NotImplementedError

    def _drop_from(self, n: int) -> None:
        raise NotImplementedError


def _be_int32_columns(raw: bytes, width: int) -> list[array]:
    """Split big-endian int32 records of ``width`` columns into arrays."""
    arr = array("i")
    arr.frombytes(raw)
    if sys.byteorder == "little":
        arr.byteswap()
    return [arr[i::width] for i in range(width)]


def _strictly_increasing(column: array) -> bool:
    return all(a < b for a, b in zip(column, column[1:]))


class OffsetIndex(_Index):
    ENTRY_BYTES = 8

    def __init__(self, path: str, base_offset: int, entries_max: int, io: FileIO,
                 files: OpenFiles):
        super().__init__(path, base_offset, entries_max, io, files)
        self.rel_offsets = array("i")
        self.positions = array("i")

    def __len__(self) -> int:
        return len(self.rel_offsets)

    def load(self, raw: bytes) -> bool:
        """Take entries from file bytes; False when they are not a consistent index."""
        if len(raw) % self.ENTRY_BYTES:
            return False
        rel, pos = _be_int32_columns(raw, 2)
        if len(rel) and (rel[0] < 0 or pos[0] < 0):
            return False
        if not (_strictly_increasing(rel) and _strictly_increasing(pos)):
            return False
        self.rel_offsets, self.positions = rel, pos
        return True

    def clear(self) -> None:
        self.rel_offsets = array("i")
        self.positions = array("i")

    def append(self, offset: int, position: int) -> None:
        rel = offset - self.base_offset
        self._write_entry(_OFFSET_ENTRY.pack(rel, position))
        self.rel_offsets.append(rel)
        self.positions.append(position)

    def add_in_memory(self, offset: int, position: int) -> None:
        self.rel_offsets.append(offset - self.base_offset)
        self.positions.append(position)

    def lookup(self, offset: int) -> tuple[int, int]:
        """Largest entry with offset <= ``offset`` as (absolute offset, position), or
        (base_offset, 0) when there is none."""
        i = bisect_right(self.rel_offsets, offset - self.base_offset) - 1
        if i < 0:
            return self.base_offset, 0
        return self.base_offset + self.rel_offsets[i], self.positions[i]

    def last_entry(self) -> tuple[int, int] | None:
        if not self.rel_offsets:
            return None
        return self.base_offset + self.rel_offsets[-1], self.positions[-1]

    def entries_below_position(self, position: int) -> int:
        return bisect_left(self.positions, position)

    def _drop_from(self, n: int) -> None:
        del self.rel_offsets[n:]
        del self.positions[n:]

    def file_bytes(self) -> bytes:
        return b"".join(_OFFSET_ENTRY.pack(r, p) for r, p in zip(self.rel_offsets, self.positions))


class TimeIndex(_Index):
    ENTRY_BYTES = 12

    def __init__(self, path: str, base_offset: int, entries_max: int, io: FileIO,
                 files: OpenFiles):
        super().__init__(path, base_offset, entries_max, io, files)
        self.timestamps = array("q")
        self.rel_offsets = array("i")

    def __len__(self) -> int:
        return len(self.timestamps)

    def load(self, raw: bytes) -> bool:
        if len(raw) % self.ENTRY_BYTES:
            return False
        n = len(raw) // self.ENTRY_BYTES
        flat = struct.unpack(">" + "qi" * n, raw)  # one C call, then two column slices
        ts = array("q", flat[0::2])
        rel = array("i", flat[1::2])
        if n and (ts[0] < 0 or rel[0] < 0):
            return False
        if not _strictly_increasing(ts) or not all(a <= b for a, b in zip(rel, rel[1:])):
            return False
        self.timestamps, self.rel_offsets = ts, rel
        return True

    def clear(self) -> None:
        self.timestamps = array("q")
        self.rel_offsets = array("i")

    def last_entry(self) -> tuple[int, int] | None:
        if not self.timestamps:
            return None
        return self.timestamps[-1], self.base_offset + self.rel_offsets[-1]

    def _accepts(self, timestamp: int) -> bool:
        return timestamp >= 0 and (not self.timestamps or timestamp > self.timestamps[-1])

    def maybe_append(self, timestamp: int, offset: int) -> None:
        """Add (timestamp, offset) when the timestamp is larger than the last entry's."""
        if self._accepts(timestamp):
            rel = offset - self.base_offset
            self._write_entry(_TIME_ENTRY.pack(timestamp, rel))
            self.timestamps.append(timestamp)
            self.rel_offsets.append(rel)

    def maybe_add_in_memory(self, timestamp: int, offset: int) -> None:
        if self._accepts(timestamp):
            self.timestamps.append(timestamp)
            self.rel_offsets.append(offset - self.base_offset)

    def lookup_below(self, timestamp: int) -> int | None:
        """Offset of the last entry whose timestamp is < ``timestamp`` (None if none)."""
        i = bisect_left(self.timestamps, timestamp) - 1
        if i < 0:
            return None
        return self.base_offset + self.rel_offsets[i]

    def entries_below_offset(self, offset: int) -> int:
        return bisect_left(self.rel_offsets, offset - self.base_offset)

    def _drop_from(self, n: int) -> None:
        del self.timestamps[n:]
        del self.rel_offsets[n:]

    def file_bytes(self) -> bytes:
        return b"".join(_TIME_ENTRY.pack(t, r) for t, r in zip(self.timestamps, self.rel_offsets))

"""The aborted-transaction index: Kafka's ``.txnindex``, one per segment that has any.

Theory of operation. When an ABORT marker lands in a segment, that segment's index gets one
34-byte entry (Kafka's ``AbortedTxn`` layout, big-endian)::

    version int16 (0) | producerId int64 | firstOffset int64 | lastOffset int64 | lastStableOffset int64

``firstOffset`` is the transaction's first offset in this partition, ``lastOffset`` the
marker's offset, ``lastStableOffset`` the partition's LSO just after the abort (the first
offset of the earliest *other* transaction still open, or the marker's offset + 1). A
read_committed fetch of ``[fetch, upper)`` must name every aborted transaction overlapping
it (``lastOffset >= fetch`` and ``firstOffset < upper``); since an entry's marker lies in
its own segment, the search starts at the segment holding ``fetch`` and walks forward, and
stops at the first entry whose ``lastStableOffset >= upper``: any transaction aborted after
it began at or past that LSO, so past the range (``TxnIndexes.collect``).

Like ``.index`` and ``.timeindex`` the file is derived from the log: entries are kept in
memory and written when appended (a failed write is retried at the next flush, and recovery
rebuilds a missing or damaged file from the markers in the log, log.py *Transactions*). It
is created only for a segment that has an abort, as Kafka does.
"""

from __future__ import annotations

import bisect
import logging
import os
import re
import struct
import threading
from typing import Iterable, NamedTuple

from .fileio import FileIO

log = logging.getLogger("kafkito.storage.txn_index")

TXN_INDEX_SUFFIX = ".txnindex"
ENTRY = struct.Struct(">hqqqq")
ENTRY_BYTES = ENTRY.size  # 34
assert ENTRY_BYTES == 34
ENTRY_VERSION = 0
_TXN_INDEX_FILE = re.compile(r"^(\d{20})\.txnindex$")


class AbortedTxn(NamedTuple):
    producer_id: int
    first_offset: int
    last_offset: int  # the ABORT marker's offset
    last_stable_offset: int


def txn_index_path(directory: str, base_offset: int) -> str:
    return os.path.join(directory, f"{base_offset:020d}{TXN_INDEX_SUFFIX}")


def encode_entries(entries: Iterable[AbortedTxn]) -> bytes:
    return b"".join(ENTRY.pack(ENTRY_VERSION, *e) for e in entries)


def decode_entries(data: bytes) -> tuple[list[AbortedTxn], str | None]:
    """Entries of a file's bytes, and the problem that stopped the decode (None: all good).
    A torn tail or an entry of an unknown version ends the readable part."""
    entries = []
    usable = len(data) - len(data) % ENTRY_BYTES
    for pos in range(0, usable, ENTRY_BYTES):
        version, pid, first, last, lso = ENTRY.unpack_from(data, pos)
        if version != ENTRY_VERSION:
            return entries, f"entry {pos // ENTRY_BYTES} has version {version}"
        if not first <= last:
            return entries, f"entry {pos // ENTRY_BYTES} has impossible offsets"
        entries.append(AbortedTxn(pid, first, last, lso))
    if usable != len(data):
        return entries, f"{len(data) - usable} trailing bytes (a torn entry)"
    return entries, None


class TransactionIndex:
    """One segment's ``.txnindex``: the entries in memory, the file behind them."""

    def __init__(self, directory: str, base_offset: int, io: FileIO,
                 entries: list[AbortedTxn] | None = None, written: int = 0):
        self.base_offset = base_offset
        self.path = txn_index_path(directory, base_offset)
        self.io = io
        self.entries: list[AbortedTxn] = entries or []
        self._written = written  # entries known to be in the file
        self._rewrite = False  # the file must be written again from scratch
        self._synced = True
        self._deleted = False
        self._lock = threading.Lock()  # a flush thread's write vs retention's delete

    def append(self, entry: AbortedTxn) -> bool:
        """Remember and write one entry (not fsynced: ``sync`` does that). Returns whether
        the file was created. A failed write is logged and retried by ``sync``: the entry
        is derived data, it never fails the marker's append."""
        with self._lock:
            self.entries.append(entry)
            created = not self.io.exists(self.path)
            self._synced = False
            if self._rewrite:
                return created
            try:
                fd = self.io.open(self.path, os.O_WRONLY | os.O_CREAT)
                try:
                    self.io.pwritev(fd, [ENTRY.pack(ENTRY_VERSION, *entry)],
                                    self._written * ENTRY_BYTES)
                finally:
                    self.io.close(fd)
                self._written += 1
            except OSError as e:
                self._rewrite = True
                log.warning("%s: cannot write an aborted-transaction entry (%s); retrying at "
                            "the next flush", self.path, e.strerror or e)
        return created

    def truncate_from(self, offset: int) -> None:
        """Forget entries whose marker is at or past ``offset`` (recovery cut the log there
        or replays it from there)."""
        with self._lock:
            keep = [e for e in self.entries if e.last_offset < offset]
            if len(keep) == len(self.entries) and self._written == len(keep):
                return
            self.entries = keep
            self._rewrite = True
            self._synced = False

    def sync(self) -> None:
        """Make the file hold exactly the entries, durably (derived data: a failure is
        logged and left to the next flush or to recovery)."""
        with self._lock:
            if self._deleted or self._synced:
                return
            try:
                if not self.entries and self._rewrite:
                    if self.io.exists(self.path):
                        self.io.unlink(self.path)
                else:
                    fd = self.io.open(self.path, os.O_WRONLY | os.O_CREAT)
                    try:
                        if self._rewrite:
                            data = encode_entries(self.entries)
                            self.io.pwritev(fd, [data], 0)
                            self.io.ftruncate(fd, len(data))
                            self._written = len(self.entries)
                            self._rewrite = False
                        self.io.fsync(fd)
                    finally:
                        self.io.close(fd)
                self._rewrite = False
                self._synced = True
            except OSError as e:
                self._rewrite = True
                log.warning("%s: cannot write the aborted-transaction index (%s); recovery "
                            "rebuilds it if needed", self.path, e.strerror or e)

    def mark_for_rewrite(self) -> None:
        """The file does not hold ``entries`` exactly: the next ``sync`` writes it again."""
        self._rewrite = True
        self._synced = False

    @property
    def dirty(self) -> bool:
        return not self._synced

    def delete(self) -> None:
        """Remove the file (its segment is gone: retention or recovery)."""
        with self._lock:
            self._deleted = True
            try:
                self.io.unlink(self.path)
            except FileNotFoundError:
                pass
            except OSError as e:
                log.warning("%s: cannot remove: %s", self.path, e.strerror or e)


class TxnIndexes:
    """Every segment's aborted-transaction index of one partition, by segment base offset."""

    def __init__(self, directory: str, io: FileIO) -> None:
        self.directory = directory
        self.io = io
        self._by_base: dict[int, TransactionIndex] = {}
        self._bases: list[int] = []  # sorted keys of _by_base

    # -- open ------------------------------------------------------------------------------
    def load(self, segment_bases: list[int]) -> dict[int, str]:
        """Read the files of ``segment_bases``; remove those of segments that do not exist.
        Returns base -> problem for files that are damaged (their readable part is kept)."""
        problems: dict[int, str] = {}
        wanted = set(segment_bases)
        for name in sorted(self.io.listdir(self.directory)):
            m = _TXN_INDEX_FILE.match(name)
            if not m:
                continue
            base = int(m.group(1))
            path = os.path.join(self.directory, name)
            if base not in wanted:  # derived data of a segment that is gone
                self.io.unlink(path)
                continue
            fd = self.io.open(path, os.O_RDONLY)
            try:
                data = self.io.pread(fd, self.io.fstat_size(fd), 0)
            finally:
                self.io.close(fd)
            entries, problem = decode_entries(data)
            index = TransactionIndex(self.directory, base, self.io, entries, len(entries))
            if problem is not None:
                problems[base] = problem
                index.mark_for_rewrite()
            self._put(index)
        return problems

    def _put(self, index: TransactionIndex) -> None:
        # The dict first: a flush thread walking _bases must find every base it sees.
        known = index.base_offset in self._by_base
        self._by_base[index.base_offset] = index
        if not known:
            bisect.insort(self._bases, index.base_offset)

    # -- changes ---------------------------------------------------------------------------
    def append(self, segment_base: int, entry: AbortedTxn) -> bool:
        """Add the entry of an abort whose marker is in the segment at ``segment_base``;
        returns whether a new file was created (the directory then needs an fsync)."""
        index = self._by_base.get(segment_base)
        if index is None:
            index = TransactionIndex(self.directory, segment_base, self.io)
            self._put(index)
        return index.append(entry)

    def truncate_from(self, offset: int) -> None:
        for base in self._bases:
            self._by_base[base].truncate_from(offset)

    def drop_below(self, segment_base: int) -> None:
        """Retention deleted every segment below ``segment_base``: their indexes go too."""
        while self._bases and self._bases[0] < segment_base:
            base = self._bases.pop(0)
            self._by_base.pop(base).delete()

    def drop(self, segment_base: int) -> None:
        index = self._by_base.pop(segment_base, None)
        if index is not None:
            self._bases.remove(segment_base)
            index.delete()

    def replace(self, old_bases: list[int], new_base: int) -> None:
        """Segments at ``old_bases`` were replaced by one at ``new_base`` (a compaction's
        swap): their entries move to its index, in marker order, written now (the swap
        is durable already; a crash in between is caught by the snapshots' counts). The
        entries stay facts about the log (a cleaned-away aborted batch is simply not read
        any more), so none is dropped here."""
        moved = []
        for base in sorted(old_bases):
            index = self._by_base.get(base)
            if index is not None:
                moved.extend(index.entries)
                self.drop(base)
        if not moved and new_base not in self._by_base:
            return
        index = self._by_base.get(new_base) or TransactionIndex(self.directory, new_base, self.io)
        index.entries = sorted(index.entries + moved, key=lambda e: e.last_offset)
        index.mark_for_rewrite()
        self._put(index)
        index.sync()

    def dirty(self) -> list[TransactionIndex]:
        return [self._by_base[b] for b in self._bases if self._by_base[b].dirty]

    def sync(self, indexes: list[TransactionIndex] | None = None) -> None:
        for index in self.dirty() if indexes is None else indexes:
            index.sync()

    # -- queries ---------------------------------------------------------------------------
    def collect(self, fetch_offset: int, upper_bound_offset: int,
                start_segment_base: int) -> list[AbortedTxn]:
        """Aborted transactions overlapping ``[fetch_offset, upper_bound_offset)``, searched
        from the segment at ``start_segment_base`` (the one holding ``fetch_offset``)."""
        found = []
        for base in self._bases[bisect.bisect_left(self._bases, start_segment_base):]:
            entries = self._by_base[base].entries
            # Entries are in marker order: those whose marker is below fetch_offset cannot
            # overlap, nor can any abort after one whose LSO reached the upper bound (it
            # began at or past that LSO), so skipping the former is safe.
            first = bisect.bisect_left(entries, fetch_offset, key=lambda e: e.last_offset)
            for e in entries[first:]:
                if e.first_offset < upper_bound_offset:
                    found.append(e)
                if e.last_stable_offset >= upper_bound_offset:
                    return found
        return found

    def counts_below(self, offset: int) -> dict[str, int]:
        """Per segment base, how many entries have their marker below ``offset``: what a
        producer snapshot at ``offset`` records so that recovery can tell a lost file."""
        counts = {}
        for base in self._bases:
            if base >= offset:
                break
            n = sum(1 for e in self._by_base[base].entries if e.last_offset < offset)
            if n:
                counts[str(base)] = n
        return counts

    def first_mismatch(self, counts: dict[int, int], segment_bases: list[int],
                       offset: int) -> int | None:
        """The first segment below ``offset`` whose index does not hold the entries a
        snapshot at ``offset`` counted (``counts_below`` then): its file was lost or cut.
        None when every one agrees."""
        for base in segment_bases:
            if base >= offset:
                break
            index = self._by_base.get(base)
            have = 0 if index is None else sum(1 for e in index.entries if e.last_offset < offset)
            if have != counts.get(base, 0):
                return base
        return None

    def count_in(self, segment_base: int) -> int:
        index = self._by_base.get(segment_base)
        return 0 if index is None else len(index.entries)

    def entries(self) -> list[AbortedTxn]:
        return [e for b in self._bases for e in self._by_base[b].entries]

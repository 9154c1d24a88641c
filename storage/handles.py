"""Open-file cache: segment and index files are opened on demand, behind an LRU with a limit.

Theory of operation
-------------------
Kafka keeps a descriptor open for every segment file of every partition, so its partition
count is bounded by ``ulimit -n`` (operators raise it to 100,000+). kafkito instead gives each
file a ``FileHandle`` that knows its path and opens it when an operation needs it; the
``OpenFiles`` cache keeps at most ``log.open.files.max`` handles open and closes the least
recently used one when a new one has to open. The partition count is then bounded by disk.

Three rules keep this safe:

1. *A descriptor in use is pinned.* Every operation pins its handle for the syscall's
   duration (``pin``/``unpin``), and a ``FileSlice`` handed to the broker for
   ``sendfile`` pins it for the slice's whole life. The cache never closes a pinned handle,
   so a descriptor number can never be closed and reused under a reader: a slice always reads
   the file it was cut from, even if its segment is deleted or closed meanwhile (the close is
   then done by the last unpin). Pinned handles still count against the limit; when they
   alone exceed it the cache goes over for as long as they stay pinned (bounded by the sends
   in flight) and trims back as they are released.
2. *A descriptor with writes not yet synced is synced before it is closed.* fsync reports a
   writeback error only through a descriptor that was open when it happened, so closing a
   dirty descriptor could lose an I/O error and let a later fsync on a fresh descriptor
   "succeed". Eviction prefers clean handles; when only dirty ones are left it fdatasyncs
   the oldest first. Should that fsync fail, the error is kept on the handle and raised by
   its next ``fdatasync``, so the log goes offline exactly as if it had failed there.
3. *Every OS call goes through the handle's ``FileIO``*, so fault injection keeps working:
   the reopen after an eviction is an ``io.open`` a test can fail.

When ``open`` itself fails with EMFILE/ENFILE (descriptors used elsewhere: sockets), the
cache closes half of its unpinned handles and tries once more before giving up.

The cache lock is held across the open/close syscalls (microseconds); the rare
sync-before-close in rule 2 is the only slow call made under it. A slice that is dropped
without ``close()`` unpins from its finalizer, which never waits for the lock (it may run
inside a locked section, from a garbage collection): when the lock is busy the unpin is
queued and done by the next pin or unpin.
"""

from __future__ import annotations

import errno
import os
import resource
import threading
from collections import OrderedDict
from typing import Sequence

from .errors import LogClosedError
from .fileio import FileIO

OPEN_FILES_MIN = 8
# Descriptors left to everything else (sockets, metadata writes, the lock file, Python's own).
OPEN_FILES_HEADROOM_FRACTION = 2


def default_open_files_max() -> int:
    """Half of the process's soft RLIMIT_NOFILE: the other half is left to connections and
    to short-lived descriptors (metadata files, directory fsyncs). At least OPEN_FILES_MIN."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(OPEN_FILES_MIN, soft // OPEN_FILES_HEADROOM_FRACTION)


_default: "OpenFiles | None" = None
_default_lock = threading.Lock()


def default_open_files() -> "OpenFiles":
    """The process-wide cache for logs opened without one (tools, tests, embedding)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = OpenFiles()
        return _default


class OpenFiles:
    """The LRU of open ``FileHandle``s (see the module docstring)."""

    def __init__(self, open_files_max: int | None = None):
        self.open_files_max = max(1, open_files_max or default_open_files_max())
        self._lock = threading.Lock()
        self._open: OrderedDict[FileHandle, None] = OrderedDict()  # least recently used first
        # Unpins from finalizers that could not take the lock (see FileHandle.unpin_soon).
        self._deferred: list[FileHandle] = []
        self.opens = 0  # opens done (reopens after an eviction included), for tests and stats
        self.evictions = 0

    @property
    def open_count(self) -> int:
        return len(self._open)

    def handle(self, io: FileIO, path: str, flags: int = os.O_RDWR) -> "FileHandle":
        return FileHandle(self, io, path, flags)

    # -- called with self._lock held --------------------------------------------------------
    def _drain_locked(self) -> None:
        while self._deferred:
            self._deferred.pop()._drop_pin_locked()

    def _open_locked(self, h: "FileHandle", extra_flags: int) -> int:
        self._trim_locked(self.open_files_max - 1)
        try:
            fd = h.io.open(h.path, h.flags | extra_flags)
        except OSError as e:
            if e.errno not in (errno.EMFILE, errno.ENFILE):
                raise
            self._trim_locked(len(self._open) // 2)
            fd = h.io.open(h.path, h.flags | extra_flags)
        self.opens += 1
        h._fd = fd
        self._open[h] = None
        return fd

    def _trim_locked(self, target: int) -> None:
        """Close unpinned handles, least recently used first, until at most ``target`` are
        open (or only pinned ones remain). Clean handles go before dirty ones."""
        excess = len(self._open) - max(0, target)
        if excess <= 0:
            return
        victims: list[FileHandle] = []
        for want_clean in (True, False):
            for h in self._open:  # stops early: the victims are usually at the front
                if len(victims) >= excess:
                    break
                if not h._pins and h.dirty != want_clean:
                    victims.append(h)
        for h in victims:
            h._close_locked(sync=True)
            self.evictions += 1

    def close_all(self) -> None:
        with self._lock:
            for h in list(self._open):
                if not h._pins:
                    h._close_locked(sync=True)


class FileHandle:
    """One file, opened on demand through the cache. See the module docstring."""

    __slots__ = ("cache", "io", "path", "flags", "_fd", "_pins", "dirty", "_sync_error",
                 "_closed", "__weakref__")

    def __init__(self, cache: OpenFiles, io: FileIO, path: str, flags: int):
        self.cache = cache
        self.io = io
        self.path = path
        self.flags = flags  # every (re)open; O_CREAT/O_EXCL only on the first, via open_now
        self._fd = -1
        self._pins = 0
        self.dirty = False  # written through this descriptor since its last fsync
        self._sync_error: OSError | None = None
        self._closed = False

    @property
    def is_open(self) -> bool:
        return self._fd >= 0

    def open_now(self, extra_flags: int = 0) -> None:
        """Open at once (creating files: ``extra_flags`` = O_CREAT | O_EXCL)."""
        with self.cache._lock:
            if self._fd < 0:
                self.cache._open_locked(self, extra_flags)

    def pin(self) -> int:
        """The open descriptor, kept open until the matching ``unpin``."""
        cache = self.cache
        with cache._lock:
            if cache._deferred:
                cache._drain_locked()
            if self._closed:
                raise LogClosedError(f"{self.path} is closed")
            fd = self._fd
            if fd >= 0:
                cache._open.move_to_end(self)
            else:
                fd = cache._open_locked(self, 0)
            self._pins += 1
            return fd

    def unpin(self) -> None:
        with self.cache._lock:
            self._unpin_locked()

    def unpin_soon(self) -> None:
        """``unpin`` for finalizers (``FileSlice.__del__``), which may run inside a locked
        section of this very thread (a garbage collection triggered by an allocation there):
        never wait for the lock; if it is busy, the next pin or unpin does this one."""
        cache = self.cache
        if cache._lock.acquire(blocking=False):
            try:
                self._unpin_locked()
            finally:
                cache._lock.release()
        else:
            cache._deferred.append(self)  # list.append is atomic

    def _unpin_locked(self) -> None:
        if self.cache._deferred:
            self.cache._drain_locked()
        self._drop_pin_locked()

    def _drop_pin_locked(self) -> None:
        cache = self.cache
        self._pins -= 1
        if self._pins:
            return
        if self._closed:
            self._close_locked(sync=False)
        elif len(cache._open) > cache.open_files_max:
            cache._trim_locked(cache.open_files_max)

    def _close_locked(self, *, sync: bool) -> None:
        """``sync``: an eviction, which must not lose a writeback error (rule 2). A final
        close is the owner's decision: it has flushed, or it is abandoning the file."""
        fd = self._fd
        if fd < 0:
            return
        if sync and self.dirty and self._sync_error is None:
            try:
                self.io.fdatasync(fd)
                self.dirty = False
            except OSError as e:
                self._sync_error = e  # raised by the next fdatasync (rule 2)
        self._fd = -1
        self.cache._open.pop(self, None)
        self.io.close(fd)

    # -- the file operations the storage layer uses ------------------------------------------
    # Explicit pin/unpin in try/finally rather than a context manager: these are on the read
    # path, and a generator-based context manager costs more than the pin itself.
    def pread(self, size: int, offset: int) -> bytes:
        fd = self.pin()
        try:
            return self.io.pread(fd, size, offset)
        finally:
            self.unpin()

    def pwritev(self, buffers: Sequence[bytes | bytearray | memoryview], offset: int) -> int:
        fd = self.pin()
        try:
            self.dirty = True
            return self.io.pwritev(fd, buffers, offset)
        finally:
            self.unpin()

    def ftruncate(self, size: int) -> None:
        fd = self.pin()
        try:
            self.dirty = True
            self.io.ftruncate(fd, size)
        finally:
            self.unpin()

    def fstat_size(self) -> int:
        fd = self.pin()
        try:
            return self.io.fstat_size(fd)
        finally:
            self.unpin()

    def fdatasync(self) -> None:
        self._sync(self.io.fdatasync)

    def fsync(self) -> None:
        self._sync(self.io.fsync)

    def _sync(self, call) -> None:
        if self._sync_error is not None:
            raise self._sync_error
        fd = self.pin()
        try:
            call(fd)
            self.dirty = False
        finally:
            self.unpin()

    # -- lifecycle ----------------------------------------------------------------------------
    def release(self, *, sync: bool = True) -> None:
        """Close the descriptor if it is not in use (it reopens on the next operation).
        ``sync=False``: the owner knows the unsynced writes do not matter (see rule 2)."""
        with self.cache._lock:
            if not self._pins:
                self._close_locked(sync=sync)

    def renamed(self, path: str) -> None:
        """The file was renamed: reopen under the new name from now on."""
        with self.cache._lock:
            self.path = path

    def close(self) -> None:
        """Final close: now, or by the last unpin when a reader still holds the file."""
        with self.cache._lock:
            self._closed = True
            if not self._pins:
                self._close_locked(sync=False)

    def __repr__(self) -> str:
        return f"FileHandle({self.path!r}, fd={self._fd}, pins={self._pins})"


class PinnedFile:
    """A handle pinned once for a run of reads (``Log.read`` scans, then hands the pin to
    its ``FileSlice``): one pin and one unpin instead of one pair per ``pread``."""

    __slots__ = ("handle", "fd")

    def __init__(self, handle: FileHandle):
        self.fd = handle.pin()
        self.handle = handle

    def pread(self, size: int, offset: int) -> bytes:
        return self.handle.io.pread(self.fd, size, offset)

    def unpin(self, *, from_finalizer: bool = False) -> None:
        handle, self.handle = self.handle, None
        if handle is not None:
            self.fd = -1
            if from_finalizer:
                handle.unpin_soon()
            else:
                handle.unpin()

"""The storage layer's only door to the operating system's file calls.

Everything that writes, syncs, truncates, renames or deletes goes through a ``FileIO`` object,
and so do the directory listings and existence checks recovery decides on, so a test can
subclass it to inject a fault (ENOSPC after N bytes, EIO on fsync) while the real call still
runs for everything else: the fault hook wraps the real path, it never replaces the state
under test. The seeded simulation (``tests/sim``) keeps a durable image of every file and
directory behind this seam and rewinds to it on a simulated power loss. Production code
uses the module-level ``DEFAULT_IO``.
"""

from __future__ import annotations

import os
from typing import Sequence

# Linux caps one writev at IOV_MAX (1024) buffers.
_IOV_MAX = 1024


class FileIO:
    def open(self, path: str, flags: int, mode: int = 0o644) -> int:
        return os.open(path, flags | os.O_CLOEXEC, mode)

    def close(self, fd: int) -> None:
        os.close(fd)

    def pwritev(self, fd: int, buffers: Sequence[bytes | bytearray | memoryview], offset: int) -> int:
        """Write all ``buffers`` at ``offset``; short writes are continued until done or an
        OSError (e.g. ENOSPC) stops them. Returns the byte count."""
        if len(buffers) <= _IOV_MAX:
            # The common case: one syscall writes everything.
            n = os.pwritev(fd, buffers, offset)
            if n == sum(map(len, buffers)):
                return n
        else:
            n = 0
        pending = [memoryview(b).cast("B") for b in buffers if len(b)]
        self._drop_written(pending, n)
        total = n
        while pending:
            n = os.pwritev(fd, pending[:_IOV_MAX], offset + total)
            total += n
            self._drop_written(pending, n)
        return total

    @staticmethod
    def _drop_written(pending: list[memoryview], n: int) -> None:
        while pending and n >= len(pending[0]):
            n -= len(pending[0])
            pending.pop(0)
        if n:
            pending[0] = pending[0][n:]

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        """Read up to ``size`` bytes (fewer only at end of file)."""
        data = os.pread(fd, size, offset)
        if len(data) == size or not data:
            return data
        parts = [data]
        got = len(data)
        while got < size:
            more = os.pread(fd, size - got, offset + got)
            if not more:
                break
            parts.append(more)
            got += len(more)
        return b"".join(parts)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def fdatasync(self, fd: int) -> None:
        os.fdatasync(fd)

    def ftruncate(self, fd: int, size: int) -> None:
        os.ftruncate(fd, size)

    def fstat_size(self, fd: int) -> int:
        return os.fstat(fd).st_size

    def fsync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def rename(self, src: str, dst: str) -> None:
        os.rename(src, dst)

    def unlink(self, path: str) -> None:
        os.unlink(path)

    def mkdir(self, path: str) -> None:
        os.mkdir(path)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def isdir(self, path: str) -> bool:
        return os.path.isdir(path)


DEFAULT_IO = FileIO()

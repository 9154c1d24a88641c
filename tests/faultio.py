"""FileIO with injectable faults, for storage and broker tests (imported as ``faultio``).

Every call still goes to the real file system; a fault wraps the real path, it never
replaces the state under test (STYLE.md, habit 11).
"""

from __future__ import annotations

import errno

from kafkito.storage import FileIO


class FaultyIO(FileIO):
    """Real file calls, with injectable failures. A write that does not fit writes the part
    that fits and then fails, as the kernel does on a full disk."""

    def __init__(self):
        self.space_bytes: int | None = None
        self.fail_paths: tuple[str, ...] = ()
        self.fail_fsync = False
        self.fail_fsync_paths: tuple[str, ...] = ()  # fsync fails for files ending so
        self._paths: dict[int, str] = {}

    def open(self, path, flags, mode=0o644):
        fd = super().open(path, flags, mode)
        self._paths[fd] = path
        return fd

    def pwritev(self, fd, buffers, offset):
        if self._paths.get(fd, "").endswith(self.fail_paths or ("\0",)):
            raise OSError(errno.EIO, "injected I/O error")
        if self.space_bytes is not None:
            total = sum(len(b) for b in buffers)
            if total > self.space_bytes:
                fits = b"".join(bytes(b) for b in buffers)[: self.space_bytes]
                if fits:
                    super().pwritev(fd, [fits], offset)
                self.space_bytes = 0
                raise OSError(errno.ENOSPC, "No space left on device")
            self.space_bytes -= total
        return super().pwritev(fd, buffers, offset)

    def _check_fsync(self, fd):
        if self.fail_fsync or self._paths.get(fd, "").endswith(self.fail_fsync_paths or ("\0",)):
            raise OSError(errno.EIO, "injected fsync failure")

    def fdatasync(self, fd):
        self._check_fsync(fd)
        super().fdatasync(fd)

    def fsync(self, fd):
        self._check_fsync(fd)
        super().fsync(fd)

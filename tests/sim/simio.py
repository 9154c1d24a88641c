"""SimIO: storage's ``FileIO`` seam over a disk that can lose power.

Theory of operation. Files live in a real temporary directory, so every read the broker
does (``pread``, ``open(...).read()`` of metadata files, ``sendfile``) sees what a process
would see: the page cache. Beside it SimIO keeps what the *disk* holds:

* per file (an ``Inode``, shared by every name and fd of it): its content as of the last
  ``fsync``/``fdatasync``, plus the writes and truncations made since (``pending``);
* per directory (a ``Dir``): its entries as of the last ``fsync_dir`` (``durable``) and as
  they are now (``live``), each entry naming an Inode or a Dir.

``power_loss()`` rewrites the real tree to the disk's state: entries that were never made
durable go (creates, renames and unlinks not followed by a directory fsync are undone),
and each surviving file holds its durable content plus a seeded prefix of its pending
writes, the last one possibly torn half way. ``kill()`` only stops the process: the page
cache survives, so nothing on disk changes; every later call of the dead process fails.
``die_after(n)`` kills it at its n-th mutating call from now, so a crash can fall between
any two system calls of one operation (a roll, a metadata rename, recovery itself).

Faults, all decided by the simulation's seeded PRNG through ``Faults``: fsync failing with
EIO, writes failing with ENOSPC once the disk's byte budget is spent, and (between runs)
``flip()`` damaging bytes of a file on disk.

Directories and files SimIO never saw being created (the data directory itself, lock
files) are taken as durable when first touched: the model is lenient there, never strict.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
from dataclasses import dataclass, field

from kafkito.storage.fileio import FileIO


@dataclass
class Faults:
    """Fault rates and switches of one simulation run (all chosen by its seed)."""

    fsync_eio_rate: float = 0.0  # probability that one fsync/fdatasync/fsync_dir fails with EIO
    torn_writes: bool = True  # power loss keeps a seeded prefix of the un-fsynced writes
    space_left_bytes: int | None = None  # None: the disk never fills; else ENOSPC past it


@dataclass(eq=False)
class Inode:
    durable: bytes = b""
    pending: list = field(default_factory=list)  # ("w", offset, bytes) | ("t", size)


@dataclass(eq=False)
class Dir:
    path: str
    live: dict = field(default_factory=dict)  # name -> Inode | Dir
    durable: dict = field(default_factory=dict)


def _apply(content: bytes, ops: list, torn_last: int | None = None) -> bytes:
    buf = bytearray(content)
    for i, op in enumerate(ops):
        if op[0] == "t":
            size = op[1]
            del buf[size:]
            buf.extend(bytes(size - len(buf)))
            continue
        _, offset, data = op
        if torn_last is not None and i == len(ops) - 1:
            data = data[:torn_last]
        if offset > len(buf):
            buf.extend(bytes(offset - len(buf)))
        buf[offset:offset + len(data)] = data
    return bytes(buf)


class ProcessDead(OSError):
    def __init__(self) -> None:
        super().__init__(errno.EIO, "simulated: the broker process was killed")


class SimIO(FileIO):
    def __init__(self, root: str, rng: random.Random, faults: Faults | None = None) -> None:
        self.root = os.path.abspath(root)
        self.rng = rng
        self.faults = faults or Faults()
        self.dead = False
        self._dirs: dict[str, Dir] = {}
        self._fds: dict[int, Inode] = {}
        self.fsync_failures = 0
        self.syscalls_until_death: int | None = None
        self.on_death = None  # called (in the dying call) when die_after strikes
        self.enospc_failures = 0
        os.makedirs(self.root, exist_ok=True)
        self._dir(self.root)

    # -- the model ----------------------------------------------------------------------
    def _dir(self, path: str) -> Dir:
        path = os.path.abspath(path)
        d = self._dirs.get(path)
        if d is None:
            # First touch of a directory we did not see created: what is there is durable.
            d = Dir(path)
            for name in sorted(os.listdir(path)):
                full = os.path.join(path, name)
                node = self._dir(full) if os.path.isdir(full) else Inode(_read(full))
                d.live[name] = d.durable[name] = node
            self._dirs[path] = d
        return d

    def _entry(self, path: str) -> tuple[Dir, str]:
        path = os.path.abspath(path)
        return self._dir(os.path.dirname(path)), os.path.basename(path)

    def _inode(self, path: str) -> Inode | None:
        d, name = self._entry(path)
        node = d.live.get(name)
        if node is None and os.path.isfile(path):  # made behind our back: take it as durable
            node = d.live[name] = d.durable[name] = Inode(_read(path))
        return node if isinstance(node, Inode) else None

    def _check_alive(self) -> None:
        if self.dead:
            raise ProcessDead()
        if self.syscalls_until_death is not None:
            self.syscalls_until_death -= 1
            if self.syscalls_until_death <= 0:
                self.syscalls_until_death = None
                self.dead = True
                if self.on_death is not None:
                    self.on_death()
                raise ProcessDead()

    def die_after(self, syscalls: int) -> None:
        """The process dies at its ``syscalls``-th mutating call from now (that call does
        not happen): a crash between any two steps of an operation, not only between
        requests."""
        self.syscalls_until_death = syscalls

    def _maybe_eio(self, what: str) -> None:
        if self.faults.fsync_eio_rate and self.rng.random() < self.faults.fsync_eio_rate:
            self.fsync_failures += 1
            raise OSError(errno.EIO, f"simulated: {what} failed")

    # -- FileIO ---------------------------------------------------------------------------
    def open(self, path: str, flags: int, mode: int = 0o644) -> int:
        self._check_alive()
        node = self._inode(path)
        fd = super().open(path, flags, mode)
        if node is None:
            d, name = self._entry(path)
            node = d.live[name] = Inode()  # a new entry: durable only after fsync_dir
        elif flags & os.O_TRUNC:
            node.pending.append(("t", 0))
        self._fds[fd] = node
        return fd

    def close(self, fd: int) -> None:
        self._fds.pop(fd, None)
        super().close(fd)  # the kernel closes a dead process's fds too

    def pwritev(self, fd, buffers, offset: int) -> int:
        self._check_alive()
        data = b"".join(bytes(b) for b in buffers)
        space = self.faults.space_left_bytes
        if space is not None and len(data) > space:
            self.enospc_failures += 1
            if space > 0:  # a short write, then nothing
                super().pwritev(fd, [data[:space]], offset)
                self._fds[fd].pending.append(("w", offset, data[:space]))
                self.faults.space_left_bytes = 0
            raise OSError(errno.ENOSPC, "simulated: no space left on device")
        n = super().pwritev(fd, [data], offset)
        self._fds[fd].pending.append(("w", offset, data))
        if space is not None:
            self.faults.space_left_bytes = space - n
        return n

    def ftruncate(self, fd: int, size: int) -> None:
        self._check_alive()
        super().ftruncate(fd, size)
        self._fds[fd].pending.append(("t", size))

    def _sync(self, fd: int) -> None:
        self._check_alive()
        self._maybe_eio("fsync")
        node = self._fds[fd]
        node.durable = _apply(node.durable, node.pending)
        node.pending = []

    def fsync(self, fd: int) -> None:
        self._sync(fd)

    def fdatasync(self, fd: int) -> None:
        self._sync(fd)

    def fsync_dir(self, path: str) -> None:
        self._check_alive()
        self._maybe_eio("fsync of a directory")
        d = self._dir(path)
        d.durable = dict(d.live)

    def rename(self, src: str, dst: str) -> None:
        self._check_alive()
        node = self._inode(src)
        self._inode(dst)
        super().rename(src, dst)
        sd, sname = self._entry(src)
        dd, dname = self._entry(dst)
        sd.live.pop(sname, None)
        if node is not None:
            dd.live[dname] = node

    def unlink(self, path: str) -> None:
        self._check_alive()
        self._inode(path)
        super().unlink(path)
        d, name = self._entry(path)
        d.live.pop(name, None)

    def mkdir(self, path: str) -> None:
        self._check_alive()
        parent, name = self._entry(path)
        super().mkdir(path)
        d = self._dirs[os.path.abspath(path)] = Dir(os.path.abspath(path))
        parent.live[name] = d

    # -- crashes and damage ---------------------------------------------------------------
    def kill(self) -> None:
        """The process dies: its later calls fail; the page cache (the real files) stays."""
        self.dead = True

    def revive(self) -> None:
        """A new process on the same disk (after kill or power_loss)."""
        self.dead = False
        self.syscalls_until_death = None
        for fd in list(self._fds):  # whatever the dead process left open
            self.close(fd)

    def power_loss(self) -> dict[str, str]:
        """Rewrite the tree to what the disk holds. Returns {path: what happened} for the
        files and directories that changed (for the failure report)."""
        self.dead = True
        for fd in list(self._fds):
            self.close(fd)
        changes: dict[str, str] = {}
        kept: dict[str, Dir] = {}
        self._restore(self._dirs[self.root], changes, kept)
        self._dirs = kept
        return changes

    def _restore(self, d: Dir, changes: dict, kept: dict) -> None:
        kept[d.path] = d
        for name in sorted(os.listdir(d.path)):
            if name in d.live and name not in d.durable:
                full = os.path.join(d.path, name)
                if os.path.isdir(full):
                    shutil.rmtree(full)
                else:
                    os.unlink(full)
                changes[full] = "entry lost (not fsynced in its directory)"
        for name, node in sorted(d.durable.items()):
            full = os.path.join(d.path, name)
            if isinstance(node, Dir):
                if not os.path.isdir(full):
                    os.mkdir(full)
                    changes[full] = "directory restored"
                node.path = full
                self._restore(node, changes, kept)
                continue
            content = node.durable
            if node.pending:
                ops = node.pending
                k, torn = len(ops), None
                if self.faults.torn_writes:
                    k = self.rng.randint(0, len(ops))
                    if k and ops[k - 1][0] == "w" and self.rng.random() < 0.5:
                        torn = self.rng.randint(0, len(ops[k - 1][2]))
                else:
                    k = 0
                content = _apply(content, ops[:k], torn)
                changes[full] = (f"{len(ops) - k} of {len(ops)} unsynced writes lost"
                                 + (f", write {k} torn at {torn} bytes" if torn is not None else ""))
            if not os.path.isfile(full) or _read(full) != content:
                with open(full, "wb") as f:
                    f.write(content)
                changes.setdefault(full, "restored to its durable content")
            node.durable, node.pending = content, []
        d.live = dict(d.durable)

    def flip(self, path: str, position: int, nbytes: int) -> bytes:
        """Damage ``nbytes`` at ``position`` on disk (media corruption): both the page
        cache and the durable image change. Returns the bytes that were there."""
        node = self._inode(path)
        with open(path, "r+b") as f:
            f.seek(position)
            old = f.read(nbytes)
            new = bytes(b ^ (1 + self.rng.randrange(255)) for b in old)
            f.seek(position)
            f.write(new)
        if node is not None:
            buf = bytearray(node.durable)
            end = min(len(buf), position + len(new))
            if position < end:
                buf[position:end] = new[: end - position]
            node.durable = bytes(buf)
        return old


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()

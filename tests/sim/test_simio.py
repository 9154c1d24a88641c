"""SimIO's disk model: what a power loss keeps."""

from __future__ import annotations

import errno
import os
import random

import pytest

from sim.simio import Faults, SimIO


def _io(tmp_path, **faults):
    return SimIO(str(tmp_path / "d"), random.Random(1), Faults(**faults))


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def test_power_loss_keeps_fsynced_data_and_drops_the_rest(tmp_path):
    io = _io(tmp_path, torn_writes=False)
    path = os.path.join(io.root, "f")
    fd = io.open(path, os.O_RDWR | os.O_CREAT)
    io.pwritev(fd, [b"durable"], 0)
    io.fsync(fd)
    io.fsync_dir(io.root)
    io.pwritev(fd, [b"-lost"], 7)
    assert _read(path) == b"durable-lost"  # the page cache has it
    io.power_loss()
    assert _read(path) == b"durable"


def test_a_create_or_rename_not_fsynced_in_its_directory_is_undone(tmp_path):
    io = _io(tmp_path)
    old = os.path.join(io.root, "old")
    fd = io.open(old, os.O_RDWR | os.O_CREAT)
    io.pwritev(fd, [b"x"], 0)
    io.fsync(fd)
    io.close(fd)
    io.fsync_dir(io.root)
    fd = io.open(os.path.join(io.root, "new"), os.O_RDWR | os.O_CREAT)
    io.fsync(fd)
    io.close(fd)
    io.rename(old, os.path.join(io.root, "renamed"))
    io.power_loss()
    assert sorted(os.listdir(io.root)) == ["old"]
    assert _read(old) == b"x"


def test_torn_writes_keep_a_prefix_of_the_unsynced_writes(tmp_path):
    seen = set()
    for seed in range(30):
        io = SimIO(str(tmp_path / f"d{seed}"), random.Random(seed), Faults(torn_writes=True))
        path = os.path.join(io.root, "f")
        fd = io.open(path, os.O_RDWR | os.O_CREAT)
        io.fsync(fd)
        io.fsync_dir(io.root)
        io.pwritev(fd, [b"aaaa"], 0)
        io.pwritev(fd, [b"bbbb"], 4)
        io.power_loss()
        content = _read(path)
        assert (b"aaaabbbb").startswith(content)
        seen.add(len(content))
    assert {0, 8} <= seen and seen - {0, 4, 8}  # nothing, everything, and torn in between


def test_a_killed_process_can_do_nothing_more_but_its_writes_stay(tmp_path):
    io = _io(tmp_path)
    path = os.path.join(io.root, "f")
    fd = io.open(path, os.O_RDWR | os.O_CREAT)
    io.pwritev(fd, [b"cached"], 0)
    io.kill()
    with pytest.raises(OSError):
        io.pwritev(fd, [b"more"], 6)
    io.revive()
    assert _read(path) == b"cached"


def test_the_disk_fills_after_its_budget(tmp_path):
    io = _io(tmp_path, space_left_bytes=5)
    fd = io.open(os.path.join(io.root, "f"), os.O_RDWR | os.O_CREAT)
    with pytest.raises(OSError) as e:
        io.pwritev(fd, [b"123456"], 0)
    assert e.value.errno == errno.ENOSPC
    assert _read(os.path.join(io.root, "f")) == b"12345"  # a short write, then nothing

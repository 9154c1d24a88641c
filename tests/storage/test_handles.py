"""The open-file cache (storage/handles.py): segment files opened on demand behind an LRU.

Issue 10 finding 3: every partition held three descriptors for life, so one CreateTopics of
100,000 partitions ran out of them. These tests pin the cache's promises: never more
descriptors than the limit, every read byte-exact whatever was evicted, a slice handed out
for sendfile always reads its own file, and an eviction never loses a writeback error.
"""

import errno
import os
import random

import pytest
from storage_testlib import payload, read_all, sendfile_bytes

from kafkito.records.batch import HEADER_BYTES
from kafkito.storage import FileIO, KafkaStorageError, LogConfig, OpenFiles, PartitionLog


def open_fds(under=None) -> int:
    """Descriptors this process holds, or only those on files below ``under``: other
    tests' leftovers (a client library's background threads) open and close sockets at
    any time, so a bound on the log's own files is checked on the log's own files."""
    if under is None:
        return len(os.listdir("/proc/self/fd"))
    prefix = str(under)
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith(prefix):
                count += 1
        except OSError:
            continue  # closed meanwhile
    return count


def open_logs(tmp_path, clock, files, n, config=None, io=None):
    kw = {"io": io} if io is not None else {}
    return [PartitionLog.open(str(tmp_path / f"t-{p}"), "t", p, config or LogConfig(),
                              clock=clock, files=files, **kw) for p in range(n)]


def test_lru_bounds_descriptors_across_50_partitions_and_reads_stay_byte_exact(tmp_path, clock):
    rng = random.Random(10)
    files = OpenFiles(8)
    before = open_fds(tmp_path)
    # Small segments, so each partition has several segments (three files each).
    config = LogConfig(segment_bytes=1024, index_interval_bytes=128)
    logs = open_logs(tmp_path, clock, files, 50, config)
    assert open_fds(tmp_path) - before <= 8
    written: dict[int, list[bytes]] = {p: [] for p in range(50)}
    for step in range(600):
        p = rng.randrange(50)
        if rng.random() < 0.6:
            batch = payload(step, n=rng.randint(1, 4), size=rng.randint(10, 200))
            logs[p].append(batch, clock.now_ms())
            logs[p].flush()
            written[p].append(batch)
        elif written[p]:
            got = read_all(logs[p])
            assert len(got) == len(written[p])
            for batch, raw in zip(got, written[p]):
                # Byte-exact: the log stamps only the base offset (and epoch) in the header.
                assert bytes(batch.buf[HEADER_BYTES:]) == raw[HEADER_BYTES:]
                assert bytes(batch.buf[16:17]) == raw[16:17]  # magic
        assert files.open_count <= 8
        assert open_fds(tmp_path) - before <= 8, f"step {step}: {open_fds(tmp_path) - before} descriptors open"
    assert files.evictions > 0 and any(len(logs[p].segments) > 1 for p in range(50))
    for plog in logs:
        plog.close()
    assert open_fds(tmp_path) == before


def test_file_slice_keeps_reading_its_own_file_after_its_handle_is_evicted(tmp_path, clock):
    files = OpenFiles(2)
    a, b, c = open_logs(tmp_path, clock, files, 3)
    a.append(payload(1, n=5, size=300), clock.now_ms())
    a.flush()
    s = a.read(0, 1 << 20)
    expected = s.tobytes()
    fd = s.fileno()
    # Push a's segment out of the cache many times over and open other files, which would
    # take the same descriptor number if it had been closed.
    for i in range(20):
        for plog in (b, c):
            plog.append(payload(100 + i), clock.now_ms())
            plog.flush()
    others = [os.open(os.devnull, os.O_RDONLY) for _ in range(10)]
    try:
        assert s.fileno() == fd
        assert os.readlink(f"/proc/self/fd/{fd}") == a.segments[0].log_path
        assert sendfile_bytes(s) == expected
    finally:
        for o in others:
            os.close(o)
    s.close()
    assert files.open_count <= 2  # the unpin trimmed the cache back to its limit
    for plog in (a, b, c):
        plog.close()


def test_file_slice_outlives_its_log_and_closes_the_descriptor_when_dropped(tmp_path, clock):
    files = OpenFiles(4)
    [plog] = open_logs(tmp_path, clock, files, 1)
    plog.append(payload(7, n=3), clock.now_ms())
    plog.flush()
    s = plog.read(0, 1 << 20)
    expected = s.tobytes()
    fd = s.fileno()
    plog.close()  # the handle's final close waits for the slice
    assert os.readlink(f"/proc/self/fd/{fd}").endswith(".log")
    assert s.tobytes() == expected
    del s
    assert not os.path.exists(f"/proc/self/fd/{fd}") or not os.readlink(
        f"/proc/self/fd/{fd}").endswith("00000000000000000000.log")


class FailingSyncIO(FileIO):
    def __init__(self):
        self.fail_sync_for: str | None = None
        self.paths: dict[int, str] = {}
        self.synced: list[str] = []

    def open(self, path, flags, mode=0o644):
        fd = super().open(path, flags, mode)
        self.paths[fd] = path
        return fd

    def fdatasync(self, fd):
        path = self.paths.get(fd, "")
        if self.fail_sync_for and path.startswith(self.fail_sync_for):
            # Once, as the kernel reports a writeback error once per descriptor: a second
            # fsync (on a fresh descriptor) would "succeed" with the data gone.
            self.fail_sync_for = None
            raise OSError(errno.EIO, "injected fsync failure")
        self.synced.append(path)
        super().fdatasync(fd)


def test_dirty_handle_is_synced_before_eviction_and_a_failed_sync_is_not_lost(tmp_path, clock):
    io = FailingSyncIO()
    files = OpenFiles(3)
    # flush.messages high, so appends stay unsynced (dirty) until flush().
    logs = open_logs(tmp_path, clock, files, 4, LogConfig(), io=io)
    io.fail_sync_for = str(tmp_path / "t-0")
    logs[0].append(payload(1), clock.now_ms())
    # Unsynced appends to the other partitions push t-0's dirty descriptors out of a cache
    # that holds nothing clean (clean handles would go first).
    for i in range(5):
        for plog in logs[1:]:
            plog.append(payload(10 + i), clock.now_ms())
    assert not logs[0].segments[0].file.is_open
    for plog in logs[1:]:
        plog.flush()
    # The eviction's fsync failed; the log's own flush must report it, not succeed on a
    # fresh descriptor that never saw the error.
    with pytest.raises(KafkaStorageError):
        logs[0].flush()
    assert logs[0].is_offline
    for plog in logs[1:]:
        assert any(p.startswith(plog.directory) for p in io.synced)
        plog.close()
    logs[0].close()


def test_emfile_on_open_evicts_and_retries(tmp_path, clock):
    class EmfileOnce(FileIO):
        armed = False

        def open(self, path, flags, mode=0o644):
            if self.armed and path.endswith(".log"):
                self.armed = False
                raise OSError(errno.EMFILE, "Too many open files")
            return super().open(path, flags, mode)

    io = EmfileOnce()
    files = OpenFiles(100)
    logs = open_logs(tmp_path, clock, files, 6, io=io)
    for plog in logs:
        plog.append(payload(1), clock.now_ms())
        plog.flush()
        plog.segments[0].file.release()
    before = files.open_count
    io.armed = True
    assert len(read_all(logs[0])) == 1
    assert files.open_count <= before // 2 + 1
    for plog in logs:
        plog.close()


def test_slice_dropped_while_the_cache_lock_is_held_unpins_later_without_deadlock(tmp_path, clock):
    """A finalizer may run inside a locked section of the same thread (cyclic garbage
    collected during an allocation there); it must not wait for the lock."""
    files = OpenFiles(4)
    [plog] = open_logs(tmp_path, clock, files, 1)
    plog.append(payload(3), clock.now_ms())
    plog.flush()
    handle = plog.segments[0].file
    s = plog.read(0, 1 << 20)
    assert handle._pins == 1
    with files._lock:
        del s  # the finalizer runs here, with the lock held by this thread
        assert handle._pins == 1 and files._deferred == [handle]
    assert len(read_all(plog)) == 1  # the next pin drains the deferred unpin
    assert handle._pins == 0 and files._deferred == []
    plog.close()


def test_clean_start_keeps_only_active_segments_open(tmp_path, clock):
    files = OpenFiles(1000)
    config = LogConfig(segment_bytes=1024)
    logs = open_logs(tmp_path, clock, files, 5, config)
    for plog in logs:
        for i in range(20):
            plog.append(payload(i, size=100), clock.now_ms())
        assert len(plog.segments) > 3
        plog.close()
    assert files.open_count == 0
    logs = open_logs(tmp_path, clock, files, 5, config)  # clean_shutdown=True
    # One descriptor per partition: its active segment's log, which the tail check read.
    assert files.open_count == 5
    assert all(plog.segments[-1].file.is_open for plog in logs)
    assert all(len(read_all(plog)) == 20 for plog in logs)
    for plog in logs:
        plog.close()

"""I/O failures on the append path: disk full (a real tmpfs when we may mount one, and a
fault hook around the real write calls), permission denied (a real EACCES from the kernel),
a failing index write and a failing fsync. The log must raise KafkaStorageError, keep what
it acknowledged readable, and accept appends again once the cause is gone."""

import errno
import os
import subprocess
import uuid

import pytest
from faultio import FaultyIO
from storage_testlib import crash, open_log, payload, read_all

from kafkito.storage import FileIO, KafkaStorageError, LogConfig

CONFIG = LogConfig(segment_bytes=16 * 1024, index_interval_bytes=512)


def _try_mount_tmpfs(path, size_bytes):
    if os.geteuid() != 0:
        return False
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path)],
                       capture_output=True)
    return r.returncode == 0


@pytest.fixture(params=["tmpfs", "hook"])
def full_disk(request, tmp_path):
    """Yields (log directory, io, make_room()). ``make_room`` frees space again."""
    if request.param == "tmpfs":
        mnt = tmp_path / "mnt"
        if not _try_mount_tmpfs(mnt, 256 * 1024):
            pytest.skip("cannot mount a tmpfs here (not root?); the hook variant covers it")
        filler = mnt / "filler"

        def make_room():
            filler.unlink()

        try:
            # Leave ~40 KB free: enough for a couple of segments, then ENOSPC.
            with open(filler, "wb") as f:
                f.write(b"\0" * (256 - 40) * 1024)
            yield mnt / "t-0", FileIO(), make_room
        finally:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
    else:
        io = FaultyIO()
        io.space_bytes = 40 * 1024

        def make_room():
            io.space_bytes = None

        yield tmp_path / "t-0", io, make_room


def test_disk_full_raises_storage_error_and_recovers_when_space_returns(full_disk, clock):
    path, io, make_room = full_disk
    plog = open_log(path, clock, CONFIG, io=io)
    acked = []
    err = None
    for i in range(500):
        try:
            info = plog.append(payload(i, n=2, size=700), clock.now_ms())
        except KafkaStorageError as e:
            err = e
            break
        acked.append(info.base_offset)
    assert err is not None and err.errno == errno.ENOSPC and err.error_name == "KAFKA_STORAGE_ERROR"
    assert len(acked) > 5
    end = plog.log_end_offset
    assert end == acked[-1] + 2
    # Nothing half-written is visible or left in the file.
    assert [b.base_offset for b in read_all(plog)] == acked
    active = plog.segments[-1]
    assert os.path.getsize(active.log_path) == active.size
    with pytest.raises(KafkaStorageError):  # still full: fails again, still consistent
        plog.append(payload(1000, n=2, size=700), clock.now_ms())
    assert plog.log_end_offset == end
    make_room()
    info = plog.append(payload(1001, n=2, size=700), clock.now_ms())
    assert info.base_offset == end
    assert plog.flush() == end + 2
    crash(plog)
    plog = open_log(path, clock, CONFIG, io=io, clean_shutdown=False)
    assert [b.base_offset for b in read_all(plog)] == acked + [end]
    plog.close()


def test_permission_denied_on_roll_is_a_storage_error(tmp_path, clock):
    """A roll must create files; make the directory unwritable for this process (as root:
    drop the effective uid for the append, the kernel then says EACCES)."""
    plog = open_log(tmp_path / "t-0", clock, LogConfig(segment_bytes=2000))
    while len(plog.segments) == 1 or plog.segments[-1].size < 1200:
        plog.append(payload(0, n=2, size=300), clock.now_ms())
    before = plog.log_end_offset
    n_segments = len(plog.segments)
    root = os.geteuid() == 0
    os.chmod(tmp_path / "t-0", 0o555)
    try:
        if root:
            os.seteuid(65534)
        try:
            with pytest.raises(KafkaStorageError) as e:
                plog.append(payload(1, n=2, size=900), clock.now_ms())  # needs a roll
            # Reads keep working on the open files.
            assert [b.base_offset for b in read_all(plog)][-1] < before
        finally:
            if root:
                os.seteuid(0)
    finally:
        os.chmod(tmp_path / "t-0", 0o755)
    assert e.value.errno == errno.EACCES and "permission" in str(e.value).lower()
    assert plog.log_end_offset == before and len(plog.segments) == n_segments
    info = plog.append(payload(1, n=2, size=900), clock.now_ms())
    assert info.base_offset == before and len(plog.segments) == n_segments + 1
    plog.close()


def test_failed_index_write_undoes_the_data_write(tmp_path, clock):
    io = FaultyIO()
    plog = open_log(tmp_path / "t-0", clock, LogConfig(index_interval_bytes=0), io=io)
    plog.append(payload(0), clock.now_ms())
    size = plog.segments[-1].size
    io.fail_paths = (".index",)
    with pytest.raises(KafkaStorageError):
        plog.append(payload(1), clock.now_ms())
    assert plog.log_end_offset == 3 and plog.segments[-1].size == size
    assert os.path.getsize(plog.segments[-1].log_path) == size
    io.fail_paths = ()
    assert plog.append(payload(1), clock.now_ms()).base_offset == 3
    plog.close()
    plog = open_log(tmp_path / "t-0", clock, LogConfig(index_interval_bytes=0), clean_shutdown=False)
    assert [b.base_offset for b in read_all(plog)] == [0, 3]
    assert not plog.recovery.changed
    plog.close()


def test_failed_fsync_takes_the_log_offline_until_reopened(tmp_path, clock):
    io = FaultyIO()
    plog = open_log(tmp_path / "t-0", clock, CONFIG, io=io)
    plog.append(payload(0), clock.now_ms())
    io.fail_fsync = True
    with pytest.raises(KafkaStorageError):
        plog.flush()
    assert plog.is_offline and plog.flushed_offset == 0
    io.fail_fsync = False
    # A retried fsync could "succeed" after the kernel dropped the dirty pages: refuse.
    with pytest.raises(KafkaStorageError):
        plog.flush()
    with pytest.raises(KafkaStorageError):
        plog.append(payload(1), clock.now_ms())
    assert len(read_all(plog)) == 1  # reads still work
    plog.close()
    plog = open_log(tmp_path / "t-0", clock, CONFIG, io=io, clean_shutdown=False)
    assert plog.flushed_offset == 3 and not plog.is_offline
    assert plog.append(payload(1), clock.now_ms()).base_offset == 3
    plog.close()


def test_disk_full_while_writing_topic_metadata(tmp_path, clock):
    from kafkito.storage import LogManager

    io = FaultyIO()
    with LogManager(tmp_path, LogConfig(), clock, io=io) as m:
        io.space_bytes = 10
        with pytest.raises(KafkaStorageError):
            m.create_topic("t", 1, {})
        assert m.topic("t") is None
        io.space_bytes = None
        m.create_topic("t", 1, {}, topic_id=uuid.uuid4())
    with LogManager(tmp_path, LogConfig(), clock) as m:
        assert m.topic("t") is not None


def test_short_writes_are_continued(tmp_path, clock, monkeypatch):
    """The kernel may write less than asked (signals, nearly full disks): the write loop
    continues from where it stopped, through the real pwritev."""
    import kafkito.storage.fileio as fileio

    real = os.pwritev
    calls = []

    def short_pwritev(fd, buffers, offset):
        data = b"".join(bytes(b) for b in buffers)[:7]
        calls.append(len(data))
        return real(fd, [data], offset)

    monkeypatch.setattr(fileio.os, "pwritev", short_pwritev)
    plog = open_log(tmp_path / "t-0", clock, LogConfig(index_interval_bytes=0))
    for i in range(3):
        plog.append(payload(i, size=100), clock.now_ms())
    monkeypatch.setattr(fileio.os, "pwritev", real)
    assert len(calls) > 60
    assert [b.base_offset for b in read_all(plog)] == [0, 3, 6]
    plog.close()
    plog = open_log(tmp_path / "t-0", clock, LogConfig(index_interval_bytes=0), clean_shutdown=False)
    assert not plog.recovery.changed or plog.recovery.truncated_bytes == 0
    assert [b.base_offset for b in read_all(plog)] == [0, 3, 6]
    plog.close()


def test_delete_records_whose_checkpoint_write_fails_does_not_move_the_log_start(tmp_path, clock):
    """Regression (found by the simulation, disk_full seed 24): the start moved in memory
    before its checkpoint was written, so after a failed DeleteRecords the next one answered
    the unwritten start, and a crash then took it back."""
    io = FaultyIO()
    plog = open_log(tmp_path / "t-0", clock, CONFIG, io=io)
    for i in range(10):
        plog.append(payload(i), clock.now_ms())
    plog.flush()
    io.space_bytes = 0
    with pytest.raises(KafkaStorageError):
        plog.delete_records_before(12)
    assert plog.log_start_offset == 0
    io.space_bytes = None
    assert plog.delete_records_before(3) == 3  # not the 12 that was never written
    crash(plog)
    plog = open_log(tmp_path / "t-0", clock, CONFIG, io=io, clean_shutdown=False)
    assert plog.log_start_offset == 3
    plog.close()

"""Start-up and shutdown of the log engine on a full or failing disk (issue 10, finding 7).

Indexes are derived, so an index that cannot be written is kept in memory and its file
removed (on disk an index is right or absent); shutdown skips it and the next start rebuilds
it. Data that cannot be flushed is never called clean: ``LogManager.shutdown`` then writes
no clean-shutdown marker and raises, naming the log.
"""

from __future__ import annotations

import logging
import os

import pytest
from faultio import FaultyIO
from storage_testlib import open_log, payload, read_all

from kafkito.storage import KafkaStorageError, LogConfig, LogManager
from kafkito.storage.manager import CLEAN_SHUTDOWN_FILE

CONFIG = LogConfig(index_interval_bytes=100, segment_bytes=4096)


def _fill(plog, clock, n=20):
    return [plog.append(payload(i, size=60), clock.now_ms()).base_offset for i in range(n)]


def test_recovery_that_cannot_rewrite_an_index_keeps_it_in_memory(tmp_path, clock):
    plog = open_log(tmp_path / "t-0", clock, CONFIG)
    bases = _fill(plog, clock)
    plog.close()
    active = plog.segments[-1]
    os.truncate(active.offset_index.path, 0)  # stale: recovery must rebuild it
    io = FaultyIO()
    io.fail_paths = (".rebuild",)  # the disk refuses the rewrite

    plog = open_log(tmp_path / "t-0", clock, CONFIG, io=io, clean_shutdown=True)
    seg = plog.segments[-1]
    assert seg.indexes_offline is not None
    assert not os.path.exists(seg.offset_index.path) and not os.path.exists(seg.time_index.path)
    assert len(seg.offset_index) > 0  # the rebuilt entries, in memory
    assert [b.base_offset for b in read_all(plog)] == bases
    assert plog.read(bases[7], 1).first_offset == bases[7]  # lookups use the in-memory index
    # Appends work (the data has room) and index in memory only.
    more = plog.append(payload(99, size=60), clock.now_ms()).base_offset
    assert not os.path.exists(seg.offset_index.path)
    # Room again: the next flush writes both indexes, and they match a fresh rebuild.
    io.fail_paths = ()
    plog.flush()
    assert seg.indexes_offline is None and os.path.exists(seg.offset_index.path)
    plog.close()
    plog = open_log(tmp_path / "t-0", clock, CONFIG, clean_shutdown=True)
    assert not plog.recovery.changed
    assert [b.base_offset for b in read_all(plog)] == bases + [more]
    plog.close()


def test_close_on_a_full_disk_skips_the_seal_and_the_next_start_rebuilds(tmp_path, clock):
    io = FaultyIO()
    plog = open_log(tmp_path / "t-0", clock, LogConfig(index_interval_bytes=1 << 20), io=io)
    bases = _fill(plog, clock, 5)
    io.space_bytes = 0  # the seal's 12 bytes do not fit
    plog.close()  # no exception: the time index is derived
    assert plog.unclean_reason is None
    assert not os.path.exists(plog.segments[-1].time_index.path)
    plog = open_log(tmp_path / "t-0", clock, LogConfig(index_interval_bytes=1 << 20), clean_shutdown=True)
    assert plog.recovery.segments[-1].index_rebuilt
    assert plog.max_timestamp()[1] == 1_700_000_000_002  # the seal's entry came back
    assert [b.base_offset for b in read_all(plog)] == bases
    plog.close()


def test_shutdown_with_an_offline_log_writes_no_marker_and_names_it(tmp_path, clock):
    io = FaultyIO()
    m = LogManager(tmp_path, CONFIG, clock, io=io)
    m.startup()
    m.create_topic("a", 1)
    m.create_topic("b", 1)
    m.log("a", 0).append(payload(0), clock.now_ms())
    m.log("b", 0).append(payload(0), clock.now_ms())
    m.log("b", 0).flush()
    io.fail_fsync = True
    with pytest.raises(KafkaStorageError):
        m.log("a", 0).flush()  # a-0 goes offline
    io.fail_fsync = False
    with pytest.raises(KafkaStorageError, match=r"data of 1 log\(s\) could not be flushed.*a-0"):
        m.shutdown()
    assert not (tmp_path / CLEAN_SHUTDOWN_FILE).exists()
    with LogManager(tmp_path, CONFIG, clock) as m:  # the lock was released; recovery runs
        assert not m.clean_shutdown_detected
        assert len(read_all(m.log("b", 0))) == 1


def test_shutdown_that_cannot_write_the_marker_only_warns(tmp_path, clock, caplog):
    caplog.set_level(logging.WARNING, logger="kafkito.storage")  # whatever an earlier test set
    io = FaultyIO()
    with LogManager(tmp_path, CONFIG, clock, io=io) as m:
        m.create_topic("a", 1)
        m.log("a", 0).append(payload(0), clock.now_ms())
        io.fail_paths = (CLEAN_SHUTDOWN_FILE + ".tmp",)
    assert "cannot write the clean-shutdown marker" in caplog.text
    assert not (tmp_path / CLEAN_SHUTDOWN_FILE).exists()
    assert not (tmp_path / (CLEAN_SHUTDOWN_FILE + ".tmp")).exists()  # no half-written leftover
    with LogManager(tmp_path, CONFIG, clock) as m:
        assert not m.clean_shutdown_detected and len(read_all(m.log("a", 0))) == 1


def test_start_up_on_a_full_tmpfs_serves_reads_and_refuses_writes(small_tmpfs, clock):
    disk = small_tmpfs(512 * 1024)
    data = disk.path / "data"
    with LogManager(data, CONFIG, clock) as m:
        m.create_topic("a", 1)
        bases = _fill(m.log("a", 0), clock, 40)  # several segments
        m.log("a", 0).flush()
    for seg_file in sorted(os.listdir(data / "a-0")):
        if seg_file.endswith(".index"):
            os.truncate(data / "a-0" / seg_file, 0)  # every index needs a rewrite
    disk.fill()
    with LogManager(data, CONFIG, clock) as m:
        plog = m.log("a", 0)
        # Removing a stale index frees its pages, so a later segment's rewrite may fit.
        assert any(s.indexes_offline for s in plog.segments)
        assert [b.base_offset for b in read_all(plog)] == bases
        with pytest.raises(KafkaStorageError, match="No space left"):
            for i in range(100):  # the last page's slack may take a few
                plog.append(payload(100 + i, size=2000), clock.now_ms())
        end = plog.log_end_offset
        disk.make_room()
        assert plog.append(payload(200), clock.now_ms()).base_offset == end
        plog.flush()
        assert all(s.indexes_offline is None for s in plog.segments)
    with LogManager(data, CONFIG, clock) as m:
        assert m.clean_shutdown_detected
        assert not m.recovery_reports[("a", 0)].changed
        assert read_all(m.log("a", 0))[-1].base_offset == end


def test_failed_index_fsync_removes_the_index_not_the_log(tmp_path, clock):
    """An index is derived: its failed fsync costs a rebuild, never an offline log. Data's
    failed fsync is the one that takes the log offline (test_faults.py)."""
    io = FaultyIO()
    plog = open_log(tmp_path / "t-0", clock, CONFIG, io=io)
    bases = _fill(plog, clock, 3)
    io.fail_fsync_paths = (".index",)
    assert plog.flush() == plog.log_end_offset and not plog.is_offline
    seg = plog.segments[-1]
    assert seg.indexes_offline and not os.path.exists(seg.offset_index.path)
    bases += _fill(plog, clock, 3)  # still appendable; entries in memory
    io.fail_fsync_paths = ()
    plog.close()  # the close's flush writes them again
    assert os.path.exists(seg.offset_index.path)
    plog = open_log(tmp_path / "t-0", clock, CONFIG, clean_shutdown=True)
    assert not plog.recovery.changed
    assert len(read_all(plog)) == len(bases)
    plog.close()

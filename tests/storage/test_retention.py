"""Retention (retention.ms, retention.bytes), DeleteRecords and deferred segment deletion,
all driven by a manual clock: no sleeps."""

import os

import pytest
from storage_testlib import crash, open_log, payload, read_all, sendfile_bytes

from kafkito.records import build_batch
from kafkito.storage import LogConfig, OffsetOutOfRangeError


def _fill(plog, clock, n, ts_step=0, **kw):
    infos = []
    for i in range(n):
        infos.append(plog.append(payload(i, ts=clock.now_ms(), **kw), clock.now_ms()))
        clock.advance(ts_step)
    return infos


def test_retention_ms_deletes_old_flushed_segments_only(tmp_path, clock):
    config = LogConfig(segment_bytes=1024, retention_ms=10_000, file_delete_delay_ms=0)
    plog = open_log(tmp_path / "t-0", clock, config)
    _fill(plog, clock, 30, ts_step=1000)  # record timestamps follow the clock
    plog.flush()
    n_segments = len(plog.segments)
    assert n_segments > 4
    # Nothing is older than retention.ms yet at the time of the first records + 10 s.
    deleted = plog.apply_retention(clock.now_ms() - 30_000 + 10_000)
    assert deleted == 0
    deleted = plog.apply_retention(clock.now_ms())
    assert 0 < deleted < n_segments
    newest_deleted_end = plog.segments[0].base_offset
    assert plog.log_start_offset == newest_deleted_end
    for seg in plog.segments[:-1]:
        assert clock.now_ms() - seg.max_timestamp <= 10_000
    with pytest.raises(OffsetOutOfRangeError):
        plog.read(0, 100)
    assert read_all(plog)[0].base_offset == plog.log_start_offset
    plog.close()


def test_retention_never_deletes_unflushed_data(tmp_path, clock):
    config = LogConfig(segment_bytes=1024, retention_ms=0, file_delete_delay_ms=0)
    plog = open_log(tmp_path / "t-0", clock, config)
    _fill(plog, clock, 20)
    clock.advance(10)
    assert plog.apply_retention(clock.now_ms()) == 0  # nothing is flushed yet
    plog.flush()
    n = len(plog.segments)
    # Every segment is expired and flushed: all go, the active one after a roll.
    assert plog.apply_retention(clock.now_ms()) == n
    assert plog.log_start_offset == plog.log_end_offset == 60
    assert len(plog.segments) == 1 and plog.segments[0].is_empty
    assert plog.append(payload(99), clock.now_ms()).base_offset == 60
    plog.close()


def test_retention_bytes(tmp_path, clock):
    config = LogConfig(segment_bytes=1024, retention_bytes=3000, retention_ms=-1,
                       file_delete_delay_ms=0)
    plog = open_log(tmp_path / "t-0", clock, config)
    _fill(plog, clock, 40)
    plog.flush()
    total_before = plog.size_bytes
    assert total_before > 6000
    plog.apply_retention(clock.now_ms())
    # Kafka's rule: delete oldest segments while the excess is at least a whole segment.
    assert plog.size_bytes <= 3000 + plog.segments[0].size
    assert plog.size_bytes - plog.segments[0].size < 3000
    plog.close()


def test_compact_only_topics_ignore_time_and_size_retention(tmp_path, clock):
    config = LogConfig(segment_bytes=1024, retention_ms=0, retention_bytes=0,
                       cleanup_policy=("compact",), file_delete_delay_ms=0)
    plog = open_log(tmp_path / "t-0", clock, config)
    _fill(plog, clock, 20)
    plog.flush()
    clock.advance(10)
    assert plog.apply_retention(clock.now_ms()) == 0
    plog.close()


def test_delete_records_moves_log_start_and_survives_reopen(tmp_path, clock):
    config = LogConfig(segment_bytes=1024, file_delete_delay_ms=0)
    plog = open_log(tmp_path / "t-0", clock, config)
    _fill(plog, clock, 30)  # 90 offsets, nothing flushed yet
    assert plog.delete_records_before(44) == 44
    assert plog.flushed_offset == 90  # flushed first: the start never points past durable data
    assert plog.segments[0].base_offset <= 44 < plog.segments[0].next_offset
    with pytest.raises(OffsetOutOfRangeError):
        plog.read(43, 100)
    s = plog.read(44, 100)
    assert s.first_offset == 42  # the whole batch holding 44 is served, as Kafka does
    assert plog.delete_records_before(10) == 44  # never moves back
    with pytest.raises(OffsetOutOfRangeError):
        plog.delete_records_before(91)
    plog.close()
    plog = open_log(tmp_path / "t-0", clock, config)
    assert plog.log_start_offset == 44
    plog.close()
    plog = open_log(tmp_path / "t-0", clock, config, clean_shutdown=False)
    assert plog.log_start_offset == 44
    assert plog.delete_records_before(90) == 90  # everything: an empty log at 90
    assert plog.log_end_offset == 90 and read_all(plog) == []
    plog.close()
    plog = open_log(tmp_path / "t-0", clock, config)
    assert plog.log_start_offset == plog.log_end_offset == 90
    plog.close()


def test_deleted_segment_stays_readable_until_file_delete_delay(tmp_path, clock):
    config = LogConfig(segment_bytes=1024, retention_ms=1000, file_delete_delay_ms=60_000)
    plog = open_log(tmp_path / "t-0", clock, config)
    _fill(plog, clock, 20)
    plog.flush()
    s = plog.read(0, 1 << 20)
    expected = s.tobytes()
    first = plog.segments[0].log_path
    clock.advance(5000)
    assert plog.apply_retention(clock.now_ms()) > 0
    assert not os.path.exists(first) and os.path.exists(first + ".deleted")
    # The broker may still be sendfile-ing this slice.
    assert s.tobytes() == expected
    assert sendfile_bytes(s) == expected
    clock.advance(59_999)
    plog.apply_retention(clock.now_ms())
    assert os.path.exists(first + ".deleted")
    clock.advance(1)
    plog.apply_retention(clock.now_ms())
    assert not os.path.exists(first + ".deleted")
    plog.close()


def test_leftover_deleted_files_are_removed_on_open(tmp_path, clock):
    config = LogConfig(segment_bytes=1024, retention_ms=1000, file_delete_delay_ms=60_000)
    plog = open_log(tmp_path / "t-0", clock, config)
    _fill(plog, clock, 20)
    plog.flush()
    clock.advance(5000)
    plog.apply_retention(clock.now_ms())
    leftovers = [n for n in os.listdir(tmp_path / "t-0") if n.endswith(".deleted")]
    assert leftovers
    crash(plog)  # the .deleted files stay behind
    plog = open_log(tmp_path / "t-0", clock, config, clean_shutdown=False)
    assert not [n for n in os.listdir(tmp_path / "t-0") if n.endswith(".deleted")]
    assert set(plog.recovery.removed_leftovers) == set(leftovers)
    assert plog.log_start_offset == plog.segments[0].base_offset > 0
    plog.close()


def test_segment_without_timestamps_ages_by_mtime(tmp_path, clock):
    config = LogConfig(retention_ms=1000, file_delete_delay_ms=0)
    plog = open_log(tmp_path / "t-0", clock, config)
    raw = build_batch([(b"k", b"v", [], -1)])  # no timestamp
    plog.append(raw, clock.now_ms())
    plog.roll(clock.now_ms())
    plog.flush()
    seg = plog.segments[0]
    os.utime(seg.log_path, (0, (clock.now_ms() - 5000) / 1000))
    assert plog.apply_retention(clock.now_ms()) == 1
    plog.close()

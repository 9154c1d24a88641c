"""PartitionLog: append, read, roll, flush (group commit), reopen, timestamps, file layout."""

import os
import struct
import threading

import pytest
from storage_testlib import CODECS, content, open_log, payload, read_all, sendfile_bytes

from kafkito.records import RecordBatch, build_batch, iter_batches
from kafkito.records.batch import MAGIC_AT
from kafkito.storage import (
    FileIO,
    InvalidRecordError,
    LogConfig,
    OffsetOutOfRangeError,
    RecordTooLargeError,
    UnsupportedMessageFormatError,
)


def test_append_assigns_consecutive_offsets_and_reads_back(tmp_path, clock, small_config):
    plog = open_log(tmp_path / "t-0", clock, small_config)
    written = []
    for i in range(60):
        info = plog.append(payload(i, n=1 + i % 4, compression=CODECS[i % 5]), clock.now_ms())
        assert info.base_offset == (written[-1][1] + 1 if written else 0)
        assert info.record_count == 1 + i % 4 and info.log_append_time_ms == -1
        written.append((info.base_offset, info.last_offset, i))
    assert plog.log_end_offset == written[-1][1] + 1
    assert len(plog.segments) > 3  # small segment.bytes rolled several times
    got = read_all(plog)
    assert [(b.base_offset, b.last_offset) for b in got] == [(w[0], w[1]) for w in written]
    for b, (_, _, tag) in zip(got, written):
        assert content(b) == content(RecordBatch(payload(tag, n=1 + tag % 4, compression=CODECS[tag % 5])))
        assert b.partition_leader_epoch == 0
    # Every offset resolves to the batch containing it.
    for base, last, _ in written:
        for off in (base, last):
            s = plog.read(off, 1)
            assert s.first_offset == base and s.batch_count == 1
    plog.close()


def test_segment_files_use_kafka_names_and_index_layout(tmp_path, clock, small_config):
    plog = open_log(tmp_path / "t-0", clock, small_config)
    for i in range(40):
        plog.append(payload(i, size=100), clock.now_ms())
    plog.close()
    names = sorted(os.listdir(tmp_path / "t-0"))
    logs = [n for n in names if n.endswith(".log")]
    assert logs[0] == "00000000000000000000.log" and len(logs) > 1
    for name in logs:
        base = int(name[:20])
        for suffix in (".index", ".timeindex"):
            assert name[:20] + suffix in names
        data = (tmp_path / "t-0" / name).read_bytes()
        positions = {}
        pos = 0
        for b in iter_batches(data):
            positions[pos] = b
            pos += b.size_bytes
        idx = (tmp_path / "t-0" / (name[:20] + ".index")).read_bytes()
        assert len(idx) % 8 == 0 and idx
        for rel, p in struct.iter_unpack(">ii", idx):
            assert p in positions and positions[p].last_offset == base + rel
        tidx = (tmp_path / "t-0" / (name[:20] + ".timeindex")).read_bytes()
        assert len(tidx) % 12 == 0 and tidx
        entries = list(struct.iter_unpack(">qi", tidx))
        assert [e[0] for e in entries] == sorted({e[0] for e in entries})  # strictly increasing
        # The last time-index entry of a closed segment is its max timestamp.
        assert entries[-1][0] == max(b.max_timestamp for b in positions.values())


def test_read_respects_max_bytes_max_offset_and_range(tmp_path, clock, small_config):
    plog = open_log(tmp_path / "t-0", clock, small_config)
    infos = [plog.append(payload(i, n=2), clock.now_ms()) for i in range(10)]
    size = RecordBatch(payload(0, n=2)).size_bytes
    s = plog.read(0, 1)  # at least one batch even when it exceeds max_bytes
    assert s.batch_count == 1 and s.size == size
    s = plog.read(0, size * 3 + 1)
    assert s.batch_count == 3
    s = plog.read(0, 1 << 20, max_offset=infos[4].base_offset)  # stop before the HW batch
    assert s.next_offset == infos[4].base_offset
    s = plog.read(infos[4].base_offset, 1 << 20, max_offset=infos[4].base_offset)
    assert s.size == 0
    s = plog.read(plog.log_end_offset, 100)
    assert s.size == 0 and s.tobytes() == b""
    with pytest.raises(OffsetOutOfRangeError):
        plog.read(plog.log_end_offset + 1, 100)
    with pytest.raises(OffsetOutOfRangeError):
        plog.read(-1, 100)
    plog.close()


def test_file_slice_can_be_sendfiled(tmp_path, clock, small_config):
    plog = open_log(tmp_path / "t-0", clock, small_config)
    for i in range(5):
        plog.append(payload(i), clock.now_ms())
    s = plog.read(0, 1 << 20)
    assert sendfile_bytes(s) == s.tobytes()
    plog.close()


def test_append_rejections_leave_the_log_unchanged(tmp_path, clock):
    plog = open_log(tmp_path / "t-0", clock, LogConfig(max_message_bytes=500))
    plog.append(payload(0), clock.now_ms())
    bad = bytearray(payload(1))
    bad[-1] ^= 0xFF
    with pytest.raises(Exception) as e:
        plog.append(bytes(bad), clock.now_ms())
    assert e.value.error_name == "CORRUPT_MESSAGE"
    old = bytearray(payload(1))
    old[MAGIC_AT] = 1
    with pytest.raises(UnsupportedMessageFormatError):
        plog.append(bytes(old), clock.now_ms())
    with pytest.raises(RecordTooLargeError):
        plog.append(payload(2, size=600), clock.now_ms())
    # A blob whose second batch is bad is refused whole.
    with pytest.raises(Exception):
        plog.append(payload(3) + bytes(bad), clock.now_ms())
    assert plog.log_end_offset == 3
    assert len(read_all(plog)) == 1
    plog.close()


def test_compacted_topic_rejects_keyless_records(tmp_path, clock):
    plog = open_log(tmp_path / "t-0", clock, LogConfig(cleanup_policy=("compact",)))
    plog.append(payload(0, compression="zstd"), clock.now_ms())
    with pytest.raises(InvalidRecordError) as e:
        plog.append(payload(1, key=False, compression="snappy"), clock.now_ms())
    assert e.value.error_name == "INVALID_RECORD"
    assert plog.log_end_offset == 3
    plog.close()


@pytest.mark.parametrize("codec", CODECS)
def test_log_append_time_stamps_header_only(tmp_path, clock, codec):
    plog = open_log(tmp_path / "t-0", clock, LogConfig(message_timestamp_type="LogAppendTime"))
    raw = payload(0, n=3, compression=codec, ts=5)
    info = plog.append(raw, clock.now_ms())
    assert info.log_append_time_ms == clock.now_ms()
    [b] = read_all(plog)
    assert b.is_valid() and b.timestamp_type == 1 and b.max_timestamp == clock.now_ms()
    assert b.buf[61:] == raw[61:]  # the records section went through untouched
    assert [r.timestamp for r in b.records()] == [clock.now_ms()] * 3
    assert plog.offset_for_timestamp(clock.now_ms()) == (0, clock.now_ms())
    plog.close()


def test_reopen_after_clean_close_keeps_everything(tmp_path, clock, small_config):
    plog = open_log(tmp_path / "t-0", clock, small_config)
    for i in range(30):
        plog.append(payload(i, compression=CODECS[i % 5]), clock.now_ms())
    before = [b.tobytes() for b in read_all(plog)]
    plog.close()
    plog = open_log(tmp_path / "t-0", clock, small_config)
    assert not plog.recovery.changed
    assert [b.tobytes() for b in read_all(plog)] == before
    assert plog.flushed_offset == plog.log_end_offset == 90
    info = plog.append(payload(99), clock.now_ms())
    assert info.base_offset == 90
    plog.close()


def test_roll_by_segment_ms_uses_the_clock(tmp_path, clock):
    plog = open_log(tmp_path / "t-0", clock, LogConfig(segment_ms=1000))
    plog.append(payload(0), clock.now_ms())
    clock.advance(1000)
    plog.append(payload(1), clock.now_ms())
    assert len(plog.segments) == 1
    clock.advance(1)
    plog.append(payload(2), clock.now_ms())
    assert [s.base_offset for s in plog.segments] == [0, 6]
    plog.close()


def test_roll_when_the_index_is_full(tmp_path, clock):
    # 24 bytes of offset index = 3 entries; an entry every batch (interval 0).
    plog = open_log(tmp_path / "t-0", clock, LogConfig(segment_index_bytes=24, index_interval_bytes=0))
    for i in range(10):
        plog.append(payload(i, n=1), clock.now_ms())
    assert all(len(s.offset_index) <= 3 for s in plog.segments)
    assert len(plog.segments) >= 3
    assert len(read_all(plog)) == 10
    plog.close()


def test_explicit_roll_and_empty_roll_is_a_noop(tmp_path, clock):
    plog = open_log(tmp_path / "t-0", clock)
    assert plog.roll() == 0
    plog.append(payload(0), clock.now_ms())
    assert plog.roll() == 3
    assert plog.roll() == 3
    assert len(plog.segments) == 2
    plog.close()


def test_offset_for_timestamp_and_max_timestamp(tmp_path, clock, small_config):
    plog = open_log(tmp_path / "t-0", clock, small_config)
    # Timestamps go up by 10 per batch, except batch 7 which carries the largest one.
    for i in range(20):
        ts = 10_000 + 10 * i if i != 7 else 99_000
        plog.append(payload(i, n=2, ts=ts, compression=CODECS[i % 5]), clock.now_ms())
    assert plog.offset_for_timestamp(0) == (0, 10_000)
    assert plog.offset_for_timestamp(10_001) == (1, 10_001)
    assert plog.offset_for_timestamp(10_002) == (2, 10_010)
    assert plog.offset_for_timestamp(10_060) == (12, 10_060)
    # Kafka's rule is the *first offset* whose timestamp is >= the target, not the closest.
    assert plog.offset_for_timestamp(10_062) == (14, 99_000)
    assert plog.offset_for_timestamp(10_120) == (14, 99_000)
    assert plog.offset_for_timestamp(99_000) == (14, 99_000)
    assert plog.offset_for_timestamp(99_002) is None
    assert plog.max_timestamp() == (15, 99_001)
    plog.close()


def test_max_timestamp_of_empty_log(tmp_path, clock):
    plog = open_log(tmp_path / "t-0", clock)
    assert plog.max_timestamp() == (-1, -1)
    assert plog.offset_for_timestamp(0) is None
    plog.close()


class CountingIO(FileIO):
    def __init__(self):
        self.fsyncs = 0
        self.gate = threading.Event()

    def fdatasync(self, fd):
        self.fsyncs += 1
        self.gate.wait(5)  # hold the first fsync so the other callers pile up behind it
        super().fdatasync(fd)


def test_flush_is_group_committed_across_threads(tmp_path, clock):
    io = CountingIO()
    io.gate.set()
    plog = open_log(tmp_path / "t-0", clock, io=io)
    io.fsyncs = 0
    io.gate.clear()
    plog.append(payload(0), clock.now_ms())
    results = []
    threads = [threading.Thread(target=lambda: results.append(plog.flush())) for _ in range(16)]
    for t in threads:
        t.start()
    while io.fsyncs == 0:
        pass
    io.gate.set()
    for t in threads:
        t.join()
    assert results == [3] * 16
    # The first flusher synced everything; the others found their data covered.
    assert plog.flush_count == 1 and io.fsyncs == 1
    assert plog.flushed_offset == 3
    plog.close()


def test_flush_under_concurrent_appends_never_overstates(tmp_path, clock, small_config):
    plog = open_log(tmp_path / "t-0", clock, small_config)
    stop = threading.Event()
    seen = []

    def flusher():
        while not stop.is_set():
            seen.append(plog.flush())

    threads = [threading.Thread(target=flusher) for _ in range(3)]
    for t in threads:
        t.start()
    ends = []
    for i in range(200):
        ends.append(plog.append(payload(i, n=1), clock.now_ms()).last_offset + 1)
    stop.set()
    for t in threads:
        t.join()
    assert plog.flush() == 200
    assert all(x <= 200 for x in seen) and seen == sorted(seen)
    assert plog.flush_count < 200 + 3  # group commit: far fewer rounds than calls
    plog.close()


def test_flush_ms_policy(tmp_path, clock):
    plog = open_log(tmp_path / "t-0", clock, LogConfig(flush_ms=1000))
    plog.append(payload(0), clock.now_ms())
    assert plog.flushed_offset == 0
    assert not plog.maybe_flush(clock.now_ms() + 999)
    assert plog.maybe_flush(clock.now_ms() + 1000)
    assert plog.flushed_offset == 3
    plog.close()


def test_flush_messages_policy(tmp_path, clock):
    # The policy decides, the caller fsyncs: append itself never does (issue 11 item 2).
    plog = open_log(tmp_path / "t-0", clock, LogConfig(flush_messages=5))
    plog.append(payload(0), clock.now_ms())
    assert not plog.maybe_flush()
    assert plog.flushed_offset == 0
    plog.append(payload(1), clock.now_ms())
    assert plog.flushed_offset == 0 and plog.flush_due_ms() <= clock.now_ms()
    assert plog.maybe_flush()
    assert plog.flushed_offset == 6
    plog.close()


def test_batches_iterator_and_control_batches_from_the_coordinator(tmp_path, clock):
    plog = open_log(tmp_path / "t-0", clock)
    plog.append(payload(0), clock.now_ms())
    marker = build_batch([(b"\x00\x00\x00\x01", b"\x00\x00\x00\x00\x00\x00", [], 1)],
                         producer_id=9, producer_epoch=0, is_transactional=True, is_control=True)
    with pytest.raises(InvalidRecordError):
        plog.append(marker, clock.now_ms())
    plog.append(marker, clock.now_ms(), origin="coordinator")
    got = list(plog.batches())
    assert [b.base_offset for b in got] == [0, 3] and got[1].is_control
    assert [b.base_offset for b in plog.batches(3)] == [3]
    plog.close()


def test_finding_1_a_segment_never_spans_more_than_its_relative_offset_range(tmp_path, clock, monkeypatch):
    """Issue 10 finding 1 at a small scale: with the relative-offset range shrunk to 10
    offsets, appends roll before they would overflow the active segment, and an append that
    cannot fit even the empty active segment is refused with nothing written."""
    from kafkito.storage import log as log_module
    from kafkito.storage import segment as segment_module
    from kafkito.storage.log import ORIGIN_COORDINATOR

    monkeypatch.setattr(segment_module, "REL_OFFSET_MAX", 9)
    monkeypatch.setattr(log_module, "REL_OFFSET_MAX", 9)
    plog = open_log(tmp_path / "t-0", clock)
    for i in range(5):
        plog.append(payload(i, n=4), clock.now_ms())
    spans = [(s.base_offset, s.next_offset) for s in plog.segments]
    assert spans == [(0, 8), (8, 16), (16, 20)]
    assert all(end - base <= 10 for base, end in spans)
    blob = payload(7, n=6) + payload(8, n=6)  # 12 offsets: more than any one segment holds
    with pytest.raises(InvalidRecordError):
        plog.append(blob, clock.now_ms(), origin=ORIGIN_COORDINATOR)
    assert plog.log_end_offset == 20
    plog.roll()
    with pytest.raises(InvalidRecordError):  # also when the active segment is empty
        plog.append(blob, clock.now_ms(), origin=ORIGIN_COORDINATOR)
    assert plog.log_end_offset == 20 and plog.segments[-1].is_empty
    plog.append(payload(9, n=10), clock.now_ms())  # exactly the range: fits the empty segment
    assert [(s.base_offset, s.next_offset) for s in plog.segments][-1] == (20, 30)
    plog.close()
    reopened = open_log(tmp_path / "t-0", clock, clean_shutdown=False)
    assert reopened.log_end_offset == 30 and not reopened.recovery.deleted_segments
    reopened.close()


def test_finding_6_timestamp_lookup_over_a_stored_bomb_answers_at_batch_precision(tmp_path, clock):
    """A batch stored before produce validation existed (here: under a larger cap) that now
    decompresses past the cap: a timestamp lookup answers with the batch, never raises."""
    now = clock.now_ms()
    plog = open_log(tmp_path / "t-0", clock, decompressed_bytes_max=8 << 20)
    plog.append(payload(1, n=2), now)
    plog.append(build_batch([(b"k", b"\0" * (4 << 20), [], now + 10)], compression="zstd"), now)
    plog.close()
    plog = open_log(tmp_path / "t-0", clock, decompressed_bytes_max=1 << 20)
    assert plog.offset_for_timestamp(now + 1) == (1, now + 1)  # an ordinary batch: exact
    assert plog.offset_for_timestamp(now + 5) == (2, now + 10)  # the bomb: its base offset
    with pytest.raises(RecordTooLargeError):  # and a new one is refused
        plog.append(build_batch([(b"k", b"\0" * (4 << 20), [], now)], compression="zstd"), now)
    plog.close()

"""Producer state owned by the log: every batch checked in append(), snapshots at roll and
close, rebuilt at open from the newest trusted snapshot plus only the tail after it."""

from __future__ import annotations

import os

import pytest
from storage_testlib import crash, open_log

from kafkito.records import build_batch
from kafkito.storage import LogConfig
from kafkito.storage.producer_state import (
    InvalidProducerEpochError,
    OutOfOrderSequenceError,
    ProducerStateManager,
    UnknownProducerIdError,
    encode_snapshot,
    snapshot_offsets,
    snapshot_path,
)
from kafkito.storage.segment import LogSegment

TS = 1_700_000_000_000


def idem(pid: int, seq: int, n: int = 2, epoch: int = 0, size: int = 40) -> bytes:
    return build_batch([(b"k%d" % (seq + i), b"v" * size, [], TS) for i in range(n)],
                       producer_id=pid, producer_epoch=epoch, base_sequence=seq)


def test_every_batch_of_a_multi_batch_append_is_sequence_checked(tmp_path, clock):
    plog = open_log(tmp_path / "t-0", clock)
    plog.append(idem(7, 0), clock.now_ms())
    # The second batch skips sequence 4: the whole append is refused, nothing is written.
    with pytest.raises(OutOfOrderSequenceError):
        plog.append(idem(7, 2) + idem(7, 5), clock.now_ms(), origin="coordinator")
    assert plog.log_end_offset == 2
    # The first batch's staged effect is what the second is checked against.
    info = plog.append(idem(7, 2) + idem(7, 4), clock.now_ms(), origin="coordinator")
    assert (info.base_offset, info.last_offset) == (2, 5)
    entry = plog.producer_state.producers[7]
    assert [(b.first_seq, b.first_offset) for b in entry.batches] == [(0, 0), (2, 2), (4, 4)]
    # A batch inside a multi-batch append that repeats an appended one is not a retry.
    with pytest.raises(OutOfOrderSequenceError):
        plog.append(idem(7, 4) + idem(7, 6), clock.now_ms(), origin="coordinator")
    # Two producers in one append, each checked on its own.
    with pytest.raises(UnknownProducerIdError):
        plog.append(idem(8, 0) + idem(9, 3), clock.now_ms(), origin="coordinator")
    assert 8 not in plog.producer_state.producers and plog.log_end_offset == 6
    plog.close()


def test_successive_appends_are_checked_and_a_retry_gets_its_original_offsets(tmp_path, clock):
    plog = open_log(tmp_path / "t-0", clock)
    plog.append(idem(7, 0, epoch=1), clock.now_ms())
    plog.append(b"".join([build_batch([(b"plain", b"x", [], TS)])]), clock.now_ms())
    second = plog.append(idem(7, 2, epoch=1), clock.now_ms())
    retry = plog.append(idem(7, 2, epoch=1), clock.now_ms())
    assert (retry.base_offset, retry.last_offset, retry.record_count) == (3, 4, 0)
    assert second.base_offset == 3 and plog.log_end_offset == 5
    with pytest.raises(OutOfOrderSequenceError):
        plog.append(idem(7, 5, epoch=1), clock.now_ms())
    with pytest.raises(InvalidProducerEpochError):
        plog.append(idem(7, 4, epoch=0), clock.now_ms())
    assert plog.log_end_offset == 5
    plog.close()


def _fill(plog, clock, pid: int, batches: int, seq: int = 0) -> list[tuple[int, int]]:
    """Append ``batches`` idempotent batches; return each one's (base, last) offsets."""
    out = []
    for _ in range(batches):
        info = plog.append(idem(pid, seq, size=200), clock.now_ms())
        out.append((info.base_offset, info.last_offset))
        seq += 2
    return out


def _killed(tmp_path, clock, config: LogConfig, batches: int, unflushed: bytes | None = None):
    """Fill a log across several rolls, flush and checkpoint it, maybe append ``unflushed``,
    drop it as kill -9 would and reopen it. Returns (offsets of the batches, the active
    segment's base and batch count at the kill, the reopened log)."""
    plog = open_log(tmp_path / "t-0", clock, config)
    offsets = _fill(plog, clock, 7, batches)
    plog.flush()
    plog.checkpoint_recovery_point()
    if unflushed is not None:
        plog.append(unflushed, clock.now_ms())
    active_base = plog.active_segment.base_offset
    active_batches = sum(1 for _ in plog.batches(active_base))
    crash(plog)
    reopened = open_log(tmp_path / "t-0", clock, config, clean_shutdown=False)
    return offsets, (active_base, active_batches), reopened


def test_a_snapshot_is_written_at_each_roll_and_at_close_and_used_at_open(tmp_path, clock):
    config = LogConfig(segment_bytes=2048)
    plog = open_log(tmp_path / "t-0", clock, config)
    _fill(plog, clock, 7, 30)
    assert len(plog.segments) > 3
    plog.flush()  # the roll snapshots are written by the flush, off the append path
    bases = [s.base_offset for s in plog.segments[1:]]
    assert snapshot_offsets(plog.directory) == bases
    leo = plog.log_end_offset
    plog.close()
    assert snapshot_offsets(str(tmp_path / "t-0")) == bases + [leo]

    reopened = open_log(tmp_path / "t-0", clock, config)
    assert reopened.recovery.producer_snapshot == leo
    assert reopened.recovery.producer_batches_replayed == 0
    assert reopened.append(idem(7, 58, size=200), clock.now_ms()).record_count == 0  # a retry
    assert reopened.append(idem(7, 60), clock.now_ms()).base_offset == leo
    reopened.close()


def test_an_idempotent_retry_across_a_crash_is_not_appended_twice(tmp_path, clock):
    """Soak seed 1591: after an unclean restart producer state was rebuilt from the active
    segment only, so a retry of a batch in an older segment was appended again."""
    # Another producer's batch that the kill catches unflushed but on disk (page cache).
    offsets, _, reopened = _killed(tmp_path, clock, LogConfig(segment_bytes=2048), 30,
                                   unflushed=idem(9, 0))
    assert reopened.segments[-1].base_offset > offsets[-5][0]  # some retried batches: older segments
    # The producer's last five batches: each retry answered with its original offsets.
    for i, (base, last) in enumerate(offsets[-5:]):
        info = reopened.append(idem(7, 2 * (25 + i), size=200), clock.now_ms())
        assert (info.base_offset, info.last_offset, info.record_count) == (base, last, 0)
    assert reopened.append(idem(9, 0), clock.now_ms()).record_count == 0
    assert reopened.append(idem(7, 60), clock.now_ms()).record_count == 2
    reopened.close()


def test_after_a_crash_only_the_tail_after_the_newest_snapshot_is_replayed(tmp_path, clock,
                                                                            monkeypatch):
    _, (active_base, active_batches), reopened = _killed(
        tmp_path, clock, LogConfig(segment_bytes=4096), 60)
    assert active_base > 0
    assert reopened.recovery.producer_snapshot == active_base
    assert reopened.recovery.producer_batches_replayed == active_batches
    # The produce path itself never reads the log.
    reads = []
    original = LogSegment.headers_from

    def counting(self, *a, **kw):
        reads.append(self.base_offset)
        return original(self, *a, **kw)

    monkeypatch.setattr(LogSegment, "headers_from", counting)
    assert reopened.append(idem(7, 118, size=200), clock.now_ms()).record_count == 0
    assert reopened.append(idem(7, 120), clock.now_ms()).record_count == 2
    assert reads == []
    reopened.close()


def test_snapshots_past_what_recovery_kept_are_dropped_and_a_damaged_one_is_skipped(tmp_path, clock):
    config = LogConfig(segment_bytes=2048)
    plog = open_log(tmp_path / "t-0", clock, config)
    _fill(plog, clock, 7, 30)
    plog.close()
    directory = str(tmp_path / "t-0")
    offsets = snapshot_offsets(directory)
    newest, older = offsets[-1], offsets[-2]
    with open(snapshot_path(directory, newest), "r+b") as f:
        f.seek(40)
        f.write(b"#")  # a flipped byte: the checksum catches it
    stale = plog.log_end_offset + 100  # a snapshot of data this log does not hold
    with open(snapshot_path(directory, stale), "wb") as f:
        f.write(encode_snapshot(ProducerStateManager(), stale))

    reopened = open_log(tmp_path / "t-0", clock, config)
    assert reopened.recovery.producer_snapshot == older
    assert reopened.recovery.producer_batches_replayed > 0
    assert stale not in snapshot_offsets(directory) and newest not in snapshot_offsets(directory)
    assert reopened.append(idem(7, 58, size=200), clock.now_ms()).record_count == 0
    reopened.close()


def test_retention_removes_the_snapshots_of_deleted_segments(tmp_path, clock):
    config = LogConfig(segment_bytes=2048, file_delete_delay_ms=0)
    plog = open_log(tmp_path / "t-0", clock, config)
    _fill(plog, clock, 7, 30)
    plog.flush()
    keep_from = plog.segments[3].base_offset
    plog.delete_records_before(keep_from)
    assert snapshot_offsets(plog.directory)[0] == keep_from
    assert all(b.first_offset >= keep_from
               for b in plog.producer_state.producers[7].batches)
    plog.close()


def test_the_snapshot_file_of_kafkito_before_issue_11_is_removed_and_the_state_rebuilt(tmp_path, clock):
    plog = open_log(tmp_path / "t-0", clock)
    plog.append(idem(7, 0), clock.now_ms())
    plog.close()
    for offset in snapshot_offsets(str(tmp_path / "t-0")):
        os.unlink(snapshot_path(str(tmp_path / "t-0"), offset))
    legacy = tmp_path / "t-0" / "producer_state.snapshot"
    legacy.write_bytes(b"kafkito-meta 1 producer-state 00000000\n{}")
    reopened = open_log(tmp_path / "t-0", clock)
    assert not legacy.exists()
    assert reopened.recovery.producer_batches_replayed == 1
    assert reopened.append(idem(7, 0), clock.now_ms()).record_count == 0
    reopened.close()

"""The log cleaner (storage/cleaner.py): what a clean keeps, planning, transactions,
idempotent producers, tombstones, several passes, grouping, and reads across offset gaps."""

from __future__ import annotations

import os

import msgspec

from kafkito.records import RecordBatch, build_batch
from kafkito.records.batch import DELETE_HORIZON_BIT
from kafkito.storage import LogConfig, PartitionLog
from kafkito.storage.segment import LogSegment
from kafkito.storage.cleaner import (
    Cleaner,
    cleanable_upper_offset,
    choose,
    plan,
    read_checkpoint,
)
from kafkito.storage.offset_map import walk_records

from cleanerlib import COMMIT, ABORT, COMPACT, append_marker, consumed, latest
from storage_testlib import CODECS, read_all

T0 = 1_700_000_000_000


def open_compacted(path, clock, **changes) -> PartitionLog:
    config = msgspec.structs.replace(COMPACT, **changes)
    return PartitionLog.open(str(path), "t", 0, config, clock=clock)


def put(plog, clock, pairs, compression="none", headers=(("h", b"1"),), **kw):
    """One batch of (key, value) records, timestamps 1 ms apart from now."""
    now = clock.now_ms()
    batch = build_batch([(k, v, list(headers), now + i) for i, (k, v) in enumerate(pairs)],
                        compression=compression, **kw)
    return plog.append(batch, now)


def settle(plog, clock):
    """Make everything written cleanable: flushed, and not in the active segment."""
    plog.flush()
    plog.roll(clock.now_ms())


def test_keeps_the_latest_record_per_key_with_its_offset_timestamp_headers_and_codec(tmp_path, clock):
    plog = open_compacted(tmp_path, clock)
    written = []
    for i in range(60):
        codec = CODECS[i % len(CODECS)]
        pairs = [(b"k%d" % ((i * 3 + j) % 7), b"v%d-%d" % (i, j)) for j in range(3)]
        info = put(plog, clock, pairs, compression=codec, headers=[("i", str(i).encode())])
        written.append((info.base_offset, codec, pairs))
        clock.advance(5)
    settle(plog, clock)
    before = latest(consumed(plog)[1])
    segments_before = len(plog.segments)
    result = Cleaner(10_000).clean(plog, clock.now_ms())
    assert result is not None and result.end_offset == plog.active_segment.base_offset
    batches, records = consumed(plog)
    after = latest(records)
    assert {k: v for k, v in after.items()} == before
    # Exactly one record per key survives, with what it was written with.
    assert len(records) == 7 and len(plog.segments) < segments_before
    original = {(base + j): (codec, k, v) for base, codec, pairs in written for j, (k, v) in enumerate(pairs)}
    for b in batches:
        for r in b.records():
            codec, k, v = original[r.offset]
            assert (r.key, r.value) == (k, v)
            assert b.compression == codec
            assert r.timestamp == T0 + 5 * ((r.offset // 3)) + r.offset % 3
            assert r.headers == [("i", str(r.offset // 3).encode())]
    offsets = [r.offset for r in records]
    assert offsets == sorted(set(offsets))
    assert read_checkpoint(plog.directory).first_dirty_offset == result.end_offset


def test_a_fetch_at_a_cleaned_away_offset_returns_the_next_batch(tmp_path, clock):
    plog = open_compacted(tmp_path, clock)
    for i in range(30):
        put(plog, clock, [(b"a" if i < 29 else b"b", b"x" * 50)])
    settle(plog, clock)
    Cleaner(100).clean(plog, clock.now_ms())
    s = plog.read(3, 1 << 20)  # offsets 0..27 went: key a's latest is 28
    first = RecordBatch(s.tobytes())
    assert first.base_offset == 28 and plog.log_start_offset == 0
    assert [r.offset for r in consumed(plog)[1]] == [28, 29]


def test_the_active_segment_and_unflushed_data_are_never_cleaned(tmp_path, clock):
    plog = open_compacted(tmp_path, clock)
    for i in range(40):
        put(plog, clock, [(b"k", b"v%d" % i + b"." * 60)])
    assert len(plog.segments) > 2
    # Nothing flushed: nothing is cleanable.
    assert cleanable_upper_offset(plog) == 0
    assert Cleaner(100).clean(plog, clock.now_ms()) is None
    plog.flush()
    active = plog.active_segment.base_offset
    assert cleanable_upper_offset(plog) == active
    active_bytes = plog.active_segment.size
    Cleaner(100).clean(plog, clock.now_ms())
    assert plog.active_segment.base_offset == active and plog.active_segment.size == active_bytes
    # The active segment still holds every record it had; below it only the latest record
    # the map saw is left (the map never reads the active segment, as in Kafka).
    records = consumed(plog)[1]
    assert [r.offset for r in records if r.offset < active] == [active - 1]
    assert [r.offset for r in records if r.offset >= active] == list(range(active, 40))


def test_tombstones_stay_delete_retention_ms_after_the_clean_that_saw_them(tmp_path, clock):
    plog = open_compacted(tmp_path, clock, delete_retention_ms=10_000)
    put(plog, clock, [(b"gone", b"v1"), (b"kept", b"v1")])
    put(plog, clock, [(b"gone", None)])
    settle(plog, clock)
    cleaner = Cleaner(100)
    first = cleaner.clean(plog, clock.now_ms())
    records = consumed(plog)[1]
    assert [(r.key, r.value) for r in records] == [(b"kept", b"v1"), (b"gone", None)]
    tomb_batch = [b for b in read_all(plog) if any(r.value is None for r in b.records())][0]
    assert tomb_batch.attributes & DELETE_HORIZON_BIT
    assert tomb_batch.base_timestamp == clock.now_ms() + 10_000  # the delete horizon
    assert [r.timestamp for r in tomb_batch.records()] == [T0]  # timestamps kept
    assert first.horizon_ms == clock.now_ms() + 10_000
    # Before the horizon: not due by itself, and a clean keeps the tombstone.
    clock.advance(9_999)
    assert plan(plog, clock.now_ms()).due is None
    cleaner.clean(plog, clock.now_ms())
    assert [r.key for r in consumed(plog)[1]] == [b"kept", b"gone"]
    clock.advance(1)
    p = plan(plog, clock.now_ms())
    assert p.due == "delete horizon"
    result = cleaner.clean(plog, clock.now_ms(), p)
    assert result.tombstones_removed == 1
    assert [(r.key, r.value) for r in consumed(plog)[1]] == [(b"kept", b"v1")]
    assert read_checkpoint(plog.directory).delete_horizon_ms == -1


def test_an_idempotent_producers_last_batch_stays_even_empty_and_retries_stay_duplicates(tmp_path, clock):
    plog = open_compacted(tmp_path, clock)
    pid = 4242
    put(plog, clock, [(b"k", b"v0")], producer_id=pid, producer_epoch=0, base_sequence=0)
    last = build_batch([(b"k", b"v1", [], clock.now_ms()), (b"j", b"w", [], clock.now_ms())],
                       producer_id=pid, producer_epoch=0, base_sequence=1)
    info = plog.append(last, clock.now_ms())
    put(plog, clock, [(b"k", b"v2"), (b"j", b"w2")])  # supersedes both of the producer's records
    settle(plog, clock)
    Cleaner(100).clean(plog, clock.now_ms())
    batches = read_all(plog)
    kept = [b for b in batches if b.producer_id == pid]
    assert len(kept) == 1
    empty = kept[0]
    assert (empty.base_offset, empty.last_offset, empty.records_count) == (info.base_offset, info.last_offset, 0)
    assert (empty.base_sequence, empty.producer_epoch) == (1, 0) and empty.is_valid()
    # A restart that rebuilds producer state from the cleaned log still knows the batch.
    plog.close()
    for name in os.listdir(tmp_path):
        if name.endswith(".snapshot"):
            os.unlink(tmp_path / name)
    plog = open_compacted(tmp_path, clock)
    leo = plog.log_end_offset
    again = plog.append(last, clock.now_ms())
    assert (again.base_offset, again.last_offset) == (info.base_offset, info.last_offset)
    assert plog.log_end_offset == leo
    nxt = plog.append(build_batch([(b"k", b"v3", [], clock.now_ms())], producer_id=pid,
                                  producer_epoch=0, base_sequence=3), clock.now_ms())
    assert nxt.base_offset == leo
    plog.close()


def test_aborted_transactions_go_committed_ones_are_compacted_markers_go_after_the_horizon(tmp_path, clock):
    plog = open_compacted(tmp_path, clock, delete_retention_ms=1000)
    put(plog, clock, [(b"a", b"plain-a"), (b"b", b"plain-b")])
    seq = {7: 0, 8: 0}

    def txn(pid, pairs):
        put(plog, clock, pairs, producer_id=pid, producer_epoch=0, base_sequence=seq[pid],
            is_transactional=True)
        seq[pid] += len(pairs)

    txn(7, [(b"a", b"aborted-a")])
    txn(8, [(b"b", b"committed-b")])
    append_marker(plog, 7, ABORT, clock.now_ms())
    append_marker(plog, 8, COMMIT, clock.now_ms())
    # Nothing at or past the last stable offset is cleaned: the open transaction starts the
    # next segment, so the one before it is cleanable.
    settle(plog, clock)
    txn(8, [(b"c", b"open-c")])  # no marker yet: left as it is
    settle(plog, clock)
    assert plog.last_stable_offset == 6
    result = Cleaner(100).clean(plog, clock.now_ms())
    assert result.aborted_removed == 1
    batches, records = consumed(plog)
    assert latest(records) == {b"a": (0, b"plain-a"), b"b": (3, b"committed-b")}
    assert not any(r.value == b"aborted-a" for b in batches if not b.is_control for r in b.records())
    assert any(r.value == b"open-c" for b in batches if not b.is_control for r in b.records())
    markers = [b for b in batches if b.is_control and b.records_count]
    assert len(markers) == 2 and all(b.attributes & DELETE_HORIZON_BIT for b in markers)
    # Committed data superseded, and the horizon passed: its marker can go. The abort's
    # stays: its emptied batch is kept as producer 7's last one (test below).
    put(plog, clock, [(b"b", b"plain-b2")])
    append_marker(plog, 8, COMMIT, clock.now_ms())  # closes the open transaction
    clock.advance(1000)
    settle(plog, clock)
    result = Cleaner(100).clean(plog, clock.now_ms())
    batches, records = consumed(plog)
    assert latest(records) == {b"a": (0, b"plain-a"), b"b": (7, b"plain-b2"), b"c": (6, b"open-c")}
    assert result.markers_removed == 1
    remaining = [b.base_offset for b in batches if b.is_control and b.records_count]
    assert remaining == [4, 8]  # the markers of the transactions that still have a batch
    assert [(b.base_offset, b.records_count) for b in batches if b.producer_id == 7] == [(2, 0), (4, 1)]


def test_a_committed_transaction_in_the_clean_section_is_not_taken_for_a_later_aborted_one(tmp_path, clock):
    # A transaction committed and cleaned once lies in the clean section; the next clean
    # reads (for its map) only the dirty section, where the same producer's next
    # transaction is aborted. The committed batch's status is its producer's first marker
    # after it: the commit in the clean section, not the abort the map read.
    plog = open_compacted(tmp_path, clock)
    put(plog, clock, [(b"k", None)])
    put(plog, clock, [(b"k", b"committed")], producer_id=22, producer_epoch=0, base_sequence=0,
        is_transactional=True)
    append_marker(plog, 22, COMMIT, clock.now_ms())
    settle(plog, clock)
    assert Cleaner(100).clean(plog, clock.now_ms()).end_offset == 3
    put(plog, clock, [(b"k", b"aborted")], producer_id=22, producer_epoch=0, base_sequence=1,
        is_transactional=True)
    append_marker(plog, 22, ABORT, clock.now_ms())
    settle(plog, clock)
    result = Cleaner(100).clean(plog, clock.now_ms())
    assert result.first_dirty == 3 and result.aborted_removed == 1
    batches, records = consumed(plog)
    assert latest(records) == {b"k": (1, b"committed")}
    assert [r.value for b in batches if not b.is_control for r in b.records()] == [b"committed"]


def _segment_reads(monkeypatch) -> dict[int, int]:
    """Count ``bodies_from`` calls per segment base offset (every batch read of a clean)."""
    reads: dict[int, int] = {}
    original = LogSegment.bodies_from

    def counting(self, position, end):
        reads[self.base_offset] = reads.get(self.base_offset, 0) + 1
        return original(self, position, end)

    monkeypatch.setattr(LogSegment, "bodies_from", counting)
    return reads


def test_transactions_below_the_map_are_decided_by_the_txnindex_without_reading_the_log(tmp_path, clock, monkeypatch):
    # The clean section holds a committed and an aborted transaction of producer 22; the
    # dirty one its next, aborted, transaction (the map reads that abort, not the commit
    # before it), and producer 23 keeps a transaction open so that segments lie past the
    # map's end. The status of every transactional batch comes from the .txnindex: the
    # clean section is read once (its rewrite), what lies past the map not at all.
    plog = open_compacted(tmp_path, clock)
    txn = {22: 0, 23: 0}

    def txn_put(pid, pairs):
        put(plog, clock, pairs, producer_id=pid, producer_epoch=0, base_sequence=txn[pid],
            is_transactional=True)
        txn[pid] += len(pairs)

    put(plog, clock, [(b"k", b"plain"), (b"j", b"plain")])
    txn_put(22, [(b"k", b"committed")])
    append_marker(plog, 22, COMMIT, clock.now_ms())
    txn_put(22, [(b"j", b"aborted-early")])
    append_marker(plog, 22, ABORT, clock.now_ms())
    settle(plog, clock)
    first = Cleaner(100).clean(plog, clock.now_ms())
    assert first.aborted_removed == 1 and first.marker_scan_batches == 0
    txn_put(22, [(b"k", b"aborted")])
    append_marker(plog, 22, ABORT, clock.now_ms())
    put(plog, clock, [(b"m", b"plain")])
    settle(plog, clock)
    txn_put(23, [(b"m", b"open")])  # holds the last stable offset: nothing past it is cleaned
    settle(plog, clock)
    put(plog, clock, [(b"m", b"after")])
    settle(plog, clock)
    bases = [s.base_offset for s in plog.segments]
    reads = _segment_reads(monkeypatch)
    result = Cleaner(100).clean(plog, clock.now_ms())
    assert result.first_dirty == first.end_offset and result.end_offset == plog.last_stable_offset
    assert result.aborted_removed == 1 and result.marker_scan_batches == 0
    clean_section = [b for b, nxt in zip(bases, bases[1:]) if nxt <= result.first_dirty]
    assert clean_section and all(reads.get(b, 0) <= 1 for b in clean_section), reads
    assert not [b for b in bases if b >= result.end_offset and reads.get(b)], reads
    append_marker(plog, 23, COMMIT, clock.now_ms())
    assert latest(consumed(plog)[1]) == {b"k": (2, b"committed"), b"j": (1, b"plain"),
                                         b"m": (10, b"after")}


def test_a_lost_txnindex_is_rebuilt_and_still_decides_the_clean(tmp_path, clock):
    # Producer 22 committed in the part a first clean covered, then aborted in the part
    # the next one covers; the .txnindex files (and the snapshots, so that producer state
    # and the entries are rebuilt from the cleaned log) are lost before the second clean.
    plog = open_compacted(tmp_path, clock)
    put(plog, clock, [(b"k", b"plain")])
    put(plog, clock, [(b"k", b"committed"), (b"j", b"committed")], producer_id=22,
        producer_epoch=0, base_sequence=0, is_transactional=True)
    append_marker(plog, 22, COMMIT, clock.now_ms())
    put(plog, clock, [(b"j", b"aborted")], producer_id=22, producer_epoch=0, base_sequence=2,
        is_transactional=True)
    append_marker(plog, 22, ABORT, clock.now_ms())
    settle(plog, clock)
    Cleaner(100).clean(plog, clock.now_ms())
    put(plog, clock, [(b"k", b"aborted-2")], producer_id=22, producer_epoch=0, base_sequence=3,
        is_transactional=True)
    append_marker(plog, 22, ABORT, clock.now_ms())
    settle(plog, clock)
    plog.close()
    lost = [n for n in os.listdir(tmp_path) if n.endswith((".txnindex", ".snapshot"))]
    assert any(n.endswith(".txnindex") for n in lost)
    for name in lost:
        os.unlink(tmp_path / name)
    plog = open_compacted(tmp_path, clock)
    result = Cleaner(100).clean(plog, clock.now_ms())
    assert result.aborted_removed == 1 and result.marker_scan_batches == 0
    assert latest(consumed(plog)[1]) == {b"k": (1, b"committed"), b"j": (2, b"committed")}
    plog.close()


def test_below_the_log_start_a_transaction_is_looked_up_in_the_log(tmp_path, clock):
    # DeleteRecords moves the log start past an open transaction's only batch: the
    # transaction no longer holds the last stable offset, and its .txnindex entry (when it
    # aborts) starts at its marker. Only there the cleaner reads the markers from the log:
    # no marker yet leaves the batch as it is; the abort, once written, removes it.
    plog = open_compacted(tmp_path, clock, cleanup_policy=("compact", "delete"))
    put(plog, clock, [(b"k", b"open")], producer_id=22, producer_epoch=0, base_sequence=0,
        is_transactional=True)
    put(plog, clock, [(b"j", b"plain")])
    plog.flush()
    assert plog.delete_records_before(1) == 1
    put(plog, clock, [(b"j", b"plain-2")])
    settle(plog, clock)
    assert plog.last_stable_offset == plog.log_end_offset

    def batches_below_start():
        seg = plog.segments[0]
        return [f[0] for _p, f, _v in seg.bodies_from(0, seg.size) if f[0] < plog.log_start_offset]

    result = Cleaner(100).clean(plog, clock.now_ms())
    assert result.marker_scan_batches > 0 and result.aborted_removed == 0
    assert batches_below_start() == [0]  # undecided: left as it is
    append_marker(plog, 22, ABORT, clock.now_ms())
    put(plog, clock, [(b"j", b"plain-3")])
    settle(plog, clock)
    result = Cleaner(100).clean(plog, clock.now_ms())
    assert result.marker_scan_batches > 0 and result.aborted_removed == 1
    assert batches_below_start() == []
    assert latest(consumed(plog)[1]) == {b"j": (4, b"plain-3")}
    plog.close()


def test_the_marker_of_a_transactions_emptied_batch_kept_for_its_producer_stays(tmp_path, clock):
    # An aborted transaction's batch is emptied but kept (its producer's last batch). Its
    # marker must stay past the horizon: without it, producer state rebuilt from the log
    # takes the empty batch for an open transaction, the last stable offset stops there and
    # no clean ever reaches past it again.
    plog = open_compacted(tmp_path, clock, delete_retention_ms=1000)
    put(plog, clock, [(b"k", b"aborted")], producer_id=22, producer_epoch=0, base_sequence=0,
        is_transactional=True)
    append_marker(plog, 22, ABORT, clock.now_ms())
    put(plog, clock, [(b"k", None)])
    for _ in range(2):  # the first clean stamps the horizons, the second is past them
        settle(plog, clock)
        Cleaner(100).clean(plog, clock.now_ms())
        clock.advance(1001)
    batches = read_all(plog)
    assert [(b.base_offset, b.records_count) for b in batches if b.producer_id == 22] == [(0, 0), (1, 1)]
    plog.close()
    for name in os.listdir(tmp_path):
        if name.endswith(".snapshot"):
            os.unlink(tmp_path / name)
    plog = open_compacted(tmp_path, clock, delete_retention_ms=1000)
    assert plog.last_stable_offset == plog.log_end_offset == 3
    put(plog, clock, [(b"k", b"later")])
    settle(plog, clock)
    assert Cleaner(100).clean(plog, clock.now_ms()).end_offset == 4
    assert latest(consumed(plog)[1]) == {b"k": (3, b"later")}
    plog.close()


def test_a_map_smaller_than_the_keys_cleans_in_several_passes(tmp_path, clock):
    plog = open_compacted(tmp_path, clock)
    for rnd in range(3):
        for k in range(40):
            put(plog, clock, [(b"key-%03d" % k, b"r%d" % rnd)])
    settle(plog, clock)
    cleaner = Cleaner(15)
    ends = []
    while (p := plan(plog, clock.now_ms())) and p.due:
        result = cleaner.clean(plog, clock.now_ms(), p)
        ends.append(result.end_offset)
        assert result.keys <= 15
    assert len(ends) > 3 and ends == sorted(ends) and ends[-1] == plog.active_segment.base_offset
    # The producer snapshots of all those rolls do not pile up (the first segment stays).
    assert len([n for n in os.listdir(tmp_path) if n.endswith(".snapshot")]) <= 2
    records = consumed(plog)[1]
    assert {r.key: r.value for r in records} == {b"key-%03d" % k: b"r2" for k in range(40)}
    assert len(records) == 40


def test_cleaned_small_segments_are_merged_up_to_segment_bytes(tmp_path, clock):
    plog = open_compacted(tmp_path, clock, segment_bytes=1024)
    for i in range(200):
        put(plog, clock, [(b"k%d" % (i % 20), b"v" * 40)])
    settle(plog, clock)
    n = len(plog.segments)
    Cleaner(1000).clean(plog, clock.now_ms())
    assert len(plog.segments) < n // 3
    for seg in plog.segments[:-1]:
        assert seg.size <= 1024 + 200


def test_the_throttle_counts_every_batch_read_not_whole_segments(tmp_path, clock):
    plog = open_compacted(tmp_path, clock, segment_bytes=64 * 1024)
    for i in range(600):
        put(plog, clock, [(b"same-key", b"v" * 80)])
    settle(plog, clock)
    batch_max = max(len(b.tobytes()) for b in read_all(plog))
    calls: list[int] = []
    result = Cleaner(1000, throttle=calls.append).clean(plog, clock.now_ms())
    # Both reads are counted (and the write), each read batch by batch: a rate far below
    # a segment's size is kept evenly rather than in bursts of a whole segment.
    assert sum(calls) >= result.bytes_read + result.map_bytes_read
    assert max(calls) <= max(batch_max, result.bytes_written)
    assert len(calls) >= 2 * 590


def test_planning_dirty_ratio_lags_and_the_order_of_logs(tmp_path, clock):
    a = open_compacted(tmp_path / "a", clock, min_cleanable_dirty_ratio=0.5)
    b = open_compacted(tmp_path / "b", clock, min_cleanable_dirty_ratio=0.5,
                       min_compaction_lag_ms=60_000)
    for plog in (a, b):
        for i in range(30):
            put(plog, clock, [(b"k%d" % (i % 3), b"v" * 40)])
        settle(plog, clock)
    pa, pb = plan(a, clock.now_ms()), plan(b, clock.now_ms())
    assert pa.due == "dirty ratio" and pa.dirty_ratio == 1.0
    assert pb.due is None and pb.dirty_bytes == 0  # min.compaction.lag.ms: too young
    Cleaner(100).clean(a, clock.now_ms())
    for i in range(5):
        put(a, clock, [(b"k%d" % (i % 3), b"v" * 40)])
    settle(a, clock)
    pa = plan(a, clock.now_ms())
    assert 0 < pa.dirty_ratio < 0.9
    clock.advance(60_001)
    pb = plan(b, clock.now_ms())
    assert pb.due == "dirty ratio"
    assert [p.log for p in choose([pa, pb, None])][0] is b  # the dirtiest first
    # max.compaction.lag.ms makes a log due whatever its ratio.
    lagging = open_compacted(tmp_path / "c", clock, min_cleanable_dirty_ratio=1.0,
                             max_compaction_lag_ms=1000)
    for i in range(10):
        put(lagging, clock, [(b"k", b"v" * 100)])
    settle(lagging, clock)
    Cleaner(100).clean(lagging, clock.now_ms())
    put(lagging, clock, [(b"k", b"v" * 100)])
    settle(lagging, clock)
    assert plan(lagging, clock.now_ms()).due is None
    clock.advance(1001)
    p = plan(lagging, clock.now_ms())
    assert p.due == "max.compaction.lag.ms"
    assert choose([pa, p])[0] is p


def test_compact_delete_applies_retention_as_well(tmp_path, clock):
    plog = open_compacted(tmp_path, clock, cleanup_policy=("compact", "delete"), retention_ms=10_000)
    for i in range(30):
        put(plog, clock, [(b"k%d" % (i % 5), b"v" * 60)])
    settle(plog, clock)
    Cleaner(100).clean(plog, clock.now_ms())
    assert len(consumed(plog)[1]) == 5
    clock.advance(10_001)
    put(plog, clock, [(b"new", b"v")])
    settle(plog, clock)
    plog.apply_retention(clock.now_ms())
    assert [r.key for r in consumed(plog)[1]] == [b"new"]


def test_keyless_records_are_dropped_by_a_clean(tmp_path, clock):
    # Written before the topic became compacted: Kafka's cleaner drops them as invalid.
    plog = PartitionLog.open(str(tmp_path), "t", 0, LogConfig(segment_bytes=1024), clock=clock)
    put(plog, clock, [(None, b"keyless"), (b"k", b"v")])
    plog.update_config(COMPACT)
    settle(plog, clock)
    Cleaner(100).clean(plog, clock.now_ms())
    assert [(r.key, r.value) for r in consumed(plog)[1]] == [(b"k", b"v")]


def test_walk_records_agrees_with_the_reference_decoder():
    batch = RecordBatch(build_batch([(b"k" * n, None if n % 3 == 0 else b"v" * (n * 40), [("h", b"x")], T0 - n * 1000)
                                     for n in range(1, 40)]))
    section = batch.records_section()
    walked = walk_records(section, batch.records_count)
    for w, r in zip(walked, batch.records(), strict=True):
        assert w[5] == r.key and w[6] == (r.value is None)
        assert batch.base_offset + w[4] == r.offset and batch.base_timestamp + w[3] == r.timestamp


def test_a_clean_loses_to_retention_that_took_its_segments(tmp_path, clock):
    plog = open_compacted(tmp_path, clock, cleanup_policy=("compact", "delete"))
    for i in range(30):
        put(plog, clock, [(b"k%d" % (i % 5), b"v" * 60)])
    settle(plog, clock)
    cleaner = Cleaner(100)
    original = plog.replace_segments

    def retention_first(old, new, cleaned, end):
        plog.delete_records_before(plog.segments[1].base_offset)
        return original(old, new, cleaned, end)

    plog.replace_segments = retention_first
    result = cleaner.clean(plog, clock.now_ms())
    assert result.swaps_abandoned == 1
    assert not [n for n in os.listdir(tmp_path) if n.endswith((".cleaned", ".swap"))]
    assert read_checkpoint(plog.directory).first_dirty_offset == 0  # redone next time
    del plog.replace_segments
    assert cleaner.clean(plog, clock.now_ms()).swaps_abandoned == 0


def test_a_compacted_log_whose_policy_goes_back_to_delete_keeps_its_gaps_across_a_crash(tmp_path, clock):
    """Regression: recovery took a cleaned segment's first gap for damage (contiguous
    offsets are checked on delete-only logs) and quarantined the batch after it."""
    plog = open_compacted(tmp_path, clock)
    for i in range(50):
        put(plog, clock, [(b"k%d" % (i % 3), b"v%d" % i)])
    settle(plog, clock)
    Cleaner(100).clean(plog, clock.now_ms())
    plog.close()
    reopened = PartitionLog.open(str(tmp_path), "t", 0,
                                 msgspec.structs.replace(COMPACT, cleanup_policy=("delete",)),
                                 clock=clock, clean_shutdown=False)
    assert reopened.recovery.damage == []
    assert [(r.offset, r.value) for r in consumed(reopened)[1]] == [(47, b"v47"), (48, b"v48"), (49, b"v49")]
    reopened.close()


def test_verify_and_timestamp_lookups_see_a_cleaned_log_as_it_is(tmp_path, clock):
    from kafkito.storage.verify import verify_partition

    plog = open_compacted(tmp_path, clock)
    for i in range(40):
        put(plog, clock, [(b"k%d" % (i % 4), b"v%d" % i)])
        clock.advance(10)
    settle(plog, clock)
    Cleaner(100).clean(plog, clock.now_ms())
    # A timestamp of a cleaned-away record answers with the next record that is left.
    assert plog.offset_for_timestamp(T0 + 10 * 5) == (36, T0 + 360)
    plog.close()
    # Offset gaps are not damage, even when verify is not told the topic is compacted.
    report = verify_partition(str(tmp_path), compact=False)
    assert report.damage == [] and report.problems == []

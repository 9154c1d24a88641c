"""Transactions in the log: transactional batches, COMMIT/ABORT markers, the last stable
offset, the aborted-transaction index (``.txnindex``), DescribeProducers' data, retention."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from storage_testlib import open_log

from kafkito.records import build_batch, iter_batches
from kafkito.records.control import ABORT, COMMIT, ReadCommittedFilter, control_marker
from kafkito.storage import LogConfig, ManualClock
from kafkito.storage.producer_state import (
    InvalidProducerEpochError,
    InvalidTxnStateError,
    TransactionCoordinatorFencedError,
)
from kafkito.storage.txn_index import decode_entries, txn_index_path

TS = 1_700_000_000_000


def txn(pid: int, seq: int, n: int = 2, epoch: int = 0, tag: bytes = b"") -> bytes:
    return build_batch([(b"k%d" % (seq + i), b"%d/%d/%s" % (pid, seq + i, tag), [], TS)
                        for i in range(n)],
                       producer_id=pid, producer_epoch=epoch, base_sequence=seq,
                       is_transactional=True)


def plain(value: bytes, n: int = 1) -> bytes:
    return build_batch([(None, value + b"/%d" % i, [], TS) for i in range(n)])


def committed_view(plog, start: int | None = None) -> list[tuple[int, bytes]]:
    """(offset, value) of every record a read_committed consumer gets from ``start`` on,
    fetching as the broker does: up to the LSO, with the aborted list of each range."""
    offset = plog.log_start_offset if start is None else start
    lso = plog.last_stable_offset
    out = []
    while offset < lso:
        s = plog.read(offset, 300, max_offset=lso)  # small reads: many ranges
        if s.size == 0:
            break
        keep = ReadCommittedFilter(plog.aborted_transactions(offset, s.next_offset))
        for batch in iter_batches(s.tobytes()):
            if keep.keep(batch):
                out.extend((r.offset, r.value) for r in batch.records() if r.offset >= offset)
        offset = s.next_offset
    return out


def test_commit_abort_lso_and_aborted_index(tmp_path, clock):
    plog = open_log(tmp_path / "t-0", clock)
    now = clock.now_ms()
    plog.append(txn(1, 0), now)  # 0-1: producer 1's transaction
    plog.append(plain(b"p"), now)  # 2: plain
    plog.append(txn(2, 0), now)  # 3-4: producer 2's transaction
    assert plog.last_stable_offset == 0  # nothing flushed yet
    plog.flush()
    assert plog.high_watermark == 5 and plog.last_stable_offset == 0
    assert plog.append_control(1, 0, False, 3, now) == 5  # abort producer 1
    # The marker is not flushed: producer 1's transaction still holds the LSO.
    assert plog.last_stable_offset == 0
    plog.flush()
    assert plog.last_stable_offset == 3  # producer 2 is still open
    assert plog.aborted_transactions(0, 6) == [(1, 0)]
    assert plog.append_control(2, 0, True, 3, now) == 6
    plog.flush()
    assert plog.last_stable_offset == plog.high_watermark == 7
    assert [v for _, v in committed_view(plog)] == [b"p/0", b"2/0/", b"2/1/"]
    # The .txnindex holds Kafka's 34-byte entry: version, pid, first, last, LSO after it.
    with open(txn_index_path(plog.directory, 0), "rb") as f:
        raw = f.read()
    assert raw == struct.pack(">hqqqq", 0, 1, 0, 5, 3)
    # Ranges the abort does not overlap get no entry.
    assert plog.aborted_transactions(6, 7) == []
    assert plog.aborted_transactions(2, 3) == [(1, 0)]  # first < 3, marker 5 >= 2
    plog.close()


def test_markers_are_control_batches_kafka_can_read(tmp_path, clock):
    plog = open_log(tmp_path / "t-0", clock)
    plog.append(txn(9, 0, epoch=4), clock.now_ms())
    offset = plog.append_control(9, 4, True, 17, clock.now_ms())
    plog.flush()
    batch = [b for b in plog.batches(offset)][0]
    assert batch.is_control and batch.is_transactional and batch.producer_id == 9
    assert batch.producer_epoch == 4 and batch.base_sequence == -1 and batch.records_count == 1
    record = next(batch.records())
    assert record.key == struct.pack(">hh", 0, COMMIT)
    assert record.value == struct.pack(">hi", 0, 17)
    marker = control_marker(batch)
    assert marker.is_commit and marker.coordinator_epoch == 17 and marker.type != ABORT
    plog.close()


def test_fencing_and_transaction_state_errors(tmp_path, clock):
    plog = open_log(tmp_path / "t-0", clock)
    now = clock.now_ms()
    plog.append(txn(1, 0, epoch=2), now)
    # A plain batch from a producer with an open transaction: refused, nothing written.
    with pytest.raises(InvalidTxnStateError):
        plog.append(build_batch([(None, b"x", [], TS)], producer_id=1, producer_epoch=2,
                                base_sequence=2), now)
    with pytest.raises(InvalidProducerEpochError):
        plog.append_control(1, 1, True, 0, now)  # an older producer epoch
    assert plog.log_end_offset == 2
    # The coordinator fencing a zombie: a newer epoch is accepted and bumps the epoch.
    plog.append_control(1, 3, False, 5, now)
    info = plog.active_producers()[0]
    assert (info.producer_id, info.producer_epoch, info.coordinator_epoch) == (1, 3, 5)
    assert info.current_txn_start_offset == -1 and info.last_sequence == -1
    with pytest.raises(InvalidProducerEpochError):  # the zombie's next write
        plog.append(txn(1, 2, epoch=2), now)
    with pytest.raises(TransactionCoordinatorFencedError):
        plog.append_control(1, 3, True, 4, now)  # an older coordinator
    # The new epoch starts its sequences at 0.
    plog.append(txn(1, 0, epoch=3), now)
    assert plog.active_producers()[0].current_txn_start_offset == 3
    # A marker for a producer with no open transaction is written anyway (Kafka does).
    offset = plog.append_control(77, 0, True, 0, now)
    assert offset == 5 and any(p.producer_id == 77 for p in plog.active_producers())
    plog.close()


def test_describe_producers_data(tmp_path, clock):
    plog = open_log(tmp_path / "t-0", clock)
    plog.append(txn(5, 0, n=3, epoch=1), TS + 10)
    plog.append(build_batch([(None, b"i", [], TS + 20)], producer_id=6, producer_epoch=0,
                            base_sequence=0), TS + 20)
    by_id = {p.producer_id: p for p in plog.active_producers()}
    assert by_id[5].producer_epoch == 1 and by_id[5].last_sequence == 2
    assert by_id[5].current_txn_start_offset == 0 and by_id[5].last_timestamp == TS
    assert by_id[6].current_txn_start_offset == -1 and by_id[6].coordinator_epoch == -1
    plog.append_control(5, 1, True, 2, TS + 30)
    by_id = {p.producer_id: p for p in plog.active_producers()}
    assert by_id[5].current_txn_start_offset == -1 and by_id[5].coordinator_epoch == 2
    assert by_id[5].last_timestamp == TS + 30
    plog.close()


def test_interleaved_transactions_read_committed_sees_exactly_the_committed(tmp_path, clock):
    config = LogConfig(segment_bytes=600, index_interval_bytes=128)  # many segments
    plog = open_log(tmp_path / "t-0", clock, config)
    now = clock.now_ms()
    seqs = {1: 0, 2: 0, 3: 0}
    expected = []
    pending = {1: [], 2: [], 3: []}
    decisions = [(1, True), (2, False), (3, True), (1, False), (2, True), (3, False)] * 3
    for round_, (pid, commit) in enumerate(decisions):
        for other in (pid, (pid % 3) + 1):
            base = plog.append(txn(other, seqs[other], tag=b"%d" % round_), now).base_offset
            pending[other].extend((base + i, b"%d/%d/%d" % (other, seqs[other] + i, round_))
                                  for i in range(2))
            seqs[other] += 2
        base = plog.append(plain(b"r%d" % round_), now).base_offset
        expected.append((base, b"r%d/0" % round_))
        plog.append_control(pid, 0, commit, 0, now)
        if commit:
            expected.extend(pending[pid])
        pending[pid] = []
    for pid in (1, 2, 3):  # end what is still open
        if pending[pid]:
            plog.append_control(pid, 0, True, 0, now)
            expected.extend(pending[pid])
    plog.flush()
    assert len(plog.segments) > 3
    assert plog.last_stable_offset == plog.high_watermark
    assert committed_view(plog) == sorted(expected)
    # From any start offset, the consumer sees the committed records from there on.
    for start in range(0, plog.log_end_offset, 7):
        assert committed_view(plog, start) == [e for e in sorted(expected) if e[0] >= start]
    plog.close()


def test_retention_and_delete_records_keep_lso_and_index_right(tmp_path, clock):
    config = LogConfig(segment_bytes=400, index_interval_bytes=128, file_delete_delay_ms=0)
    plog = open_log(tmp_path / "t-0", clock, config)
    now = clock.now_ms()
    plog.append(txn(1, 0), now)  # open, first offset 0
    plog.append(txn(2, 0), now)
    plog.append_control(2, 0, False, 0, now)  # an abort in the first segment
    for i in range(10):
        plog.append(plain(b"f%d" % i, n=3), now)
    straddler = plog.append(txn(3, 0, n=4), now).base_offset  # open, 4 records
    plog.append(plain(b"g"), now)
    plog.flush()
    assert len(plog.segments) > 2 and plog.last_stable_offset == 0
    first_index = txn_index_path(plog.directory, 0)
    assert os.path.exists(first_index)
    # DeleteRecords past producer 1's only batch: nothing of its transaction can be read
    # any more, so it no longer holds the LSO; producer 3's does.
    target = plog.segments[2].base_offset
    assert target < straddler
    plog.delete_records_before(target)
    assert plog.log_start_offset == target
    assert plog.last_stable_offset == straddler
    assert not os.path.exists(first_index)  # the deleted segment's index went with it
    assert plog.aborted_transactions(target, plog.high_watermark) == []
    by_id = {p.producer_id: p for p in plog.active_producers()}
    assert by_id[1].current_txn_start_offset == -1 and by_id[3].current_txn_start_offset == straddler
    # Into producer 3's batch: its transaction holds the LSO at the log start, never below.
    plog.delete_records_before(straddler + 2)
    assert plog.last_stable_offset == straddler + 2
    assert committed_view(plog) == []
    plog.close()
    # Reopened: the same, from the snapshot or from a replay.
    plog = open_log(tmp_path / "t-0", clock, config)
    assert plog.last_stable_offset == straddler + 2
    plog.append_control(3, 0, True, 0, now)
    plog.append_control(1, 0, False, 0, now)  # its coordinator ends producer 1's too
    plog.flush()
    assert plog.last_stable_offset == plog.high_watermark
    assert [v for _, v in committed_view(plog)] == [b"3/2/", b"3/3/", b"g/0"]
    plog.close()
    plog = open_log(tmp_path / "t-0", clock, config)
    assert plog.last_stable_offset == plog.high_watermark == plog.log_end_offset
    assert not any(p.current_txn_start_offset >= 0 for p in plog.active_producers())
    plog.close()


def test_txn_index_decoder_reports_torn_and_bad_entries():
    good = struct.pack(">hqqqq", 0, 1, 0, 5, 6)
    assert decode_entries(good) == ([(1, 0, 5, 6)], None)
    entries, problem = decode_entries(good + good[:10])
    assert entries == [(1, 0, 5, 6)] and "torn" in problem
    entries, problem = decode_entries(good + struct.pack(">hqqqq", 3, 1, 0, 5, 6))
    assert len(entries) == 1 and "version" in problem


def test_coordinator_batches_without_sequence_join_the_transaction(tmp_path, clock):
    """TxnOffsetCommit's offsets: a transactional batch the coordinator writes for the
    producer (base sequence -1) opens or extends its transaction; its epoch still fences."""
    plog = open_log(tmp_path / "t-0", clock)
    now = clock.now_ms()

    def offsets(epoch: int) -> bytes:
        return build_batch([(b"offset-key", b"offset-value", [], TS)], producer_id=8,
                           producer_epoch=epoch, base_sequence=-1, is_transactional=True)

    plog.append(plain(b"before"), now, origin="coordinator")
    assert plog.append(offsets(2), now, origin="coordinator").base_offset == 1
    assert plog.append(offsets(2), now, origin="coordinator").base_offset == 2  # no dedup
    plog.flush()
    assert plog.last_stable_offset == 1
    with pytest.raises(InvalidProducerEpochError):
        plog.append(offsets(1), now, origin="coordinator")
    with pytest.raises(Exception):  # a client may not send a producer batch without sequence
        plog.append(offsets(2), now)
    plog.append_control(8, 2, True, 0, now)
    plog.flush()
    assert plog.last_stable_offset == plog.high_watermark == 4
    assert [v for _, v in committed_view(plog)] == [b"before/0", b"offset-value", b"offset-value"]
    plog.close()
    for name in os.listdir(tmp_path / "t-0"):  # no snapshot: the state is replayed from the log
        if name.endswith(".snapshot"):
            os.unlink(tmp_path / "t-0" / name)
    plog = open_log(tmp_path / "t-0", clock, clean_shutdown=False)
    assert plog.recovery.producer_batches_replayed == 4
    assert plog.last_stable_offset == 4
    assert plog.append(offsets(3), now, origin="coordinator").base_offset == 4
    plog.flush()
    assert plog.last_stable_offset == 4
    plog.close()


@settings(max_examples=40, deadline=None)
@given(plan=st.lists(st.tuples(st.integers(0, 5), st.sampled_from(["data", "commit", "abort",
                                                                    "plain", "roll"])),
                     min_size=1, max_size=60),
       ranges=st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=10))
def test_aborted_search_finds_exactly_the_overlapping_aborts(tmp_path_factory, plan, ranges):
    """The search (from the fetch offset's segment, bisected, stopped by the recorded LSO)
    returns exactly the aborts overlapping the range, as a scan of every entry would."""
    clock = ManualClock(TS)
    plog = open_log(tmp_path_factory.mktemp("log") / "t-0", clock)
    seqs: dict[int, int] = {}
    open_: set[int] = set()
    for pid, op in plan:
        if op == "data":
            plog.append(txn(pid, seqs.get(pid, 0), n=1), TS)
            seqs[pid] = seqs.get(pid, 0) + 1
            open_.add(pid)
        elif op in ("commit", "abort") and pid in open_:
            plog.append_control(pid, 0, op == "commit", 0, TS)
            open_.discard(pid)
        elif op == "plain":
            plog.append(plain(b"p"), TS)
        elif op == "roll":
            plog.roll(TS)
    plog.flush()
    every = plog.txn_indexes.entries()
    end = plog.log_end_offset
    for a, b in ranges:
        fetch, upper = sorted((int(a * end), int(b * end)))
        expected = [(e.producer_id, e.first_offset) for e in every
                    if e.last_offset >= fetch and e.first_offset < upper]
        assert plog.aborted_transactions(fetch, upper) == expected
    plog.close()


def test_txn_indexes_follow_a_segment_swap(tmp_path):
    """What compaction's swap calls: the replaced segments' entries move to the new one."""
    from kafkito.storage.fileio import DEFAULT_IO
    from kafkito.storage.txn_index import AbortedTxn, TxnIndexes

    indexes = TxnIndexes(str(tmp_path), DEFAULT_IO)
    indexes.append(0, AbortedTxn(1, 0, 5, 6))
    indexes.append(10, AbortedTxn(2, 8, 12, 13))
    indexes.append(20, AbortedTxn(3, 21, 22, 23))
    indexes.sync()
    indexes.replace([0, 10], 0)
    indexes.sync()
    assert sorted(os.listdir(tmp_path)) == [f"{0:020d}.txnindex", f"{20:020d}.txnindex"]
    reloaded = TxnIndexes(str(tmp_path), DEFAULT_IO)
    assert reloaded.load([0, 20]) == {}
    assert reloaded.entries() == [(1, 0, 5, 6), (2, 8, 12, 13), (3, 21, 22, 23)]
    assert [e.producer_id for e in reloaded.collect(9, 30, 0)] == [2, 3]


def test_compaction_keeps_the_aborted_index_and_the_lso(tmp_path, clock):
    """A clean never reaches the LSO, carries the swapped segments' .txnindex entries into
    the new segment, and what read_committed serves survives a restart after it."""
    from kafkito.storage.cleaner import Cleaner, cleanable_upper_offset

    config = LogConfig(cleanup_policy=("compact",), segment_bytes=400, index_interval_bytes=128,
                       delete_retention_ms=60_000, file_delete_delay_ms=0,
                       min_cleanable_dirty_ratio=0.0)
    path = tmp_path / "t-0"
    plog = open_log(path, clock, config)
    now = clock.now_ms()

    def keyed(pid: int, values: list[bytes]) -> bytes:  # every key distinct: nothing superseded
        return build_batch([(v, v, [], TS) for v in values], producer_id=pid,
                           producer_epoch=0 if pid >= 0 else -1,
                           base_sequence=0 if pid >= 0 else -1, is_transactional=pid >= 0)

    for round_ in range(6):
        plog.append(keyed(round_, [b"t%d-%d" % (round_, i) for i in range(2)]), now)
        plog.append(keyed(-1, [b"p%d" % round_]), now)
        plog.append_control(round_, 0, round_ % 2 == 0, 0, now)
    lso = plog.append(keyed(99, [b"open-0", b"open-1"]), now).base_offset  # open: LSO here
    plog.append(keyed(-1, [b"tail"]), now)
    plog.flush()
    plog.roll(now)
    assert plog.last_stable_offset == lso
    assert cleanable_upper_offset(plog) == lso
    before = committed_view(plog)
    aborted_before = plog.aborted_transactions(0, lso)
    assert len(aborted_before) == 3
    assert Cleaner(100).clean(plog, now) is not None
    plog.flush()
    # The aborted records went; the aborted list still covers whatever remains of them.
    assert committed_view(plog) == [r for r in before if r[0] in dict(committed_view(plog))]
    assert {v for _, v in committed_view(plog)} == {v for _, v in before}
    names = {n for n in os.listdir(path) if n.endswith(".txnindex")}
    assert names == {f"{s.base_offset:020d}.txnindex" for s in plog.segments
                     if plog.txn_indexes.count_in(s.base_offset)}
    plog.close()
    plog = open_log(path, clock, config)
    assert plog.last_stable_offset == lso
    assert {v for _, v in committed_view(plog)} == {v for _, v in before}
    plog.close()

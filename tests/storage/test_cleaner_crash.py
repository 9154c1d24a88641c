"""A clean interrupted at every state-changing file call (writing the cleaned file, the swap
renames, the old segments' renames, the index writes, the checkpoint), then the log reopened
as after a crash: no latest value lost, no offset served twice, the directory holds whole
segments only; plus the property test of issue 13 (random writes, cleans and crashes)."""

from __future__ import annotations

import os

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from kafkito.records import build_batch
from kafkito.storage import PartitionLog
from kafkito.storage.cleaner import Cleaner, read_checkpoint
from kafkito.storage.cleaner import Cleaner as CleanerClass
from kafkito.storage.log import ORIGIN_COORDINATOR
from kafkito.storage.offset_map import ACCELERATED, new_offset_map
from kafkito.storage.producer_state import OutOfOrderSequenceError, UnknownProducerIdError

from cleanerlib import (
    ABORT,
    COMMIT,
    COMPACT,
    CrashingIO,
    aborted_left,
    FailingRenameIO,
    SimulatedCrash,
    consumed,
    latest,
    marker,
)
from storage_testlib import crash, read_all


def _fill(plog, clock, rounds=6, keys=9):
    for r in range(rounds):
        for k in range(keys):
            value = None if (r == rounds - 2 and k % 4 == 0) else b"r%d-k%d" % (r, k) + b"." * 40
            plog.append(build_batch([(b"k%d" % k, value, [], clock.now_ms())],
                                    compression=("none", "zstd", "gzip")[k % 3]), clock.now_ms())
            clock.advance(1)
    plog.flush()
    plog.roll(clock.now_ms())


def _check_served(plog, expected):
    batches, records = consumed(plog)
    offsets = [r.offset for r in records]
    assert offsets == sorted(set(offsets)), "an offset served twice or out of order"
    bases = [b.base_offset for b in batches]
    assert bases == sorted(set(bases))
    got = latest(records)
    for key, (offset, value) in expected.items():
        if value is None:
            assert key not in got or got[key] == (offset, None)
        else:
            assert got[key] == (offset, value), key


def _count_steps(tmp_path, clock) -> tuple[int, list[str]]:
    io = CrashingIO()
    plog = PartitionLog.open(str(tmp_path / "count"), "t", 0, COMPACT, clock=clock, io=io)
    _fill(plog, clock)
    before = io.calls
    Cleaner(1000).clean(plog, clock.now_ms())
    steps, trace = io.calls - before, io.trace[before:]
    plog.close()
    return steps, trace


def test_a_crash_at_every_step_of_a_clean_loses_nothing_and_serves_no_offset_twice(tmp_path, clock):
    steps, trace = _count_steps(tmp_path, clock)
    assert any(".swap" in t for t in trace) and any(".deleted" in t for t in trace)
    for step in range(1, steps + 1):
        io = CrashingIO()
        directory = tmp_path / f"s{step}"
        plog = PartitionLog.open(str(directory), "t", 0, COMPACT, clock=clock, io=io)
        _fill(plog, clock)
        expected = latest(consumed(plog)[1])
        io.armed = io.calls + step
        with pytest.raises(SimulatedCrash):
            Cleaner(1000).clean(plog, clock.now_ms())
        crash(plog)
        reopened = PartitionLog.open(str(directory), "t", 0, COMPACT, clock=clock,
                                     clean_shutdown=False)
        try:
            names = os.listdir(directory)
            assert not [n for n in names if n.endswith((".cleaned", ".swap", ".deleted"))], (step, names)
            _check_served(reopened, expected)
            # And a clean after the restart finishes the job.
            Cleaner(1000).clean(reopened, clock.now_ms())
            _check_served(reopened, expected)
            assert len(consumed(reopened)[1]) <= 9
        finally:
            reopened.close()


def test_a_swap_that_fails_after_its_commit_point_takes_the_log_offline_until_reopened(tmp_path, clock):
    io = FailingRenameIO(".log")  # the rename of the .swap file to its final name fails
    plog = PartitionLog.open(str(tmp_path), "t", 0, COMPACT, clock=clock, io=io)
    _fill(plog, clock)
    expected = latest(consumed(plog)[1])
    with pytest.raises(Exception):
        Cleaner(1000).clean(plog, clock.now_ms())
    assert plog.is_offline
    crash(plog)
    reopened = PartitionLog.open(str(tmp_path), "t", 0, COMPACT, clock=clock, clean_shutdown=False)
    assert any("swap finished" in line for line in reopened.recovery.removed_leftovers)
    _check_served(reopened, expected)
    reopened.close()


# --------------------------------------------------------------------- the property test
KEYS = [b"k%d" % i for i in range(6)]

op = st.one_of(
    st.tuples(st.just("put"), st.lists(st.tuples(st.sampled_from(KEYS), st.booleans()), min_size=1, max_size=4),
              st.sampled_from(["none", "gzip", "lz4", "zstd", "snappy"])),
    st.tuples(st.just("idem"), st.sampled_from(KEYS), st.booleans()),
    st.tuples(st.just("txn"), st.sampled_from(KEYS), st.booleans(), st.sampled_from([22, 23])),
    st.tuples(st.just("end_txn"), st.sampled_from([ABORT, COMMIT]), st.sampled_from([22, 23])),
    st.tuples(st.just("clean"), st.integers(1, 12)),
    st.tuples(st.just("crash_in_clean"), st.integers(1, 60)),
    # What a restart loses: the producer snapshots, the .txnindex files, or both.
    st.tuples(st.just("restart"), st.booleans(), st.sampled_from(["snapshot", "txnindex", "both"])),
    st.tuples(st.just("delete_records"), st.integers(1, 8)),
    st.tuples(st.just("tick"), st.sampled_from([10, 400, 1500])),
)


# Examples: the profile's (tests/conftest.py: HYPOTHESIS_PROFILE=thorough runs many more).
@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                               HealthCheck.too_slow])
@given(ops=st.lists(op, min_size=5, max_size=45))
@pytest.mark.parametrize("accelerated", [pytest.param(True, marks=pytest.mark.skipif(
    not ACCELERATED, reason="storage/_offsetmap.c not built")), False], ids=["c-map", "python-map"])
def test_random_writes_cleans_and_crashes_keep_exactly_the_latest_values(tmp_path_factory, clock, ops,
                                                                         accelerated):
    def Cleaner(capacity):  # noqa: N802: the cleaner under test, on the C map or the reference
        return CleanerClass(capacity, new_map=lambda: new_offset_map(accelerated))

    directory = str(tmp_path_factory.mktemp("prop"))
    config = msgspec.structs.replace(COMPACT, delete_retention_ms=1000, cleanup_policy=("compact", "delete"))
    io = CrashingIO()
    plog = PartitionLog.open(directory, "t", 0, config, clock=clock, io=io)
    pid_idem = 11
    seq = {pid_idem: 0, 22: 0, 23: 0}
    epoch = dict.fromkeys(seq, 0)
    txn_pending: dict[int, list] = {}  # producer -> (key, offset, value) of its open transaction
    last_idem: bytes | None = None
    n = 0

    def value_for(keep: bool) -> bytes | None:
        nonlocal n
        n += 1
        return b"v%d" % n + b"-" * 30 if keep else None

    def check(plog):
        batches, records = consumed(plog)
        records = [r for r in records if r.offset >= plog.log_start_offset]
        offsets = [r.offset for r in records]
        assert offsets == sorted(set(offsets))
        bases = [b.base_offset for b in batches]
        assert bases == sorted(set(bases))
        return latest(records)

    def append_as_client(plog, pid, build, now):
        """Append with the producer's epoch and next sequence; a producer whose state went
        with the records DeleteRecords removed bumps its epoch and starts again at sequence
        0, as clients do (KIP-360)."""
        try:
            return plog.append(build(seq[pid], epoch[pid]), now)
        except (UnknownProducerIdError, OutOfOrderSequenceError):
            seq[pid] = 0
            epoch[pid] += 1
            return plog.append(build(0, epoch[pid]), now)

    def end_txn(plog, pid, kind, now):
        plog.append(marker(pid, kind, now, epoch[pid]), now, origin=ORIGIN_COORDINATOR)

    truth: dict[bytes, tuple[int, bytes | None]] = {}
    try:
        for step in ops:
            kind = step[0]
            now = clock.now_ms()
            if kind == "put":
                pairs = [(k, value_for(keep)) for k, keep in step[1]]
                info = plog.append(build_batch([(k, v, [("s", b"1")], now) for k, v in pairs],
                                               compression=step[2]), now)
                for i, (k, v) in enumerate(pairs):
                    truth[k] = (info.base_offset + i, v)
            elif kind == "idem":
                v = value_for(step[2])
                info = append_as_client(plog, pid_idem, lambda s, e: build_batch(
                    [(step[1], v, [], now)], producer_id=pid_idem, producer_epoch=e,
                    base_sequence=s), now)
                last_idem = build_batch([(step[1], v, [], now)], producer_id=pid_idem,
                                        producer_epoch=epoch[pid_idem], base_sequence=seq[pid_idem])
                last_idem_offset = info.base_offset
                seq[pid_idem] += 1
                truth[step[1]] = (info.base_offset, v)
            elif kind == "txn":
                v, pid = value_for(step[2]), step[3]
                info = append_as_client(plog, pid, lambda s, e: build_batch(
                    [(step[1], v, [], now)], producer_id=pid, producer_epoch=e, base_sequence=s,
                    is_transactional=True), now)
                seq[pid] += 1
                txn_pending.setdefault(pid, []).append((step[1], info.base_offset, v))
            elif kind == "end_txn":
                pid = step[2]
                if pid in txn_pending:
                    end_txn(plog, pid, step[1], now)
                    for k, off, v in txn_pending.pop(pid):
                        if step[1] == COMMIT and off >= plog.log_start_offset and (
                                k not in truth or truth[k][0] < off):
                            truth[k] = (off, v)
            elif kind == "tick":
                clock.advance(step[1])
            elif kind in ("clean", "crash_in_clean"):
                plog.flush()
                plog.roll(clock.now_ms())
                before = {b.base_offset: b.tobytes() for b in read_all(plog)}
                if kind == "clean":
                    result = Cleaner(step[1]).clean(plog, clock.now_ms())
                    if result is not None:
                        # Everything at or past the cleaner's position is untouched.
                        after = {b.base_offset: b.tobytes() for b in read_all(plog)}
                        for base, raw in before.items():
                            if base >= result.end_offset:
                                assert after.get(base) == raw
                        # Below it, no aborted record is left (one kept would be invisible
                        # to read_committed consumers, so only this sees it).
                        assert not aborted_left(plog, result.end_offset)
                else:
                    io.armed = io.calls + step[1]
                    try:
                        Cleaner(4).clean(plog, clock.now_ms())
                        io.armed = None
                    except SimulatedCrash:
                        crash(plog)
                        plog = PartitionLog.open(directory, "t", 0, config, clock=clock, io=io,
                                                 clean_shutdown=False)
            elif kind == "restart":
                if step[1]:
                    crash(plog)
                else:
                    plog.close()
                # Producer state (snapshots) and the aborted-transaction index are derived
                # data: either is rebuilt from the log.
                lost = {"snapshot": (".snapshot",), "txnindex": (".txnindex",),
                        "both": (".snapshot", ".txnindex")}[step[2]]
                for name in os.listdir(directory):
                    if name.endswith(lost):
                        os.unlink(os.path.join(directory, name))
                plog = PartitionLog.open(directory, "t", 0, config, clock=clock, io=io,
                                         clean_shutdown=not step[1])
                if last_idem is not None and last_idem_offset >= plog.log_start_offset:
                    leo = plog.log_end_offset
                    dup = plog.append(last_idem, clock.now_ms())
                    assert dup.base_offset == last_idem_offset and plog.log_end_offset == leo
            elif kind == "delete_records":
                # DeleteRecords (a compact,delete topic), often inside a segment and past
                # the first batches of an open transaction.
                plog.flush()
                target = min(plog.log_start_offset + step[1], plog.log_end_offset)
                plog.delete_records_before(target)
                truth = {k: (o, v) for k, (o, v) in truth.items() if o >= target}
            got = check(plog)
            for key, (offset, value) in truth.items():
                if value is None:
                    assert key not in got or got[key] == (offset, None)
                else:
                    assert got.get(key) == (offset, value), (key, got.get(key), offset, value)
        # Finally: close the transactions, clean twice across the delete horizon.
        for pid in txn_pending:
            end_txn(plog, pid, ABORT, clock.now_ms())
        for _ in range(2):
            plog.flush()
            plog.roll(clock.now_ms())
            Cleaner(100).clean(plog, clock.now_ms())
            clock.advance(1001)
        plog.flush()
        plog.roll(clock.now_ms())
        Cleaner(100).clean(plog, clock.now_ms())
        got = check(plog)
        assert {k: v for k, (o, v) in got.items()} == {k: v for k, (o, v) in truth.items() if v is not None}
        end = read_checkpoint(directory).first_dirty_offset
        assert not [b for b in read_all(plog) if b.base_offset < end and not b.is_control
                    for r in b.records() if r.value is None]
        assert not aborted_left(plog, end)
    finally:
        plog.close()

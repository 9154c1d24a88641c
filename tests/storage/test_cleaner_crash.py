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
from kafkito.storage import FileIO, PartitionLog
from kafkito.storage.cleaner import Cleaner, read_checkpoint
from kafkito.storage.cleaner import Cleaner as CleanerClass
from kafkito.storage.offset_map import ACCELERATED, new_offset_map

from cleanerlib import (
    ABORT,
    COMMIT,
    COMPACT,
    CrashingIO,
    FailingRenameIO,
    SimulatedCrash,
    append_marker,
    consumed,
    latest,
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
    st.tuples(st.just("txn"), st.sampled_from(KEYS), st.booleans()),
    st.tuples(st.just("end_txn"), st.sampled_from([ABORT, COMMIT])),
    st.tuples(st.just("clean"), st.integers(1, 12)),
    st.tuples(st.just("crash_in_clean"), st.integers(1, 60)),
    st.tuples(st.just("restart"), st.booleans()),
    st.tuples(st.just("tick"), st.sampled_from([10, 400, 1500])),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(ops=st.lists(op, min_size=5, max_size=45))
@pytest.mark.parametrize("accelerated", [pytest.param(True, marks=pytest.mark.skipif(
    not ACCELERATED, reason="storage/_offsetmap.c not built")), False], ids=["c-map", "python-map"])
def test_random_writes_cleans_and_crashes_keep_exactly_the_latest_values(tmp_path_factory, clock, ops,
                                                                         accelerated):
    def Cleaner(capacity):  # noqa: N802: the cleaner under test, on the C map or the reference
        return CleanerClass(capacity, new_map=lambda: new_offset_map(accelerated))

    directory = str(tmp_path_factory.mktemp("prop"))
    config = msgspec.structs.replace(COMPACT, delete_retention_ms=1000)
    io = CrashingIO()
    plog = PartitionLog.open(directory, "t", 0, config, clock=clock, io=io)
    pid_idem, pid_txn = 11, 22
    seq = {pid_idem: 0, pid_txn: 0}
    txn_open = False
    last_idem: bytes | None = None
    n = 0

    def value_for(keep: bool) -> bytes | None:
        nonlocal n
        n += 1
        return b"v%d" % n + b"-" * 30 if keep else None

    def check(plog):
        batches, records = consumed(plog)
        offsets = [r.offset for r in records]
        assert offsets == sorted(set(offsets))
        bases = [b.base_offset for b in batches]
        assert bases == sorted(set(bases))
        return latest(records)

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
                last_idem = build_batch([(step[1], v, [], now)], producer_id=pid_idem,
                                        producer_epoch=0, base_sequence=seq[pid_idem])
                info = plog.append(last_idem, now)
                last_idem_offset = info.base_offset
                seq[pid_idem] += 1
                truth[step[1]] = (info.base_offset, v)
            elif kind == "txn":
                v = value_for(step[2])
                plog.append(build_batch([(step[1], v, [], now)], producer_id=pid_txn, producer_epoch=0,
                                        base_sequence=seq[pid_txn], is_transactional=True), now)
                seq[pid_txn] += 1
                txn_open = True
                pending = getattr(plog, "_test_pending", [])
                pending.append((step[1], plog.log_end_offset - 1, v))
                plog._test_pending = pending
            elif kind == "end_txn":
                if txn_open:
                    append_marker(plog, pid_txn, step[1], now)
                    if step[1] == COMMIT:
                        for k, off, v in plog._test_pending:
                            if k not in truth or truth[k][0] < off:
                                truth[k] = (off, v)
                    plog._test_pending = []
                    txn_open = False
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
                else:
                    io.armed = io.calls + step[1]
                    try:
                        Cleaner(4).clean(plog, clock.now_ms())
                        io.armed = None
                    except SimulatedCrash:
                        pending = getattr(plog, "_test_pending", [])
                        crash(plog)
                        plog = PartitionLog.open(directory, "t", 0, config, clock=clock, io=io,
                                                 clean_shutdown=False)
                        plog._test_pending = pending
            elif kind == "restart":
                pending = getattr(plog, "_test_pending", [])
                if step[1]:
                    crash(plog)
                else:
                    plog.close()
                for name in os.listdir(directory):  # producer state rebuilt from the log
                    if name.endswith(".snapshot"):
                        os.unlink(os.path.join(directory, name))
                plog = PartitionLog.open(directory, "t", 0, config, clock=clock, io=io,
                                         clean_shutdown=not step[1])
                plog._test_pending = pending
                if last_idem is not None:
                    leo = plog.log_end_offset
                    dup = plog.append(last_idem, clock.now_ms())
                    assert dup.base_offset == last_idem_offset and plog.log_end_offset == leo
            got = check(plog)
            for key, (offset, value) in truth.items():
                if value is None:
                    assert key not in got or got[key] == (offset, None)
                else:
                    assert got.get(key) == (offset, value), (key, got.get(key), offset, value)
        # Finally: close the transaction, clean twice across the delete horizon.
        if txn_open:
            append_marker(plog, pid_txn, ABORT, clock.now_ms())
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
    finally:
        plog.close()

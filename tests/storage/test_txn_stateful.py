"""A stateful model of a partition's transactions: random transactional and plain appends,
commits and aborts, stray markers, flushes, rolls, DeleteRecords, retention, clean restarts,
kill -9, power losses (SimIO: unsynced writes lost or torn) and lost ``.txnindex`` files.

The model is the history of what was appended at which offset. After every step the log's
last stable offset and what a read_committed consumer gets (through the log's aborted list,
with the consumer's own algorithm) must equal what the history says: the LSO is the first
offset of the earliest transaction that is open or whose marker is not flushed (at least
the log start, at most the high watermark), and read_committed serves, below it, the plain
records and those of committed transactions. A crash keeps every flushed batch and
whichever unflushed ones the disk kept (the history is cut to what the log holds)."""

from __future__ import annotations

import os
import random
import shutil
import tempfile

import msgspec
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sim.simio import Faults, SimIO
from storage_testlib import open_log
from test_transactions import committed_view

from kafkito.records import build_batch
from kafkito.storage import LogConfig, ManualClock
from kafkito.storage.handles import OpenFiles
from kafkito.storage.txn_index import TXN_INDEX_SUFFIX

TS = 1_700_000_000_000
CONFIG = LogConfig(segment_bytes=500, index_interval_bytes=128, file_delete_delay_ms=0,
                   retention_bytes=-1)


class Entry:
    """One appended batch as the model knows it."""

    def __init__(self, offset: int, count: int, kind: str, pid: int = -1, commit: bool = False,
                 seq: int = -1):
        self.offset, self.count, self.kind, self.pid, self.commit = offset, count, kind, pid, commit
        self.seq = seq

    @property
    def last(self) -> int:
        return self.offset + self.count - 1


class TxnLogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = tempfile.mkdtemp(prefix="txn-stateful-")
        self.io = SimIO(os.path.join(self.root, "d"), random.Random(5), Faults(torn_writes=True))
        self.path = os.path.join(self.root, "d", "t-0")
        self.clock = ManualClock(TS)
        self.plog = self._open(clean=True)
        self.history: list[Entry] = []
        self.next_pid = 100
        self.open: dict[int, int] = {}  # pid -> records appended (its next sequence)
        self.hw = 0

    def _open(self, clean: bool):
        return open_log(self.path, self.clock, CONFIG, io=self.io, files=OpenFiles(64),
                        clean_shutdown=clean)

    def teardown(self) -> None:
        try:
            self.plog.close()
        except Exception:
            pass
        shutil.rmtree(self.root, ignore_errors=True)

    # -- appends ----------------------------------------------------------------------------
    @rule(n=st.integers(1, 3), new=st.booleans(), pick=st.integers(0, 10))
    def txn_data(self, n, new, pick):
        if new or not self.open:
            pid = self.next_pid
            self.next_pid += 1
            self.open[pid] = 0
        else:
            pid = sorted(self.open)[pick % len(self.open)]
        seq = self.open[pid]
        batch = build_batch([(b"k", b"%d/%d" % (pid, seq + i), [], TS) for i in range(n)],
                            producer_id=pid, producer_epoch=0, base_sequence=seq,
                            is_transactional=True)
        info = self.plog.append(batch, self.clock.now_ms())
        self.open[pid] = seq + n
        self.history.append(Entry(info.base_offset, n, "txn", pid, seq=seq))

    @rule(n=st.integers(1, 3))
    def plain(self, n):
        values = [b"plain/%d/%d" % (self.plog.log_end_offset, i) for i in range(n)]
        info = self.plog.append(build_batch([(None, v, [], TS) for v in values]), self.clock.now_ms())
        self.history.append(Entry(info.base_offset, n, "plain"))

    @precondition(lambda self: self.open)
    @rule(pick=st.integers(0, 10), commit=st.booleans())
    def end(self, pick, commit):
        pid = sorted(self.open)[pick % len(self.open)]
        offset = self.plog.append_control(pid, 0, commit, 0, self.clock.now_ms())
        del self.open[pid]
        self.history.append(Entry(offset, 1, "marker", pid, commit))

    @rule(commit=st.booleans())
    def stray_marker(self, commit):
        pid = self.next_pid
        self.next_pid += 1
        offset = self.plog.append_control(pid, 0, commit, 0, self.clock.now_ms())
        self.history.append(Entry(offset, 1, "marker", pid, commit))

    # -- background work ---------------------------------------------------------------------
    @rule()
    def flush(self):
        self.hw = self.plog.flush()

    @rule()
    def roll(self):
        self.plog.roll()

    @rule(fraction=st.floats(0, 1))
    def delete_records(self, fraction):
        start = self.plog.log_start_offset
        target = start + int((self.hw - start) * fraction)
        self.plog.delete_records_before(target)
        self.hw = self.plog.high_watermark
        self._forget_unreadable()

    def _forget_unreadable(self):
        """An open transaction whose data all went below the log start is one the log no
        longer tracks (nothing of it can be read): its producer is done for the model (its
        coordinator's marker is a stray one then)."""
        start = self.plog.log_start_offset
        for pid in list(self.open):
            if not any(e.pid == pid and e.kind == "txn" and e.last >= start for e in self.history):
                del self.open[pid]

    @rule(keep_bytes=st.integers(300, 3000))
    def retention(self, keep_bytes):
        self.plog.update_config(msgspec.structs.replace(CONFIG, retention_bytes=keep_bytes))
        self.plog.apply_retention(self.clock.now_ms())
        self.plog.update_config(CONFIG)
        self._forget_unreadable()

    # -- restarts and crashes ------------------------------------------------------------------
    @rule(lose_index=st.booleans())
    def clean_restart(self, lose_index):
        self.plog.close()
        if lose_index:
            for name in os.listdir(self.path):
                if name.endswith(TXN_INDEX_SUFFIX):
                    os.unlink(os.path.join(self.path, name))
                    break
        self.plog = self._open(clean=True)
        self.hw = self.plog.high_watermark

    @rule()
    def kill(self):
        self.io.kill()
        self.io.revive()
        self._after_crash()

    @rule()
    def power_loss(self):
        self.io.power_loss()
        self.io.revive()
        self._after_crash()

    def _after_crash(self):
        flushed = self.hw
        self.plog = self._open(clean=False)
        leo = self.plog.log_end_offset
        assert leo >= flushed, "a crash took flushed data"
        assert all(e.last < leo or e.offset >= leo for e in self.history)
        # Unflushed batches may survive in any pattern (recovery isolates a torn one and
        # keeps what follows): the history keeps the ones the log holds. Everything below
        # the log start was flushed (DeleteRecords goes no further than the HW).
        start = self.plog.log_start_offset
        held = {b.base_offset for b in self.plog.batches(start)}
        self.history = [e for e in self.history if e.offset < start or e.offset in held]
        self.hw = self.plog.high_watermark
        assert self.hw == leo
        # What the history says is open now (a lost marker reopens its transaction).
        self.open = {}
        for e in self.history:
            if e.kind == "txn":
                self.open[e.pid] = e.seq + e.count
            elif e.kind == "marker":
                self.open.pop(e.pid, None)
        self._forget_unreadable()

    # -- the oracle ------------------------------------------------------------------------------
    def _expected(self) -> tuple[int, list[tuple[int, bytes]]]:
        hw, start = self.hw, self.plog.log_start_offset
        # A transaction begins at its first data batch still (partly) at or past the log
        # start; an open one with none there holds nothing, an unflushed marker holds itself.
        firsts: dict[int, int] = {}
        outcome: dict[int, tuple[int, bool]] = {}  # pid -> (marker offset, commit)
        for e in self.history:
            if e.kind == "txn" and e.last >= start:
                firsts.setdefault(e.pid, e.offset)
            elif e.kind == "marker":
                firsts.setdefault(e.pid, e.offset)
                outcome[e.pid] = (e.offset, e.commit)
        unstable = [first for pid, first in firsts.items()
                    if pid not in outcome or outcome[pid][0] >= hw]
        lso = hw if not unstable or min(unstable) >= hw else min(hw, max(min(unstable), start))
        seen = []
        for e in self.history:
            if e.kind == "plain" or (e.kind == "txn" and outcome.get(e.pid, (0, False))[1]):
                for i in range(e.count):
                    if start <= e.offset + i < lso:
                        value = (b"plain/%d/%d" % (e.offset, i) if e.kind == "plain"
                                 else b"%d/%d" % (e.pid, e.seq + i))
                        seen.append((e.offset + i, value))
        return lso, seen

    @invariant()
    def log_agrees_with_history(self):
        assert self.plog.high_watermark == self.hw
        lso, seen = self._expected()
        assert self.plog.last_stable_offset == lso
        assert committed_view(self.plog) == seen


TxnLogMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("TXN_STATEFUL_EXAMPLES", 100)), stateful_step_count=50,
    deadline=None)
test_txn_log_stateful = TxnLogMachine.TestCase

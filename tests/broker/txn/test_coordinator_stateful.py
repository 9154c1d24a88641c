"""Stateful test: producers drive the transaction coordinator in random order.

Hypothesis interleaves InitProducerId (also by a second incarnation of the same
transactional id, and a zombie that keeps using its old epoch), AddPartitionsToTxn,
EndTxn commit and abort, clock advances past transaction timeouts (the abort sweep),
writes of ``__transaction_state`` and of markers completing or not, and broker crashes
that lose whatever was not yet written, then replay the log.

What must hold:
- never two live epochs: an operation succeeds only with the identity the latest
  successful InitProducerId returned for its id, and marker epochs of a producer id never
  go down (a partition would refuse the later one);
- never a marker for a partition that was not added to that transaction;
- every transaction ends in exactly one of commit or abort: all markers of one
  transaction agree, an acknowledged commit ends in COMMIT markers and an acknowledged
  abort in ABORT markers, and no transaction's markers are followed by different ones.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from kafkito.broker.txn.coordinator import TxnConfig
from kafkito.broker.txn.records import TxnState
from kafkito.protocol import ErrorCode
from txn_harness import Driver

E = ErrorCode
IDS = ["a", "b"]
PARTITIONS = [("t", 0), ("t", 1), ("u", 0)]
TIMEOUT_MS = 5_000


class TxnMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.d = Driver(TxnConfig(transaction_abort_timed_out_transaction_cleanup_interval_ms=1000))
        self.latest: dict[str, tuple[int, int]] = {}  # id -> identity of the latest successful init
        self.stale: dict[str, tuple[int, int]] = {}  # id -> an older identity (a zombie)
        self.added: dict[str, set] = {tid: set() for tid in IDS}  # asked for in the current transaction
        self.outcome: dict[str, bool | None] = {tid: None for tid in IDS}  # markers seen for it
        self.acked_end: dict[str, bool | None] = {tid: None for tid in IDS}
        self.waiting: list[tuple[str, str, object, tuple[int, int], bool | None]] = []
        self.seen_markers = 0
        self.max_epoch: dict[int, int] = {}
        self.txn_no: dict[str, int] = {tid: 0 for tid in IDS}  # transactions completed per id
        self.results: dict[tuple[str, int], bool] = {}  # (id, number) -> committed?
        self.acked_added: dict[str, set] = {tid: set() for tid in IDS}  # adds answered NONE
        self.end_asked: dict[str, set] = {tid: set() for tid in IDS}  # outcomes the live producer asked for
        self.d.c.on_complete = self._completed

    # ------------------------------------------------------------ bookkeeping
    def _completed(self, job) -> None:
        self.d.completed.append(job)
        self._check_markers()
        # the transaction is over: the next one starts from nothing
        tid = job.transactional_id
        assert self.outcome[tid] == job.commit
        assert self.acked_added[tid] <= job.partitions, "an acknowledged partition got no marker"
        if job.commit not in self.end_asked[tid]:
            # aborted by the coordinator (timeout, or a new incarnation): the markers must
            # carry an epoch above the live producer's, fencing it at every partition
            live = self.latest[tid]
            assert job.producer_id != live[0] or job.producer_epoch > live[1], "abort did not fence"
        self.acked_added[tid] = set()
        self.end_asked[tid] = set()
        self.results[(tid, self.txn_no[tid])] = job.commit
        self.txn_no[tid] += 1
        self.added[job.transactional_id] = set()
        self.outcome[job.transactional_id] = None
        self.acked_end[job.transactional_id] = None

    def _check_markers(self) -> None:
        for job, tp in self.d.markers[self.seen_markers:]:
            tid = job.transactional_id
            assert tp in self.added[tid], f"marker for {tp} never added to {tid}'s transaction"
            if self.outcome[tid] is None:
                self.outcome[tid] = job.commit
            assert self.outcome[tid] == job.commit, "one transaction, two outcomes"
            if self.acked_end[tid] is not None:
                assert self.acked_end[tid] == job.commit
            assert job.producer_epoch >= self.max_epoch.get(job.producer_id, -1), "marker epoch went down"
            self.max_epoch[job.producer_id] = job.producer_epoch
        self.seen_markers = len(self.d.markers)

    def _settle(self) -> None:
        self._check_markers()
        still = []
        for kind, tid, waiter, ident, arg in self.waiting:
            if not waiter.done:
                still.append((kind, tid, waiter, ident, arg))
                continue
            self._answered(kind, tid, waiter.result, ident, arg)
        self.waiting = still

    def _answered(self, kind, tid, result, ident, arg) -> None:
        if kind == "init":
            if result.error == E.NONE:
                new = (result.producer_id, result.producer_epoch)
                old = self.latest.get(tid)
                if old is not None:
                    assert new > old or new[0] != old[0], "InitProducerId must fence the previous epoch"
                    self.stale[tid] = old
                self.latest[tid] = new
            return
        if result == E.NONE:
            assert ident == self.latest.get(tid), "an operation succeeded with a stale identity"
            if kind == "add":
                self.acked_added[tid] |= arg
            if kind == "end":
                commit, no = arg
                if (tid, no) in self.results:  # answered after its transaction completed
                    assert self.results[(tid, no)] == commit
                    return
                self.acked_end[tid] = commit
                if self.outcome[tid] is not None:  # markers already under way
                    assert self.outcome[tid] == commit

    def _call(self, kind, tid, waiter, ident, arg=None, write=False) -> None:
        self.waiting.append((kind, tid, waiter, ident, arg))
        if write:
            self.d.pump()
        self._settle()

    # ------------------------------------------------------------ rules
    @initialize()
    def start(self):
        for tid in IDS:
            self.init(tid, True)

    @rule(tid=st.sampled_from(IDS), write=st.booleans())
    def init(self, tid, write):
        d = self.d
        self._call("init", tid, d.c.init_producer_id(tid, TIMEOUT_MS, now_ms=d.now), None, write=write)

    @rule(tid=st.sampled_from(IDS), tps=st.sets(st.sampled_from(PARTITIONS), min_size=1, max_size=2),
          zombie=st.booleans(), write=st.booleans())
    def add(self, tid, tps, zombie, write):
        ident = (self.stale if zombie else self.latest).get(tid)
        if ident is None:
            return
        d = self.d
        w = d.c.add_partitions(tid, *ident, tps, now_ms=d.now)
        if ident == self.latest.get(tid):
            self.added[tid] |= tps  # only the live producer's partitions may be marked
        self._call("add", tid, w, ident, tps, write=write)

    @rule(tid=st.sampled_from(IDS), commit=st.booleans(), zombie=st.booleans(), write=st.booleans())
    def end(self, tid, commit, zombie, write):
        ident = (self.stale if zombie else self.latest).get(tid)
        if ident is None:
            return
        d = self.d
        w = d.c.end_txn(tid, *ident, commit, now_ms=d.now)
        # answered at once with success: a retry of the transaction that already ended
        no = self.txn_no[tid] - 1 if w.done else self.txn_no[tid]
        if not w.done and ident == self.latest.get(tid):
            self.end_asked[tid].add(commit)
        self._call("end", tid, w, ident, (commit, no), write=write)

    @rule(ms=st.integers(0, 4000))
    def advance(self, ms):
        self.d.advance(ms)
        self._settle()

    @rule(n=st.integers(1, 3))
    def write_some(self, n):
        """Write the first few queued facts and markers (not necessarily all)."""
        d, c = self.d, self.d.c
        for _ in range(n):
            writes = c.take_writes()
            for w in writes:
                d.log.extend(w.records())
                c.write_done(w, E.NONE)
            jobs = c.take_markers()
            for job in jobs:
                for tp in sorted(job.partitions):
                    d.markers.append((job, tp))
                c.markers_done(job, now_ms=d.now)
        self._settle()

    @rule()
    def fail_writes(self):
        c = self.d.c
        for w in c.take_writes():
            c.write_done(w, E.KAFKA_STORAGE_ERROR)
        self._settle()

    @rule()
    def pump(self):
        self.d.pump()
        self._settle()

    @rule()
    def crash(self):
        """The broker dies: queued writes and marker jobs are lost, parked requests with them."""
        self.d.restart()
        self.waiting = []
        self.d.c.on_complete = self._completed
        self._settle()

    # ------------------------------------------------------------ invariants
    @invariant()
    def coordinator_matches_latest(self):
        for tid, (pid, epoch) in self.latest.items():
            txn = self.d.c.txns.get(tid)
            if txn is None:
                continue
            m = txn.meta
            # the coordinator never goes back to an identity older than one it handed out
            assert (m.producer_id, m.producer_epoch) >= (pid, epoch) or m.producer_id != pid

    @invariant()
    def prepare_has_partitions_added(self):
        for tid, txn in self.d.c.txns.items():
            if txn.meta.state in (TxnState.ONGOING, TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
                assert txn.meta.partitions <= self.added[tid] | set()

    def teardown(self):
        # liveness: with every write succeeding and time passing, every transaction ends
        d = self.d
        for _ in range(4):
            d.pump()
            d.advance(TIMEOUT_MS + 2000)
        d.pump()
        self._settle()
        for tid, txn in d.c.txns.items():
            assert txn.meta.state not in (TxnState.ONGOING, TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT), \
                (tid, txn.meta)
        assert not self.waiting, "a request was never answered"


TestTxnCoordinator = TxnMachine.TestCase
TestTxnCoordinator.settings = settings(settings(), stateful_step_count=40, max_examples=max(150, settings().max_examples))

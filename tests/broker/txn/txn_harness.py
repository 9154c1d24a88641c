"""Drive the pure TransactionCoordinator without trio: an in-memory __transaction_state
log, markers recorded instead of written, and restarts that replay the log."""

from __future__ import annotations

import itertools

from kafkito.broker.txn.coordinator import MarkerJob, TransactionCoordinator, TxnConfig
from kafkito.protocol import ErrorCode


class Driver:
    def __init__(self, config: TxnConfig | None = None) -> None:
        self.config = config or TxnConfig()
        self._pids = itertools.count(1000)
        self.log: list[tuple[bytes, bytes | None]] = []  # the durable __transaction_state
        self.markers: list[tuple[MarkerJob, tuple[str, int]]] = []  # every marker written, in order
        self.completed: list[MarkerJob] = []
        self.now = 0
        self.c = self._new()
        self.c.start(self.now)

    def _new(self) -> TransactionCoordinator:
        c = TransactionCoordinator(self.config, next_producer_id=lambda: next(self._pids))
        c.on_complete = self.completed.append
        return c

    def pump(self) -> None:
        """Append every queued write and write every queued marker, until quiet."""
        c = self.c
        while True:
            writes, jobs = c.take_writes(), c.take_markers()
            if not writes and not jobs:
                return
            for w in writes:
                self.append(w)
                c.write_done(w, ErrorCode.NONE)
            for job in jobs:
                for tp in sorted(job.partitions):
                    self.markers.append((job, tp))
                c.markers_done(job, now_ms=self.now)

    def append(self, write) -> None:
        """Make ``write`` durable (here: the in-memory log)."""
        self.log.extend(write.records())

    def advance(self, ms: int) -> None:
        self.now += ms
        self.c.poll(self.now)

    def restart(self) -> None:
        """A crash: whatever was queued and not written is lost; the log is replayed."""
        self.c = self._new()
        for key, value in self.log:
            self.c.replay(key, value)
        self.c.finish_load(self.now)

    # conveniences: one call, pumped, its result
    def init(self, tid: str, timeout_ms: int = 60_000, **kw):
        w = self.c.init_producer_id(tid, timeout_ms, now_ms=self.now, **kw)
        self.pump()
        return w.result

    def add(self, tid: str, pid: int, epoch: int, *tps):
        w = self.c.add_partitions(tid, pid, epoch, tps, now_ms=self.now)
        self.pump()
        return w.result

    def end(self, tid: str, pid: int, epoch: int, commit: bool):
        w = self.c.end_txn(tid, pid, epoch, commit, now_ms=self.now)
        self.pump()
        return w.result

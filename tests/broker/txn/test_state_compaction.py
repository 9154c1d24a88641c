"""Compaction of ``__transaction_state`` never changes a transactional id's state (issues 12 + 13).

The pure coordinator (txn_harness.Driver) writes its records into a real compacted
``PartitionLog``; storage's real ``Cleaner`` cleans it at random moments, past delete
horizons too (transactional ids expired by ``transactional.id.expiration.ms`` leave
tombstones, which go). A restart loads the cleaned log through the shell's own replay
(``replay_partition``): every id must describe as before (state, producer id, epoch,
timeout, partitions), a re-init must bump from the reloaded epoch, and the previous
epoch must stay fenced.
"""

from __future__ import annotations

import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from txn_harness import Driver

from kafkito.broker.coordinator_runtime import replay_partition
from kafkito.broker.txn.coordinator import TxnConfig
from kafkito.protocol import ErrorCode as E
from kafkito.records import build_batch
from kafkito.storage import LogConfig, ManualClock, PartitionLog
from kafkito.storage.cleaner import Cleaner
from kafkito.storage.log import ORIGIN_COORDINATOR

COMPACT = LogConfig(cleanup_policy=("compact",), segment_bytes=1024, index_interval_bytes=256,
                    delete_retention_ms=1000, file_delete_delay_ms=0, min_cleanable_dirty_ratio=0.0)
TIDS = ("a", "b", "c", "d")
TPS = (("out", 0), ("out", 1))
# Short expiry: ids idle this long are removed (tombstoned) within the test.
CONFIG = TxnConfig(transactional_id_expiration_ms=5_000,
                   transaction_remove_expired_transaction_cleanup_interval_ms=1_000)


class LoggedDriver(Driver):
    """The Driver, with ``__transaction_state`` a real compacted log."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.clock = ManualClock(1_700_000_000_000)
        self.plog = PartitionLog.open(directory, "__transaction_state", 0, COMPACT, clock=self.clock)
        self.cleans = 0
        super().__init__(CONFIG)

    def append(self, write) -> None:
        now = self.clock.now_ms()
        batch = build_batch([(k, v, None, now) for k, v in write.records()])
        write.offset = self.plog.append(batch, now, origin=ORIGIN_COORDINATOR).last_offset

    def advance(self, ms: int) -> None:
        self.clock.advance(ms)
        super().advance(ms)
        self.pump()

    def clean(self, past_horizon: bool) -> None:
        self.plog.flush()
        self.plog.roll(self.clock.now_ms())
        if past_horizon:
            self.advance(COMPACT.delete_retention_ms + 1)
        if Cleaner(1000).clean(self.plog, self.clock.now_ms()) is not None:
            self.cleans += 1

    def restart(self) -> None:
        self.plog.close()
        self.plog = PartitionLog.open(self.directory, "__transaction_state", 0, COMPACT, clock=self.clock)
        self.c = self._new()
        replay_partition(self.c, 0, self.plog)
        self.c.finish_load(self.now)
        self.pump()

    def described(self) -> dict:
        return {d.transactional_id: d for d in self.c.describe(TIDS, now_ms=self.now)}


ops = st.lists(st.one_of(
    st.tuples(st.just("init"), st.sampled_from(TIDS)),
    st.tuples(st.just("add"), st.sampled_from(TIDS), st.sampled_from(TPS)),
    st.tuples(st.just("end"), st.sampled_from(TIDS), st.booleans()),
    st.tuples(st.just("advance"), st.sampled_from([10, 2_000, 6_000])),
    st.tuples(st.just("clean"), st.booleans()),
    st.just(("restart",)),
), max_size=40)


def _run(sequence) -> LoggedDriver:
    with tempfile.TemporaryDirectory() as directory:
        d = LoggedDriver(directory)
        ids: dict[str, tuple[int, int]] = {}  # tid -> (producer id, epoch) its producer holds
        try:
            for op in sequence:
                kind = op[0]
                if kind == "init":
                    r = d.init(op[1])
                    if r.error == E.NONE:
                        ids[op[1]] = (r.producer_id, r.producer_epoch)
                elif kind == "add" and op[1] in ids:
                    d.add(op[1], *ids[op[1]], op[2])
                elif kind == "end" and op[1] in ids:
                    d.end(op[1], *ids[op[1]], op[2])
                elif kind == "advance":
                    d.advance(op[1])
                elif kind == "clean":
                    d.clean(op[1])
                elif kind == "restart":
                    before = d.described()
                    d.restart()
                    assert d.described() == before, sequence
            # Finally: clean past every horizon, restart, and each id reloads as it was;
            # a re-init bumps from the reloaded epoch and fences the one before.
            d.clean(True)
            d.clean(True)
            before = d.described()
            d.restart()
            assert d.described() == before, sequence
            for tid, desc in before.items():
                if desc.error != E.NONE or desc.state in ("Ongoing", "PrepareCommit", "PrepareAbort"):
                    continue
                r = d.init(tid)
                assert r.error == E.NONE, (tid, r)
                assert (r.producer_id, r.producer_epoch) == (desc.producer_id, desc.producer_epoch + 1), (desc, r)
                fenced = d.add(tid, desc.producer_id, desc.producer_epoch, TPS[0])
                assert fenced == E.PRODUCER_FENCED, (tid, fenced)
            return d
        finally:
            d.plog.close()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_the_compacted_transaction_state_reloads_every_id(sequence):
    _run(sequence)


def test_many_transactions_per_id_cleaned_and_reloaded():
    seq = []
    for round_ in range(15):
        for tid in TIDS:
            seq += [("init", tid)] if round_ == 0 else []
            seq += [("add", tid, TPS[round_ % 2]), ("end", tid, round_ % 3 != 0)]
        seq.append(("clean", round_ % 4 == 3))
    seq.append(("restart",))
    # Two ids go idle past transactional.id.expiration.ms (tombstoned, then cleaned away
    # past the horizon); the other two keep working.
    seq += [("advance", 2_000), ("advance", 2_000)]
    seq += [x for tid in TIDS[2:] for x in (("add", tid, TPS[0]), ("end", tid, True))]
    seq += [("advance", 1_000)]  # _run then cleans twice past the horizon (2 s) and restarts
    d = _run(seq)
    assert d.cleans >= 3
    described = d.described()
    assert all(described[t].error == E.TRANSACTIONAL_ID_NOT_FOUND for t in TIDS[:2]), described
    assert all(described[t].error == E.NONE for t in TIDS[2:]), described

"""Compaction of ``__consumer_offsets`` never changes what a group reads (issues 12 + 13).

A live ``GroupCoordinator`` writes its facts into a real compacted ``PartitionLog`` as the
shell does (plain batches, TxnOffsetCommit's transactional batches, markers as the
transaction coordinator writes them), while storage's real ``Cleaner`` cleans it at random
moments, past delete horizons too: so the log gets offset gaps, superseded and aborted
records removed, markers and tombstones gone, down to no batch at all.
Loading the log (``replay_partition``, the shell's own replay) must give exactly the live
coordinator's offsets, stable and not, whatever the interleaving of plain commits,
transactional commits, aborts and deletions.
"""

from __future__ import annotations

import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kafkito.broker.coordinator_runtime import replay_partition
from kafkito.broker.group.coordinator import GroupCoordinator, OffsetCommitEntry
from kafkito.records import build_batch
from kafkito.storage import LogConfig, ManualClock, PartitionLog
from kafkito.storage.cleaner import Cleaner
from kafkito.storage.log import ORIGIN_COORDINATOR

COMPACT = LogConfig(cleanup_policy=("compact",), segment_bytes=1024, index_interval_bytes=256,
                    delete_retention_ms=1000, file_delete_delay_ms=0, min_cleanable_dirty_ratio=0.0)
GROUPS = ("g", "h")
TPS = [("t", 0), ("t", 1), ("u", 0)]
PIDS = (11, 12, 13)

ops = st.lists(st.one_of(
    st.tuples(st.just("plain"), st.sampled_from(GROUPS), st.sampled_from(TPS), st.integers(0, 99)),
    st.tuples(st.just("txn"), st.sampled_from(PIDS), st.sampled_from(GROUPS), st.sampled_from(TPS),
              st.integers(100, 199)),
    st.tuples(st.just("end"), st.sampled_from(PIDS), st.booleans()),
    st.tuples(st.just("delete"), st.sampled_from(GROUPS), st.sampled_from(TPS)),
    st.tuples(st.just("clean"), st.booleans()),
), max_size=40)


class Offsets:
    """The coordinator, its log, and the shell's writing between them."""

    def __init__(self, directory: str) -> None:
        self.clock = ManualClock(1_700_000_000_000)
        self.log = PartitionLog.open(directory, "__consumer_offsets", 0, COMPACT, clock=self.clock)
        self.live = GroupCoordinator()
        self.open: set[int] = set()
        self.cleans = 0
        self.gaps = 0  # most offset gaps seen after a clean
        self.emptied = False  # a clean left no batch at all (everything superseded, past horizons)

    def flush(self) -> None:
        now = self.clock.now_ms()
        for w in self.live.take_writes():
            records = [(k, v, None, now) for k, v in w.records()]
            if w.producer is None:
                batch = build_batch(records)
            else:
                batch = build_batch(records, producer_id=w.producer[0], producer_epoch=w.producer[1],
                                    is_transactional=True)
            w.offset = self.log.append(batch, now, origin=ORIGIN_COORDINATOR).last_offset
            self.live.write_done(w)
        self.clock.advance(1)

    def apply(self, op) -> None:
        kind = op[0]
        if kind == "plain":
            _, group, (topic, partition), value = op
            self.live.commit_offsets(group_id=group, member_id="", group_instance_id=None, generation_id=-1,
                                     topics=[(topic, [OffsetCommitEntry(partition, value)])], api_version=8,
                                     now_ms=self.clock.now_ms())
        elif kind == "txn":
            _, pid, group, (topic, partition), value = op
            self.live.commit_txn_offsets(group_id=group, producer_id=pid, producer_epoch=0, member_id="",
                                         group_instance_id=None, generation_id=-1,
                                         topics=[(topic, [OffsetCommitEntry(partition, value)])],
                                         now_ms=self.clock.now_ms())
            self.open.add(pid)
        elif kind == "end":
            _, pid, commit = op
            if pid not in self.open:
                return
            self.log.append_control(pid, 0, commit, 0, self.clock.now_ms())
            self.live.complete_txn(0, pid, commit)
            self.open.discard(pid)
        elif kind == "delete":
            _, group, (topic, partition) = op
            self.live.delete_offsets(group_id=group, topics=[(topic, [partition])], now_ms=self.clock.now_ms())
        else:
            _, past_horizon = op
            self.log.flush()
            self.log.roll(self.clock.now_ms())
            if past_horizon:
                self.clock.advance(COMPACT.delete_retention_ms + 1)
            if Cleaner(1000).clean(self.log, self.clock.now_ms()) is not None:
                self.cleans += 1
            batches = list(self.log.batches())
            self.gaps = max(self.gaps, sum(1 for a, b in zip(batches, batches[1:])
                                           if b.base_offset != a.last_offset + 1))
            self.emptied = self.emptied or not batches
        self.flush()

    def view(self, c: GroupCoordinator) -> dict:
        out = {}
        for group in GROUPS:
            for stable in (False, True):
                for topic, parts in c.fetch_offsets(group_id=group, topics=[(t, [p]) for t, p in TPS],
                                                    require_stable=stable, now_ms=0):
                    for f in parts:
                        out[(group, stable, topic, f.partition)] = (f.error, f.offset)
        return out

    def loaded(self) -> GroupCoordinator:
        c = GroupCoordinator()
        replay_partition(c, 0, self.log)
        c.finish_load(self.clock.now_ms())
        return c


def _check(sequence) -> Offsets:
    with tempfile.TemporaryDirectory() as directory:
        o = Offsets(directory)
        try:
            for op in sequence:
                o.apply(op)
                if op[0] == "clean":
                    assert o.view(o.loaded()) == o.view(o.live), (op, sequence)
            # Close every transaction, clean past every horizon (markers, tombstones and
            # emptied batches go), and compare once more, then after a reopen of the log.
            for pid in sorted(o.open):
                o.apply(("end", pid, True))
            o.apply(("clean", True))
            o.apply(("clean", True))
            assert o.view(o.loaded()) == o.view(o.live), sequence
            o.log.close()
            o.log = PartitionLog.open(directory, "__consumer_offsets", 0, COMPACT, clock=o.clock)
            assert o.view(o.loaded()) == o.view(o.live), sequence
            return o
        finally:
            o.log.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_loading_the_compacted_offsets_topic_gives_the_live_offsets(sequence):
    _check(sequence)


def test_plain_commit_between_txn_offsets_and_marker_through_a_real_clean():
    """The bug's shape, deterministic: the cleaner removes the transactional record the
    later plain commit superseded; load and live must both answer the plain commit."""
    o = _check([("txn", 11, "g", ("t", 0), 150), ("plain", "g", ("t", 0), 20), ("end", 11, True),
                ("clean", False), ("clean", True)])
    assert o.cleans >= 1


def test_gaps_and_an_emptied_log_replay_to_the_live_state():
    """Every record superseded or aborted, then past the horizon: what the cleaner leaves
    (gaps, then no batch at all below the log end offset) replays to the live (empty)
    state. (Coordinator-written transactional batches carry no sequence, so the producer
    keeps no "last batch" here for the cleaner to leave empty; client topics test that in
    tests/storage/test_cleaner.py.)"""
    seq = [("txn", 11, "g", ("t", 0), 150), ("end", 11, False), ("txn", 12, "g", ("t", 1), 160),
           ("end", 12, True), ("plain", "g", ("t", 1), 5), ("delete", "g", ("t", 1)),
           ("clean", True), ("clean", True)]
    o = _check(seq)
    assert o.cleans >= 2 and o.gaps >= 2 and o.emptied, (o.cleans, o.gaps, o.emptied)

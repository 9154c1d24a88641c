"""Transactional offsets in the group coordinator: pending until their marker, then
committed or dropped; the same when loading replays the batches and markers."""

from __future__ import annotations

from kafkito.broker.group.coordinator import GroupCoordinator, OffsetCommitEntry
from kafkito.protocol import ErrorCode as E


def _commit(c: GroupCoordinator, pid: int, offset: int, group: str = "g"):
    w = c.commit_txn_offsets(group_id=group, producer_id=pid, producer_epoch=0, member_id="",
                             group_instance_id=None, generation_id=-1,
                             topics=[("t", [OffsetCommitEntry(0, offset)])], now_ms=0)
    writes = c.take_writes()
    for write in writes:
        assert write.producer == (pid, 0)  # a transactional batch of the producer
        c.write_done(write)
    assert w.result == [("t", [(0, E.NONE)])]
    return writes


def _fetch(c, stable):
    (_, (f,)), = c.fetch_offsets(group_id="g", topics=[("t", [0])], require_stable=stable, now_ms=0)
    return f.error, f.offset


def test_pending_until_commit_marker():
    c = GroupCoordinator()
    _commit(c, 7, 10)
    assert _fetch(c, False) == (E.NONE, -1)
    assert _fetch(c, True) == (E.UNSTABLE_OFFSET_COMMIT, -1)
    c.complete_txn(0, 7, True)
    assert _fetch(c, True) == (E.NONE, 10)


def test_abort_marker_drops_them_and_keeps_the_committed_offset():
    c = GroupCoordinator()
    _commit(c, 7, 10)
    c.complete_txn(0, 7, True)
    _commit(c, 7, 20)
    c.complete_txn(0, 7, False)
    assert _fetch(c, True) == (E.NONE, 10)


def test_replay_applies_batches_and_markers_in_log_order():
    live = GroupCoordinator()
    log = []  # (kind, producer, payload) as the shell's load would see them
    for pid, offset, commit in ((7, 10, True), (8, 20, False), (7, 30, None)):
        for write in _commit(live, pid, offset):
            log.extend(("txn", pid, kv) for kv in write.records())
        if commit is not None:
            log.append(("marker", pid, commit))
    loaded = GroupCoordinator()
    for kind, pid, payload in log:
        if kind == "txn":
            loaded.replay_transactional(0, pid, *payload)
        else:
            loaded.replay_marker(0, pid, payload)
    loaded.finish_load(0)
    assert _fetch(loaded, False) == (E.NONE, 10)
    assert _fetch(loaded, True) == (E.UNSTABLE_OFFSET_COMMIT, -1)  # producer 7's second is open


def test_kip447_member_checks_for_a_group_with_members():
    c = GroupCoordinator()
    w = c.commit_txn_offsets(group_id="nobody", producer_id=1, producer_epoch=0, member_id="m",
                             group_instance_id=None, generation_id=3,
                             topics=[("t", [OffsetCommitEntry(0, 1)])], now_ms=0)
    assert w.result == [("t", [(0, E.ILLEGAL_GENERATION)])]

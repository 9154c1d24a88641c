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


# ------------------------------------------------------------------ compaction (issues 12 + 13)
class _Log:
    """The shell's part for these tests: writes get consecutive log offsets, and the log
    can be replayed whole or compacted as storage/cleaner.py compacts it (a record goes
    when a later record of its key exists, aborted transactions' records go; markers and
    tombstones stay, as they do until their delete horizon)."""

    def __init__(self) -> None:
        self.entries: list[tuple] = []  # (offset, kind, producer id, payload)

    def flush(self, c: GroupCoordinator) -> None:
        for write in c.take_writes():
            offset = len(self.entries)
            write.offset = offset  # one record a batch here: its last offset
            for kv in write.records():
                kind = "plain" if write.producer is None else "txn"
                pid = write.producer[0] if write.producer else -1
                self.entries.append((offset, kind, pid, kv))
            c.write_done(write)

    def marker(self, c: GroupCoordinator, pid: int, commit: bool) -> None:
        self.entries.append((len(self.entries), "marker", pid, commit))
        c.complete_txn(0, pid, commit)

    def compacted(self) -> list[tuple]:
        aborted, last = set(), {}
        ends = {}
        for offset, kind, pid, payload in self.entries:
            if kind == "marker":
                ends.setdefault(pid, []).append((offset, payload))
        for offset, kind, pid, payload in self.entries:
            if kind == "txn":
                end = next(commit for at, commit in ends.get(pid, []) if at > offset)
                if not end:
                    aborted.add(offset)
                    continue
            if kind != "marker":
                last[bytes(payload[0])] = offset
        return [e for e in self.entries if e[1] == "marker"
                or (e[0] not in aborted and last.get(bytes(e[3][0])) == e[0])]

    @staticmethod
    def load(entries: list[tuple]) -> GroupCoordinator:
        loaded = GroupCoordinator()
        for offset, kind, pid, payload in entries:
            if kind == "plain":
                loaded.replay(*payload, offset)
            elif kind == "txn":
                loaded.replay_transactional(0, pid, *payload, offset)
            else:
                loaded.replay_marker(0, pid, payload)
        loaded.finish_load(0)
        return loaded


def _plain(c: GroupCoordinator, offset: int) -> None:
    c.commit_offsets(group_id="g", member_id="", group_instance_id=None, generation_id=-1,
                     topics=[("t", [OffsetCommitEntry(0, offset)])], api_version=8, now_ms=0)


def _txn(c: GroupCoordinator, pid: int, offset: int) -> None:
    c.commit_txn_offsets(group_id="g", producer_id=pid, producer_epoch=0, member_id="",
                         group_instance_id=None, generation_id=-1,
                         topics=[("t", [OffsetCommitEntry(0, offset)])], now_ms=0)


def _delete(c: GroupCoordinator) -> None:
    c.delete_offsets(group_id="g", topics=[("t", [0])], now_ms=0)


def test_plain_commit_between_txn_offsets_and_commit_marker_wins_as_after_compaction():
    """A plain OffsetCommit written after a transaction's offset record but before its
    COMMIT marker is the later record of the key: the cleaner keeps it and removes the
    transactional one, so a restart serves it. Live must serve it too (Kafka compares the
    records' log offsets when the marker comes), or compaction changes the answer."""
    live, log = GroupCoordinator(), _Log()
    _txn(live, 7, 10)
    log.flush(live)
    _plain(live, 20)
    log.flush(live)
    log.marker(live, 7, True)
    assert _fetch(live, True) == (E.NONE, 20)
    assert _fetch(_Log.load(log.entries), True) == (E.NONE, 20)
    assert _fetch(_Log.load(log.compacted()), True) == (E.NONE, 20)


def test_txn_offsets_written_after_a_plain_commit_win_at_their_commit_marker():
    live, log = GroupCoordinator(), _Log()
    _plain(live, 20)
    log.flush(live)
    _txn(live, 7, 10)
    log.flush(live)
    log.marker(live, 7, True)
    for c in (live, _Log.load(log.entries), _Log.load(log.compacted())):
        assert _fetch(c, True) == (E.NONE, 10)


def test_offset_tombstone_between_txn_offsets_and_commit_marker_deletes_them_as_after_compaction():
    """The tombstone is the later record of the key: after compaction (and its delete
    horizon) neither record is left, so the offset is gone; live it must be gone too."""
    live, log = GroupCoordinator(), _Log()
    _plain(live, 5)
    log.flush(live)
    _txn(live, 7, 10)
    log.flush(live)
    _delete(live)
    log.flush(live)
    log.marker(live, 7, True)
    gone = [e for e in log.compacted() if e[1] == "marker"]  # tombstone past its horizon
    for c in (live, _Log.load(log.entries), _Log.load(log.compacted()), _Log.load(gone)):
        assert _fetch(c, True) == (E.NONE, -1)


def test_a_write_reported_out_of_log_order_does_not_overwrite_a_later_record():
    """A plain commit whose fsync completes after a later record of its key was applied
    (a transaction's offset at its marker): the log's later record is what a restart
    loads, so it is what stays live."""
    c = GroupCoordinator()
    _plain(c, 20)
    (plain_write,) = c.take_writes()
    _txn(c, 8, 30)
    (txn_write,) = c.take_writes()
    plain_write.offset, txn_write.offset = 5, 6
    c.write_done(txn_write)
    c.complete_txn(0, 8, True)  # marker at 7: offset 30 (record 6) applied
    c.write_done(plain_write)  # record 5, reported late
    assert _fetch(c, False) == (E.NONE, 30)

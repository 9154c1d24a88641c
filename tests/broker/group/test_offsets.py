"""The offset store on its own (Kafka's OffsetMetadataManager): commit, fetch, delete,
expiry and loading with no group of any kind behind the offsets; and, through the
coordinator, offsets that outlive the group that committed them."""

from __future__ import annotations

import itertools

from consumer_client import Client

from kafkito.broker.coordinator_runtime import Outbox
from kafkito.broker.group.coordinator import GroupConfig, GroupCoordinator, GroupFacts, partition_for
from kafkito.broker.group.offsets import OffsetCommitEntry, OffsetExpiration, OffsetStore
from kafkito.broker.group.records import decode_record
from kafkito.protocol import ErrorCode

E = ErrorCode
DAY_MS = 24 * 3600 * 1000
T0 = 1_000_000


class Store:
    """An OffsetStore with its outbox and a log of what was appended (encoded)."""

    def __init__(self, partitions: int = 3, retention_ms: int = 7 * DAY_MS) -> None:
        self.log: list[tuple[int, bytes, bytes | None]] = []
        self.outbox = Outbox(GroupFacts(), lambda g: partition_for(g, partitions),
                             on_queued=lambda facts: self.store.queued(facts),
                             on_written=lambda facts, error, offset: self.store.written(facts, error, offset))
        self.store = OffsetStore(self.outbox, offset_metadata_max_bytes=8, offsets_retention_ms=retention_ms)

    def flush(self, error: ErrorCode = E.NONE) -> int:
        writes = self.outbox.take()
        for w in writes:
            if error == E.NONE:
                self.log.extend((w.partition, k, v) for k, v in w.records())
            self.outbox.done(w, error)
        return len(writes)

    def commit(self, group, offsets, now_ms=T0, retention_time_ms=-1, flush=True, metadata="m"):
        by_topic: dict[str, list] = {}
        for (t, p), o in offsets.items():
            by_topic.setdefault(t, []).append(OffsetCommitEntry(p, o, metadata=metadata))
        w = self.store.commit(group, list(by_topic.items()), retention_time_ms=retention_time_ms, now_ms=now_ms)
        if flush:
            self.flush()
        return w

    def committed(self, group) -> dict[tuple[str, int], int]:
        return {(t, f.partition): f.offset for t, row in self.store.fetch(group, None) for f in row}

    def reloaded(self) -> OffsetStore:
        fresh = Store()
        for _, key, value in self.log:
            k, v = decode_record(key, value)
            fresh.store.replay(k, v)
        return fresh.store


def test_commit_is_visible_only_once_written():
    s = Store()
    w = s.commit("g", {("t", 0): 5, ("t", 1): 6}, flush=False)
    assert not w.done and s.committed("g") == {}
    assert s.store.has_group("g") and s.store.has_pending("g")  # queued: the id exists
    assert s.flush() == 1
    assert w.result == [("t", [(0, E.NONE), (1, E.NONE)])]
    assert s.committed("g") == {("t", 0): 5, ("t", 1): 6} and not s.store.has_pending("g")
    fetched = s.store.fetch("g", [("t", [1, 9])])
    assert [(f.partition, f.offset, f.metadata) for f in fetched[0][1]] == [(1, 6, "m"), (9, -1, "")]


def test_failed_write_answers_mapped_errors_and_applies_nothing():
    s = Store()
    w = s.commit("g", {("t", 0): 5}, flush=False)
    s.flush(E.KAFKA_STORAGE_ERROR)
    assert w.result == [("t", [(0, E.NOT_COORDINATOR)])]
    w = s.commit("g", {("t", 0): 5}, flush=False)
    s.flush(E.MESSAGE_TOO_LARGE)
    assert w.result == [("t", [(0, E.INVALID_COMMIT_OFFSET_SIZE)])]
    assert s.committed("g") == {} and not s.store.has_group("g")


def test_metadata_over_the_limit_is_refused_per_partition():
    s = Store()
    w = s.store.commit("g", [("t", [OffsetCommitEntry(0, 1, metadata="x" * 9),
                                    OffsetCommitEntry(1, 2, metadata="x" * 8)])], retention_time_ms=-1, now_ms=T0)
    s.flush()
    assert w.result == [("t", [(0, E.OFFSET_METADATA_TOO_LARGE), (1, E.NONE)])]
    assert s.committed("g") == {("t", 1): 2}


def test_delete_tombstones_only_unsubscribed_topics():
    s = Store()
    s.commit("g", {("a", 0): 1, ("b", 0): 2})
    w = s.store.delete("g", [("a", [0]), ("b", [0, 7])], is_subscribed=lambda topic: topic == "a")
    s.flush()
    assert w.result == (E.NONE, [("a", [(0, E.GROUP_SUBSCRIBED_TO_TOPIC)]), ("b", [(0, E.NONE), (7, E.NONE)])])
    assert s.committed("g") == {("a", 0): 1}
    # only the committed partition got a tombstone, not the never-committed b-7
    assert [(k, v) for _, k, v in s.log if v is None] == [(s.log[1][1], None)]


def test_tombstones_cover_commits_still_in_flight():
    s = Store()
    s.commit("g", {("t", 0): 1})
    s.commit("g", {("t", 1): 2}, flush=False)  # queued, not written
    facts = s.store.tombstones("g")
    assert sorted((k.topic, k.partition) for _, (k, v) in facts) == [("t", 0), ("t", 1)]
    s.outbox.write(facts)
    s.flush()
    assert s.committed("g") == {} and not s.store.has_group("g")


def test_expiry_from_commit_from_a_base_and_by_explicit_deadline():
    s = Store(retention_ms=DAY_MS)
    s.commit("g", {("t", 0): 1}, now_ms=T0)
    s.commit("g", {("t", 1): 2}, now_ms=T0 + DAY_MS // 2)
    s.commit("g", {("t", 2): 3}, now_ms=T0, retention_time_ms=DAY_MS * 10)
    facts, all_expired = s.store.expire("g", OffsetExpiration(), T0 + DAY_MS)
    assert [k.partition for _, (k, _) in facts] == [0] and not all_expired
    # every offset ages from the base instead (an empty group's: when it emptied)
    facts, _ = s.store.expire("g", OffsetExpiration(base_timestamp_ms=T0 - DAY_MS), T0)
    assert [k.partition for _, (k, _) in facts] == [0, 1]
    # a topic the group reads never expires
    facts, all_expired = s.store.expire("g", OffsetExpiration(is_subscribed=lambda t: True), T0 + 99 * DAY_MS)
    assert facts == [] and not all_expired
    # the explicit retention (OffsetCommit v2-v4) is its own deadline
    facts, all_expired = s.store.expire("g", OffsetExpiration(), T0 + DAY_MS * 10)
    assert [k.partition for _, (k, _) in facts] == [0, 1, 2] and all_expired


def test_load_replays_to_the_same_table():
    s = Store()
    s.commit("g", {("t", 0): 1, ("u", 3): 4})
    s.commit("h", {("t", 0): 9})
    s.commit("g", {("t", 0): 2})
    s.outbox.write(s.store.tombstones("h"))
    s.flush()
    assert {p for p, _, _ in s.log} == {partition_for("g", 3), partition_for("h", 3)}
    reloaded = s.reloaded()
    assert reloaded.offsets == s.store.offsets
    assert reloaded.group_ids() == ["g"]


# ------------------------------------------------------------------ through the coordinator
def test_simple_commit_creates_no_classic_group():
    coord = GroupCoordinator(GroupConfig())
    w = coord.commit_offsets(group_id="s", member_id="", group_instance_id=None, generation_id=-1,
                             topics=[("t", [OffsetCommitEntry(0, 3)])], api_version=8, now_ms=T0)
    for write in coord.take_writes():
        coord.write_done(write)
    assert w.result == [("t", [(0, E.NONE)])]
    assert coord.classic.groups == {} and coord.offset_store.has_group("s")
    # ... yet it is a group to every classic request: an Empty one
    assert coord.describe_group("s", now_ms=T0).state == "Empty"
    assert [(g.group_id, g.state) for g in coord.list_groups(now_ms=T0)] == [("s", "Empty")]


def test_emptied_kip848_group_keeps_its_offsets_without_becoming_classic():
    ids = itertools.count()
    coord = GroupCoordinator(GroupConfig(offsets_retention_ms=DAY_MS),
                             new_member_suffix=lambda: f"m{next(ids)}")
    coord.start(T0)  # arms the retention sweep
    a = Client(coord, "g", ["t"])
    a.heartbeat(T0, {"t": 2})
    w = coord.commit_offsets(group_id="g", member_id=a.member_id, group_instance_id=None,
                             generation_id=a.epoch, topics=[("t", [OffsetCommitEntry(0, 5)])],
                             api_version=9, now_ms=T0)
    for write in coord.take_writes():
        coord.write_done(write)
    assert w.result == [("t", [(0, E.NONE)])]
    a.leave(T0)
    assert "g" not in coord.consumer.groups
    assert "g" not in coord.classic.groups  # not converted
    assert coord.fetch_offsets(group_id="g", topics=[("t", [0])], now_ms=T0)[0][1][0].offset == 5
    # they age from their commit, as a simple group's do, and then go
    coord.poll(T0 + DAY_MS + GroupConfig().offsets_retention_check_interval_ms)
    for write in coord.take_writes():
        coord.write_done(write)
    assert coord.offsets == {} and coord.list_groups(now_ms=coord.now_ms) == []

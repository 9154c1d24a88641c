"""The classic group coordinator, scenario by scenario (each pins a Kafka behaviour)."""

import pytest

from group_harness import Harness, assignment, parse_assignment, subscription
from kafkito.broker.group.coordinator import GroupConfig, OffsetCommitEntry, partition_for
from kafkito.protocol import ErrorCode
from kafkito.broker.group.state import GroupState

E = ErrorCode


def state(h, group="g"):
    g = h.c.groups.get(group)
    return None if g is None else g.state


def stable_pair(h):
    """Two members A (leader) and B in a Stable generation; returns their join results."""
    a = h.join_new()
    assert a.done  # initial delay 0: alone in generation 1
    ra = a.result
    assert (ra.error, ra.generation_id, ra.leader) == (E.NONE, 1, ra.member_id)
    h.sync(ra, assignments=[(ra.member_id, assignment({"t": [0, 1, 2, 3]}))])
    b = h.join_new()
    assert not b.done and state(h) is GroupState.PREPARING_REBALANCE
    assert h.heartbeat(ra.member_id, 1) == E.REBALANCE_IN_PROGRESS
    a2 = h.join(member_id=ra.member_id)
    assert a2.done and b.done
    ra, rb = a2.result, b.result
    assert ra.generation_id == rb.generation_id == 2
    assert ra.leader == rb.leader == ra.member_id
    assert {m.member_id for m in ra.members} == {ra.member_id, rb.member_id} and rb.members == ()
    sb = h.sync(rb)
    assert not sb.done  # parked until the leader's assignment is stored
    sa = h.sync(ra, assignments=[(ra.member_id, assignment({"t": [0, 1]})),
                                 (rb.member_id, assignment({"t": [2, 3]}))])
    assert sa.done and sb.done
    assert parse_assignment(sa.result.assignment) == {"t": [0, 1]}
    assert parse_assignment(sb.result.assignment) == {"t": [2, 3]}
    assert state(h) is GroupState.STABLE
    return ra, rb


def test_member_id_required_then_join_alone():
    h = Harness()
    first = h.join()
    assert first.result.error == E.MEMBER_ID_REQUIRED and first.result.member_id.startswith("client-")
    w = h.join(member_id=first.result.member_id)
    r = w.result
    assert (r.error, r.generation_id, r.member_id, r.protocol_name, r.protocol_type) == (
        E.NONE, 1, first.result.member_id, "range", "consumer")
    assert state(h) is GroupState.COMPLETING_REBALANCE


def test_old_join_versions_get_a_member_id_at_once():
    h = Harness()
    w = h.join(v4=False)
    assert w.result.error == E.NONE and w.result.member_id


def test_two_members_then_one_expires():
    h = Harness()
    ra, rb = stable_pair(h)
    # B stops heartbeating; A keeps going.
    for _ in range(3):
        h.advance(3000)
        assert h.heartbeat(ra.member_id, 2) == E.NONE
    h.advance(999)
    assert state(h) is GroupState.STABLE
    h.advance(1)  # B's 10 s session has run out, noticed without any request from B
    assert h.heartbeat(ra.member_id, 2) == E.REBALANCE_IN_PROGRESS
    assert h.heartbeat(rb.member_id, 2) == E.UNKNOWN_MEMBER_ID
    a3 = h.join(member_id=ra.member_id)
    assert a3.result.generation_id == 3 and [m.member_id for m in a3.result.members] == [ra.member_id]


def test_member_that_does_not_rejoin_is_dropped_after_rebalance_timeout():
    h = Harness()
    ra, rb = stable_pair(h)
    c = h.join_new()  # third member: rebalance starts
    a = h.join(member_id=ra.member_id)
    assert not a.done
    # B keeps heartbeating but never rejoins: it stays alive until the rebalance times out
    for _ in range(9):
        h.advance(3000)
        assert h.heartbeat(rb.member_id, 2) == E.REBALANCE_IN_PROGRESS
    assert not a.done
    h.advance(3000)
    assert a.done and c.done and a.result.generation_id == 3
    assert {m.member_id for m in a.result.members} == {ra.member_id, c.result.member_id}
    assert h.heartbeat(rb.member_id, 2) == E.UNKNOWN_MEMBER_ID


def test_leave_group_triggers_rebalance_and_leader_moves():
    h = Harness()
    ra, rb = stable_pair(h)
    res = h.c.leave_group(group_id="g", members=[(ra.member_id, None)], now_ms=h.now)
    assert res.error == E.NONE and res.members == ((ra.member_id, None, E.NONE),)
    assert state(h) is GroupState.PREPARING_REBALANCE
    assert h.heartbeat(rb.member_id, 2) == E.REBALANCE_IN_PROGRESS
    b = h.join(member_id=rb.member_id)
    assert b.result.generation_id == 3 and b.result.leader == rb.member_id
    # leaving twice: unknown
    res = h.c.leave_group(group_id="g", members=[(ra.member_id, None)], now_ms=h.now)
    assert res.members[0][2] == E.UNKNOWN_MEMBER_ID


def test_last_member_leaving_empties_the_group_and_writes_it():
    h = Harness()
    a = h.join_new().result
    h.sync(a, assignments=[(a.member_id, b"x")])
    h.c.leave_group(group_id="g", members=[(a.member_id, None)], now_ms=h.now)
    assert state(h) is GroupState.EMPTY and h.c.groups["g"].generation_id == 2
    h.flush()
    h.restart()
    assert state(h) is GroupState.EMPTY and h.c.groups["g"].generation_id == 2


def test_protocol_selection_by_vote_and_inconsistent_protocols():
    h = Harness(GroupConfig(group_initial_rebalance_delay_ms=100))
    sub = subscription(["t"])
    ws = [h.join(v4=False, protocols=p) for p in (
        [("range", sub), ("roundrobin", sub)],
        [("roundrobin", sub), ("range", sub)],
        [("roundrobin", sub), ("sticky", sub), ("range", sub)],
    )]
    bad = h.join(v4=False, protocols=[("sticky", sub)])
    assert bad.result.error == E.INCONSISTENT_GROUP_PROTOCOL
    other_type = h.join(v4=False, protocol_type="connect")
    assert other_type.result.error == E.INCONSISTENT_GROUP_PROTOCOL
    h.advance(100)  # members arrived during the initial delay: it is extended once
    assert not ws[0].done
    h.advance(100)
    assert {w.result.protocol_name for w in ws} == {"roundrobin"}


def test_initial_rebalance_delay_gathers_members():
    h = Harness(GroupConfig(group_initial_rebalance_delay_ms=3000))
    a = h.join_new()
    h.advance(1000)
    b = h.join_new()
    h.advance(1999)
    assert not a.done
    h.advance(1)  # t=3000: B arrived meanwhile, so wait one more delay
    assert not a.done
    h.advance(3000)
    assert a.done and b.done and a.result.generation_id == b.result.generation_id == 1
    assert len(a.result.members) + len(b.result.members) == 2


def test_pending_member_blocks_rebalance_until_its_session_expires():
    h = Harness()
    ra, rb = stable_pair(h)
    pending = h.join()  # MEMBER_ID_REQUIRED, never comes back
    assert pending.result.error == E.MEMBER_ID_REQUIRED
    h.c.leave_group(group_id="g", members=[(rb.member_id, None)], now_ms=h.now)
    a = h.join(member_id=ra.member_id)
    assert not a.done  # waits for the pending member
    h.advance(10_000)
    assert a.done and a.result.generation_id == 3 and len(a.result.members) == 1


def test_follower_that_never_syncs_is_removed():
    h = Harness()
    a = h.join_new()
    ra = a.result
    h.sync(ra, assignments=[(ra.member_id, b"a")])
    b = h.join_new()
    a2 = h.join(member_id=ra.member_id)
    ra, rb = a2.result, b.result
    h.sync(ra, assignments=[(ra.member_id, b"a"), (rb.member_id, b"b")])
    assert state(h) is GroupState.STABLE
    # B heartbeats but never syncs: the sync phase times out after the rebalance timeout
    for _ in range(10):
        h.advance(3000)
        h.heartbeat(rb.member_id, 2)
        h.heartbeat(ra.member_id, 2)
    assert state(h) is GroupState.PREPARING_REBALANCE
    assert h.heartbeat(rb.member_id, 2) == E.UNKNOWN_MEMBER_ID


def test_sync_errors():
    h = Harness()
    ra, rb = stable_pair(h)
    w = h.c.sync_group(group_id="g", generation_id=1, member_id=ra.member_id, group_instance_id=None,
                       now_ms=h.now)
    assert w.result.error == E.ILLEGAL_GENERATION
    w = h.c.sync_group(group_id="g", generation_id=2, member_id="nobody", group_instance_id=None, now_ms=h.now)
    assert w.result.error == E.UNKNOWN_MEMBER_ID
    w = h.c.sync_group(group_id="g", generation_id=2, member_id=ra.member_id, group_instance_id=None,
                       protocol_name="roundrobin", now_ms=h.now)
    assert w.result.error == E.INCONSISTENT_GROUP_PROTOCOL
    w = h.c.sync_group(group_id="nope", generation_id=2, member_id=ra.member_id, group_instance_id=None,
                       now_ms=h.now)
    assert w.result.error == E.UNKNOWN_MEMBER_ID
    # Stable: a repeated SyncGroup returns the assignment in force
    w = h.sync(rb)
    assert parse_assignment(w.result.assignment) == {"t": [2, 3]}


def test_join_errors():
    h = Harness()
    assert h.join(group="").result.error == E.INVALID_GROUP_ID
    assert h.join(session_ms=5999).result.error == E.INVALID_SESSION_TIMEOUT
    assert h.join(session_ms=1_800_001).result.error == E.INVALID_SESSION_TIMEOUT
    assert h.join(member_id="made-up").result.error == E.UNKNOWN_MEMBER_ID
    stable_pair(h)
    assert h.join(member_id="made-up").result.error == E.UNKNOWN_MEMBER_ID


def test_stable_follower_rejoin_with_same_metadata_does_not_rebalance():
    h = Harness()
    ra, rb = stable_pair(h)
    w = h.join(member_id=rb.member_id)
    assert w.result.error == E.NONE and w.result.generation_id == 2
    assert state(h) is GroupState.STABLE
    # ...but the leader rejoining does
    h.join(member_id=ra.member_id)
    assert state(h) is GroupState.PREPARING_REBALANCE


def test_follower_rejoin_with_new_subscription_rebalances():
    h = Harness()
    ra, rb = stable_pair(h)
    h.join(member_id=rb.member_id, topics=("t", "u"))
    assert state(h) is GroupState.PREPARING_REBALANCE


def test_group_max_size():
    h = Harness(GroupConfig(group_max_size=1))
    stable = h.join_new().result
    h.sync(stable, assignments=[])
    assert h.join().result.error == E.GROUP_MAX_SIZE_REACHED


def test_duplicate_join_answers_the_first_request():
    h = Harness()
    ra, rb = stable_pair(h)
    h.join_new()  # a third member starts a rebalance
    first = h.join(member_id=ra.member_id)
    second = h.join(member_id=ra.member_id)
    assert first.result.error == E.REBALANCE_IN_PROGRESS
    assert not second.done


# ------------------------------------------------------------------ static membership
def test_static_member_restart_keeps_generation_and_assignment():
    h = Harness()
    a = h.join(instance="i-a", client_id="a").result
    assert a.error == E.NONE and a.member_id.startswith("i-a-")  # static: no MEMBER_ID_REQUIRED
    b = h.join(instance="i-b", client_id="b")
    a2 = h.join(member_id=a.member_id, instance="i-a").result
    b = b.result
    h.sync(a2, instance="i-a", assignments=[(a2.member_id, b"A"), (b.member_id, b"B")])
    h.sync(b, instance="i-b")
    assert state(h) is GroupState.STABLE and h.c.groups["g"].generation_id == 2
    # b restarts: it joins with no member id and the same instance id
    b_new = h.join(instance="i-b", client_id="b")
    assert not b_new.done  # the new member id is being stored
    h.flush()
    r = b_new.result
    assert r.error == E.NONE and r.generation_id == 2 and r.member_id != b.member_id
    assert state(h) is GroupState.STABLE  # no rebalance
    assert h.sync(r, instance="i-b").result.assignment == b"B"
    # the old incarnation is fenced
    assert h.heartbeat(b.member_id, 2, instance="i-b") == E.FENCED_INSTANCE_ID
    assert h.heartbeat(r.member_id, 2, instance="i-b") == E.NONE


def test_static_leader_restart_is_told_the_old_leader_id():
    h = Harness()
    a = h.join(instance="i-a").result
    h.sync(a, instance="i-a", assignments=[(a.member_id, b"A")])
    again = h.join(instance="i-a")
    h.flush()
    # The rejoined leader must not reassign: it sees someone else as leader and syncs.
    assert again.result.leader == a.member_id and again.result.member_id != a.member_id
    assert h.sync(again.result, instance="i-a").result.assignment == b"A"
    # With JoinGroup v9 it is told it leads but may skip the assignment.
    v9 = h.join(instance="i-a", v9=True)
    h.flush()
    assert v9.result.skip_assignment and v9.result.leader == v9.result.member_id
    assert len(v9.result.members) == 1


def test_static_member_session_expiry_removes_it():
    h = Harness()
    a = h.join(instance="i-a").result
    h.sync(a, instance="i-a", assignments=[(a.member_id, b"A")])
    h.advance(10_000)
    assert state(h) is GroupState.EMPTY


def test_static_member_admin_removal_by_instance_id():
    h = Harness()
    a = h.join(instance="i-a").result
    h.sync(a, instance="i-a", assignments=[(a.member_id, b"A")])
    res = h.c.leave_group(group_id="g", members=[("", "i-a"), ("", "i-zzz")], now_ms=h.now)
    assert [m[2] for m in res.members] == [E.NONE, E.UNKNOWN_MEMBER_ID]
    assert state(h) is GroupState.EMPTY


def test_static_member_with_wrong_member_id_is_fenced():
    h = Harness()
    a = h.join(instance="i-a").result
    assert h.join(member_id="someone-else", instance="i-a").result.error == E.FENCED_INSTANCE_ID
    assert h.heartbeat(a.member_id, 1, instance="i-b") == E.UNKNOWN_MEMBER_ID


# ------------------------------------------------------------------ persistence failures
def test_failed_assignment_write_answers_with_not_coordinator_and_rebalances():
    h = Harness()
    a = h.join_new().result
    w = h.c.sync_group(group_id="g", generation_id=1, member_id=a.member_id, group_instance_id=None,
                       assignments=[(a.member_id, b"x")], now_ms=h.now)
    assert not w.done
    h.flush(E.KAFKA_STORAGE_ERROR)
    assert w.result.error == E.NOT_COORDINATOR
    assert state(h) is GroupState.PREPARING_REBALANCE


# ------------------------------------------------------------------ offsets
def test_offset_commit_by_member_and_fetch():
    h = Harness()
    ra, rb = stable_pair(h)
    w = h.commit({("t", 0): 5, ("t", 1): 6}, member_id=ra.member_id, generation=2, flush=False)
    assert not w.done and h.committed() == {}  # not durable yet, not visible yet
    h.flush()
    assert w.result == [("t", [(0, E.NONE), (1, E.NONE)])]
    assert h.committed() == {("t", 0): 5, ("t", 1): 6}
    rows = h.c.fetch_offsets(group_id="g", topics=[("t", [0, 3]), ("u", [0])], now_ms=h.now)
    assert [(t, [(f.partition, f.offset) for f in r]) for t, r in rows] == [
        ("t", [(0, 5), (3, -1)]), ("u", [(0, -1)])]
    assert h.c.fetch_offsets(group_id="nope", topics=[("t", [0])], now_ms=h.now)[0][1][0].offset == -1


@pytest.mark.parametrize("member_id, generation, api_version, error", [
    ("member-a", 1, 8, E.ILLEGAL_GENERATION),
    ("nobody", 2, 8, E.UNKNOWN_MEMBER_ID),
    ("", -1, 8, E.UNKNOWN_MEMBER_ID),  # generation-less commit to a live group
])
def test_offset_commit_rejections(member_id, generation, api_version, error):
    h = Harness()
    ra, _ = stable_pair(h)
    mid = ra.member_id if member_id == "member-a" else member_id
    w = h.commit({("t", 0): 1}, member_id=mid, generation=generation, api_version=api_version)
    assert w.result == [("t", [(0, error)])]
    assert h.committed() == {}


def test_offset_commit_to_unknown_group():
    h = Harness()
    assert h.commit({("t", 0): 1}, group="x", member_id="m", generation=3).result[0][1][0][1] == E.ILLEGAL_GENERATION
    assert h.commit({("t", 0): 1}, group="x", member_id="m", generation=3,
                    api_version=9).result[0][1][0][1] == E.GROUP_ID_NOT_FOUND
    # a simple (group-less) consumer creates the group by committing
    assert h.commit({("t", 0): 1}, group="x").result == [("t", [(0, E.NONE)])]
    assert state(h, "x") is GroupState.EMPTY and h.committed("x") == {("t", 0): 1}


def test_offset_commit_while_completing_rebalance():
    h = Harness()
    a = h.join_new().result
    w = h.commit({("t", 0): 1}, member_id=a.member_id, generation=1)
    assert w.result == [("t", [(0, E.REBALANCE_IN_PROGRESS)])]


def test_offset_commit_metadata_limits():
    h = Harness(GroupConfig(offset_metadata_max_bytes=4))
    w = h.c.commit_offsets(group_id="g", member_id="", group_instance_id=None, generation_id=-1,
                           topics=[("t", [OffsetCommitEntry(0, 1, metadata="toolong"),
                                          OffsetCommitEntry(1, 2, metadata="ok")])],
                           api_version=8, now_ms=h.now)
    h.flush()
    assert w.result == [("t", [(0, E.OFFSET_METADATA_TOO_LARGE), (1, E.NONE)])]
    (row,) = h.c.fetch_offsets(group_id="g", topics=None, now_ms=h.now)
    assert [(f.partition, f.offset, f.metadata) for f in row[1]] == [(1, 2, "ok")]


def test_failed_commit_is_not_applied():
    h = Harness()
    w = h.commit({("t", 0): 1}, flush=False)
    h.flush(E.KAFKA_STORAGE_ERROR)
    assert w.result == [("t", [(0, E.NOT_COORDINATOR)])]
    assert h.committed() == {}


def test_restart_keeps_offsets_and_group():
    h = Harness()
    ra, rb = stable_pair(h)
    h.commit({("t", 0): 10, ("t", 2): 20}, member_id=ra.member_id, generation=2)
    h.commit({("t", 0): 11}, member_id=ra.member_id, generation=2)
    h.commit({("u", 0): 1}, group="simple")
    h.restart()
    assert h.committed() == {("t", 0): 11, ("t", 2): 20}
    assert h.committed("simple") == {("u", 0): 1}
    g = h.c.groups["g"]
    assert g.state is GroupState.STABLE and g.generation_id == 2 and g.leader_id == ra.member_id
    # members that keep heartbeating carry on; the group's assignment survived
    assert h.heartbeat(ra.member_id, 2) == E.NONE
    assert parse_assignment(h.sync(rb).result.assignment) == {"t": [2, 3]}
    # a member that never comes back is expired after its session timeout
    for _ in range(4):
        h.advance(3000)
        h.heartbeat(ra.member_id, 2)
    assert h.heartbeat(ra.member_id, 2) == E.REBALANCE_IN_PROGRESS


def test_offset_delete():
    h = Harness()
    ra, rb = stable_pair(h)
    h.commit({("t", 0): 1, ("old", 0): 2}, member_id=ra.member_id, generation=2)
    w = h.c.delete_offsets(group_id="g", topics=[("t", [0]), ("old", [0, 1])], now_ms=h.now)
    h.flush()
    assert w.result == (E.NONE, [("t", [(0, E.GROUP_SUBSCRIBED_TO_TOPIC)]),
                                 ("old", [(0, E.NONE), (1, E.NONE)])])
    assert h.committed() == {("t", 0): 1}
    w = h.c.delete_offsets(group_id="nope", topics=[("t", [0])], now_ms=h.now)
    assert w.result[0] == E.GROUP_ID_NOT_FOUND


def test_offsets_retention_for_empty_and_simple_groups():
    day = 24 * 3600 * 1000
    h = Harness(GroupConfig(offsets_retention_ms=7 * day, offsets_retention_check_interval_ms=600_000))
    a = h.join_new(session_ms=1_800_000).result
    h.sync(a, assignments=[(a.member_id, b"x")])
    h.commit({("t", 0): 3}, member_id=a.member_id, generation=1)
    h.commit({("s", 0): 4}, group="simple")
    # "g" stays alive for 8 days by heartbeating, then its member leaves
    for i in range(8 * 24 * 6):
        h.advance(600_000)
        assert h.heartbeat(a.member_id, 1) == E.NONE
        if i == 3 * 24 * 6:
            h.commit({("s", 1): 5}, group="simple")
    h.flush()
    assert h.committed() == {("t", 0): 3}  # a live group's offsets never expire
    assert h.committed("simple") == {("s", 1): 5}  # (s,0) aged out from its commit
    h.c.leave_group(group_id="g", members=[(a.member_id, None)], now_ms=h.now)
    h.advance(7 * day - 600_000)
    h.flush()
    assert h.committed() == {("t", 0): 3} and "g" in h.c.groups
    h.advance(600_000)
    h.flush()
    assert h.committed() == {} and "g" not in h.c.groups  # 7 days after it emptied
    h.advance(7 * day)
    h.flush()
    assert "simple" not in h.c.groups
    h.restart()
    assert h.c.groups == {} and h.c.offsets == {}


def test_commit_with_retention_time_expires_by_its_own_deadline():
    h = Harness()
    h.commit({("t", 0): 1}, group="s", retention_ms=1_000_000)
    h.advance(1_200_000)
    h.flush()
    assert h.committed("s") == {}


# ------------------------------------------------------------------ admin
def test_list_describe_delete():
    h = Harness()
    ra, rb = stable_pair(h)
    h.commit({("t", 0): 1}, member_id=ra.member_id, generation=2)
    h.commit({("t", 0): 1}, group="simple")
    listed = {(g.group_id, g.protocol_type, g.state) for g in h.c.list_groups(now_ms=h.now)}
    assert listed == {("g", "consumer", "Stable"), ("simple", "", "Empty")}
    assert [g.group_id for g in h.c.list_groups(states=["stable"], now_ms=h.now)] == ["g"]
    assert h.c.list_groups(types=["consumer"], now_ms=h.now) == []
    d = h.c.describe_group("g", now_ms=h.now)
    assert (d.state, d.protocol_type, d.protocol_data) == ("Stable", "consumer", "range")
    assert {parse_assignment(m.assignment)["t"][0] for m in d.members} == {0, 2}
    assert all(m.metadata == subscription(["t"]) for m in d.members)
    assert h.c.describe_group("nope", now_ms=h.now).state == "Dead"

    w = h.c.delete_groups(["g", "simple", "nope"], now_ms=h.now)
    h.flush()
    assert w.result == [("g", E.NON_EMPTY_GROUP), ("simple", E.NONE), ("nope", E.GROUP_ID_NOT_FOUND)]
    assert h.committed("simple") == {} and "simple" not in h.c.groups
    h.restart()
    assert "simple" not in h.c.groups and "g" in h.c.groups


def test_partition_for_matches_java_string_hashcode():
    assert partition_for("hello", 2**31 - 1) == 99162322  # "hello".hashCode()
    assert partition_for("polygenelubricants", 7) == 0  # hashCode() == Integer.MIN_VALUE
    assert partition_for("é", 1000) == 233  # one UTF-16 unit
    assert partition_for("\U0001F600", 2**31 - 1) == (0xD83D * 31 + 0xDE00)  # surrogate pair


def test_groups_spread_over_offsets_partitions_and_reload():
    h = Harness(GroupConfig(offsets_topic_num_partitions=5))
    groups = [f"group-{i}" for i in range(12)]
    for i, g in enumerate(groups):
        h.commit({("t", 0): i}, group=g)
    assert {p for p, _, _ in h.log} == {partition_for(g, 5) for g in groups}
    assert len({p for p, _, _ in h.log}) > 1
    h.restart()
    assert {g: h.committed(g) for g in groups} == {g: {("t", 0): i} for i, g in enumerate(groups)}

"""KIP-848 consumer groups in the pure coordinator: joins, incremental reconciliation,
epochs and their errors, static members, timers, and the boundary with classic groups."""

from __future__ import annotations

import itertools

import pytest
from consumer_client import Client

from kafkito.broker.group.coordinator import GroupConfig, GroupCoordinator, OffsetCommitEntry
from kafkito.protocol import ErrorCode

E = ErrorCode
T0 = 1_000_000
META = {"t": 4}


@pytest.fixture
def coord():
    ids = itertools.count()
    return GroupCoordinator(GroupConfig(), new_member_suffix=lambda: f"m{next(ids)}")


def settle(clients, now=T0, rounds=6, meta=META):
    for _ in range(rounds):
        for c in clients:
            c.heartbeat(now, meta)


def owned(clients):
    return [sorted(p for _, p in c.partitions()) for c in clients]


def test_two_members_get_disjoint_assignments_covering_every_partition(coord):
    a, b = Client(coord, "g", ["t"]), Client(coord, "g", ["t"])
    r = a.heartbeat(T0, META)
    assert r.error == E.NONE and r.member_epoch == 1 and r.assignment == {"t": {0, 1, 2, 3}}
    assert r.heartbeat_interval_ms == GroupConfig().group_consumer_heartbeat_interval_ms
    settle([a, b])
    assert sorted(owned([a, b])) == [[0, 1], [2, 3]]
    assert a.epoch == b.epoch == 2
    assert coord.consumer.groups["g"].state == "Stable"


def test_a_partition_moves_only_after_its_owner_revoked_it(coord):
    a, b = Client(coord, "g", ["t"]), Client(coord, "g", ["t"])
    a.heartbeat(T0, META)
    r = b.heartbeat(T0, META)  # joins at epoch 2: a still owns everything
    assert r.member_epoch == 2 and r.assignment == {}
    assert coord.consumer.groups["g"].state == "Reconciling"
    r = a.heartbeat(T0, META)  # a is told to keep two: the other two are pending revocation
    assert r.member_epoch == 1 and sum(map(len, r.assignment.values())) == 2
    r = b.heartbeat(T0, META)  # a has not confirmed yet (its owned set went out before)
    assert r.assignment is None or r.assignment == {}
    a.heartbeat(T0, META)  # owned now lacks the revoked ones: a moves to epoch 2
    assert a.epoch == 2
    r = b.heartbeat(T0, META)
    assert sum(map(len, r.assignment.values())) == 2
    assert not a.partitions() & b.partitions()


def test_leave_moves_partitions_to_the_others(coord):
    a, b = Client(coord, "g", ["t"]), Client(coord, "g", ["t"])
    settle([a, b])
    r = a.leave(T0)
    assert r.error == E.NONE and r.member_epoch == -1
    settle([b])
    assert owned([b]) == [[0, 1, 2, 3]]


def test_session_expiry_removes_a_silent_member(coord):
    a, b = Client(coord, "g", ["t"]), Client(coord, "g", ["t"])
    settle([a, b])
    later = T0 + GroupConfig().group_consumer_session_timeout_ms
    coord.poll(later)
    settle([b], later)
    assert owned([b]) == [[0, 1, 2, 3]]
    r = a.heartbeat(later, META)  # the expired member learns it and rejoins
    assert r.error == E.UNKNOWN_MEMBER_ID
    settle([a, b], later)
    assert sorted(map(len, owned([a, b]))) == [2, 2]


def test_member_that_does_not_revoke_in_time_is_fenced(coord):
    a = Client(coord, "g", ["t"], rebalance_timeout_ms=5000)
    b = Client(coord, "g", ["t"])
    a.heartbeat(T0, META)
    b.heartbeat(T0, META)
    a.heartbeat(T0, META)  # told to revoke two; it never confirms
    coord.poll(T0 + 5000)
    assert a.member_id not in coord.consumer.groups["g"].members
    settle([b], T0 + 5000)
    assert owned([b]) == [[0, 1, 2, 3]]


def test_epoch_errors(coord):
    a = Client(coord, "g", ["t"])
    a.heartbeat(T0, META)
    a.epoch = 7
    assert a.heartbeat(T0, META).error == E.FENCED_MEMBER_EPOCH
    c = Client(coord, "g", ["t"])
    c.member_id, c.epoch = "nobody", 3
    assert c.heartbeat(T0, META).error == E.UNKNOWN_MEMBER_ID
    d = Client(coord, "absent", ["t"])
    d.member_id, d.epoch = "x", 1
    assert d.heartbeat(T0, META).error == E.UNKNOWN_MEMBER_ID  # the group was lost (restart)


def test_previous_epoch_is_accepted_when_the_answer_was_lost(coord):
    a, b = Client(coord, "g", ["t"]), Client(coord, "g", ["t"])
    settle([a, b])
    member = coord.consumer.groups["g"].members[a.member_id]
    assert member.previous_member_epoch == 1
    a.epoch = 1  # as if the answer that moved it to 2 never arrived
    r = a.heartbeat(T0, META)
    assert r.error == E.NONE and r.member_epoch == 2


def test_request_validation(coord):
    call = coord.consumer_group_heartbeat
    base = dict(group_id="g", member_id="", member_epoch=0, instance_id=None, rack_id=None,
                rebalance_timeout_ms=1000, subscribed_topic_names=["t"], subscribed_topic_regex=None,
                server_assignor=None, owned={}, topics=META, now_ms=T0)
    assert call(**{**base, "group_id": ""}).error == E.INVALID_REQUEST
    assert call(**{**base, "rebalance_timeout_ms": -1}).error == E.INVALID_REQUEST
    assert call(**{**base, "subscribed_topic_names": []}).error == E.INVALID_REQUEST
    assert call(**{**base, "owned": None}).error == E.INVALID_REQUEST
    assert call(**{**base, "member_epoch": -3}).error == E.INVALID_REQUEST
    assert call(**{**base, "member_epoch": 5}).error == E.INVALID_REQUEST  # no member id
    r = call(**{**base, "server_assignor": "sticky"})
    assert r.error == E.UNSUPPORTED_ASSIGNOR and "uniform" in r.error_message
    assert call(**{**base, "subscribed_topic_regex": "("}).error == E.INVALID_REQUEST


def test_range_assignor_when_members_ask_for_it(coord):
    a = Client(coord, "g", ["t"], assignor="range")
    b = Client(coord, "g", ["t"], assignor="range")
    settle([a, b])
    g = coord.consumer.groups["g"]
    assert g.assignor_name() == "range"
    assert sorted(owned([a, b])) == [[0, 1], [2, 3]]


def test_regex_subscription_and_new_partitions(coord):
    a = Client(coord, "g", [])
    r = coord.consumer_group_heartbeat(
        group_id="g", member_id="", member_epoch=0, instance_id=None, rack_id=None,
        rebalance_timeout_ms=1000, subscribed_topic_names=[], subscribed_topic_regex="t.*",
        server_assignor=None, owned={}, topics={"t1": 1, "t2": 1, "u": 1, "__consumer_offsets": 1},
        now_ms=T0)
    assert r.assignment == {"t1": {0}, "t2": {0}}
    a.member_id, a.epoch, a.owned = r.member_id, r.member_epoch, r.assignment
    r = a.heartbeat(T0, {"t1": 3, "t2": 1, "u": 1})
    assert r.member_epoch == 2 and r.assignment == {"t1": {0, 1, 2}, "t2": {0}}


def test_static_member_comes_back_without_disturbing_others(coord):
    a = Client(coord, "g", ["t"], instance_id="i-a")
    b = Client(coord, "g", ["t"])
    settle([a, b])
    mine, epoch = a.partitions(), coord.consumer.groups["g"].group_epoch
    old_id = a.member_id
    assert a.leave(T0, static=True).member_epoch == -2
    c = Client(coord, "g", ["t"], instance_id="i-a")
    settle([c, b])
    assert c.partitions() == mine and c.member_id != old_id
    assert coord.consumer.groups["g"].group_epoch == epoch


def test_static_instance_in_use_is_unreleased(coord):
    a = Client(coord, "g", ["t"], instance_id="i-a")
    a.heartbeat(T0, META)
    assert Client(coord, "g", ["t"], instance_id="i-a").heartbeat(T0, META).error == E.UNRELEASED_INSTANCE_ID


def test_static_member_that_left_expires_after_its_session(coord):
    a = Client(coord, "g", ["t"], instance_id="i-a")
    b = Client(coord, "g", ["t"])
    settle([a, b])
    a.leave(T0, static=True)
    settle([b], T0 + 1000)
    assert len(b.partitions()) == 2
    later = T0 + GroupConfig().group_consumer_session_timeout_ms
    coord.poll(later)
    settle([b], later)
    assert len(b.partitions()) == 4


def commit(coord, group, member_id, epoch, version=9):
    w = coord.commit_offsets(group_id=group, member_id=member_id, group_instance_id=None,
                             generation_id=epoch, topics=[("t", [OffsetCommitEntry(0, 5)])],
                             api_version=version, now_ms=T0)
    for write in coord.take_writes():
        coord.write_done(write)
    return w.result[0][1][0][1]


def test_offset_commit_checks_member_and_epoch(coord):
    a = Client(coord, "g", ["t"])
    a.heartbeat(T0, META)
    assert commit(coord, "g", a.member_id, a.epoch) == E.NONE
    assert commit(coord, "g", a.member_id, a.epoch + 1) == E.FENCED_MEMBER_EPOCH
    assert commit(coord, "g", a.member_id, a.epoch - 1) == E.STALE_MEMBER_EPOCH
    assert commit(coord, "g", "stranger", a.epoch) == E.UNKNOWN_MEMBER_ID
    assert commit(coord, "g", "", -1) == E.UNKNOWN_MEMBER_ID
    assert commit(coord, "g", a.member_id, a.epoch, version=8) == E.UNSUPPORTED_VERSION
    fetched = coord.fetch_offsets(group_id="g", topics=[("t", [0])], now_ms=T0)
    assert fetched[0][1][0].offset == 5
    # The last member leaves: the group reverts to a simple one that keeps the offsets.
    a.leave(T0)
    assert "g" not in coord.consumer.groups
    assert [(g.group_id, g.group_type, g.state) for g in coord.list_groups(now_ms=T0)] == [("g", "classic", "Empty")]
    # ...and becomes a consumer group again on the next join.
    b = Client(coord, "g", ["t"])
    assert b.heartbeat(T0, META).error == E.NONE
    assert "g" not in coord.groups


def test_boundary_with_classic_groups(coord):
    a = Client(coord, "g", ["t"])
    a.heartbeat(T0, META)
    w = coord.join_group(group_id="g", member_id="", group_instance_id=None, protocol_type="consumer",
                         protocols=[("range", b"")], session_timeout_ms=10_000, rebalance_timeout_ms=10_000,
                         client_id="c", client_host="h", require_known_member_id=False, now_ms=T0)
    assert w.result.error == E.INCONSISTENT_GROUP_PROTOCOL
    assert coord.describe_group("g", now_ms=T0).state == "Dead"  # not a classic group
    listed = coord.list_groups(now_ms=T0)
    assert [(g.group_id, g.protocol_type, g.state, g.group_type) for g in listed] == [
        ("g", "consumer", "Stable", "consumer")]
    assert coord.list_groups(types=["classic"], now_ms=T0) == []
    assert len(coord.list_groups(types=["Consumer"], states=["stable"], now_ms=T0)) == 1
    w = coord.delete_groups(["g"], now_ms=T0)
    assert w.result == [("g", E.NON_EMPTY_GROUP)]
    w = coord.delete_offsets(group_id="g", topics=[("t", [0]), ("other", [0])], now_ms=T0)
    for write in coord.take_writes():
        coord.write_done(write)
    assert w.result == (E.NONE, [("t", [(0, E.GROUP_SUBSCRIBED_TO_TOPIC)]), ("other", [(0, E.NONE)])])
    assert isinstance(coord.consumer_group_describe("nope", now_ms=T0), str)


def test_classic_group_with_members_is_not_a_consumer_group(coord):
    w = coord.join_group(group_id="c", member_id="", group_instance_id=None, protocol_type="consumer",
                         protocols=[("range", b"")], session_timeout_ms=10_000, rebalance_timeout_ms=10_000,
                         client_id="c", client_host="h", require_known_member_id=False, now_ms=T0)
    assert w.done
    r = Client(coord, "c", ["t"]).heartbeat(T0, META)
    assert r.error == E.GROUP_ID_NOT_FOUND
    assert coord.consumer_group_describe("c", now_ms=T0) == "Group c is not a consumer group"


def test_static_member_leaving_mid_revocation_frees_what_it_was_revoking(coord):
    a = Client(coord, "g", ["t"], instance_id="i-a")
    a.heartbeat(T0, META)
    b = Client(coord, "g", ["t"])
    b.heartbeat(T0, META)
    a.heartbeat(T0, META)  # told to revoke two; leaves instead of confirming
    a.leave(T0, static=True)
    settle([b])
    assert len(b.partitions()) == 2

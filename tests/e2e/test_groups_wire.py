"""Group API versions no client in the matrix sends, checked on the wire.

The three client libraries exercise the newest versions; kafkito also advertises the old
ones, so each old-version quirk the handlers translate is pinned here with raw requests
on our own codec: v0 FindCoordinator without key type, JoinGroup v0-v3 without
MEMBER_ID_REQUIRED and with a non-nullable protocol name, LeaveGroup v0 reporting its
member's error at the top, OffsetCommit v1's commit timestamp, OffsetFetch v1's
per-partition errors and v2's "all partitions", and the error answers Kafka gives.
"""

from __future__ import annotations

import struct

import pytest
from e2e.raw import RawClient

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages import delete_groups as DG
from kafkito.protocol.messages import describe_groups as DSG
from kafkito.protocol.messages import find_coordinator as FC
from kafkito.protocol.messages import heartbeat as HB
from kafkito.protocol.messages import join_group as JG
from kafkito.protocol.messages import leave_group as LG
from kafkito.protocol.messages import list_groups as LSG
from kafkito.protocol.messages import offset_commit as OC
from kafkito.protocol.messages import offset_fetch as OF
from kafkito.protocol.messages import sync_group as SG
from kafkito.testing import broker as embedded_broker

pytestmark = pytest.mark.e2e
E = ErrorCode
SUBSCRIPTION = struct.pack(">hih", 0, 1, 1) + b"t" + struct.pack(">i", -1)


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    settings = {"group.min.session.timeout.ms": "1000"}
    with embedded_broker(tmp_path_factory.mktemp("kafkito-wire"), settings=settings) as b:
        b.create_topic("t", 2)
        client = RawClient(b.host, b.port)
        client.port = b.port
        yield client
        client.close()


def join(raw, version, group, member_id=""):
    protocols = [JG.JoinGroupRequestProtocol(name="range", metadata=SUBSCRIPTION)]
    return raw.call(ApiKey.JOIN_GROUP, version, JG.JoinGroupRequest(
        group_id=group, session_timeout_ms=10_000, rebalance_timeout_ms=10_000, member_id=member_id,
        protocol_type="consumer", protocols=protocols))


def test_find_coordinator_versions(raw):
    r0 = raw.call(ApiKey.FIND_COORDINATOR, 0, FC.FindCoordinatorRequest(key="g"))
    assert (r0.error_code, r0.node_id, r0.host, r0.port) == (E.NONE, 0, "127.0.0.1", raw.port)
    r3 = raw.call(ApiKey.FIND_COORDINATOR, 3, FC.FindCoordinatorRequest(key="s", key_type=2))
    assert (r3.error_code, r3.node_id) == (E.INVALID_REQUEST, -1)
    r4 = raw.call(ApiKey.FIND_COORDINATOR, 4, FC.FindCoordinatorRequest(key_type=1, coordinator_keys=["x", "y"]))
    assert [(c.key, c.error_code, c.port) for c in r4.coordinators] == [("x", E.NONE, raw.port),
                                                                        ("y", E.NONE, raw.port)]


def test_old_join_sync_heartbeat_leave(raw):
    j = join(raw, 0, "old")  # v0-v3: an id at once, no MEMBER_ID_REQUIRED round trip
    assert (j.error_code, j.generation_id, j.protocol_name, j.leader) == (E.NONE, 1, "range", j.member_id)
    assert [m.member_id for m in j.members] == [j.member_id]
    s = raw.call(ApiKey.SYNC_GROUP, 0, SG.SyncGroupRequest(
        group_id="old", generation_id=1, member_id=j.member_id,
        assignments=[SG.SyncGroupRequestAssignment(member_id=j.member_id, assignment=b"asg")]))
    assert (s.error_code, bytes(s.assignment)) == (E.NONE, b"asg")
    hb = raw.call(ApiKey.HEARTBEAT, 0, HB.HeartbeatRequest(group_id="old", generation_id=1, member_id=j.member_id))
    assert hb.error_code == E.NONE
    hb = raw.call(ApiKey.HEARTBEAT, 0, HB.HeartbeatRequest(group_id="old", generation_id=0, member_id=j.member_id))
    assert hb.error_code == E.ILLEGAL_GENERATION
    # LeaveGroup v0: one member, its error is the response's
    bad = raw.call(ApiKey.LEAVE_GROUP, 0, LG.LeaveGroupRequest(group_id="old", member_id="nobody"))
    assert bad.error_code == E.UNKNOWN_MEMBER_ID
    ok = raw.call(ApiKey.LEAVE_GROUP, 0, LG.LeaveGroupRequest(group_id="old", member_id=j.member_id))
    assert ok.error_code == E.NONE
    # Empty now: v0-v6 report the (empty) protocol name as "", never null
    again = join(raw, 4, "old")
    assert (again.error_code, again.protocol_name) == (E.MEMBER_ID_REQUIRED, "")


def test_sync_v5_needs_protocol_type_and_name(raw):
    first = join(raw, 7, "v5")
    j = join(raw, 7, "v5", first.member_id)
    s = raw.call(ApiKey.SYNC_GROUP, 5, SG.SyncGroupRequest(
        group_id="v5", generation_id=j.generation_id, member_id=j.member_id, protocol_type=None,
        protocol_name="range"))
    assert s.error_code == E.INCONSISTENT_GROUP_PROTOCOL
    s = raw.call(ApiKey.SYNC_GROUP, 5, SG.SyncGroupRequest(
        group_id="v5", generation_id=j.generation_id, member_id=j.member_id, protocol_type="consumer",
        protocol_name="range"))
    assert (s.error_code, s.protocol_type, s.protocol_name) == (E.NONE, "consumer", "range")


def test_offset_commit_and_fetch_old_versions(raw):
    commit = raw.call(ApiKey.OFFSET_COMMIT, 1, OC.OffsetCommitRequest(
        group_id="simple", generation_id_or_member_epoch=-1, member_id="", topics=[
            OC.OffsetCommitRequestTopic(name="t", partitions=[
                OC.OffsetCommitRequestPartition(partition_index=0, committed_offset=7, commit_timestamp=123,
                                                committed_metadata="v1"),
                OC.OffsetCommitRequestPartition(partition_index=5, committed_offset=1)]),
            OC.OffsetCommitRequestTopic(name="nope", partitions=[
                OC.OffsetCommitRequestPartition(partition_index=0, committed_offset=1)])]))
    assert [(t.name, [(p.partition_index, p.error_code) for p in t.partitions]) for t in commit.topics] == [
        ("t", [(0, E.NONE), (5, E.UNKNOWN_TOPIC_OR_PARTITION)]), ("nope", [(0, E.UNKNOWN_TOPIC_OR_PARTITION)])]
    # v1: partitions listed, errors per partition
    f1 = raw.call(ApiKey.OFFSET_FETCH, 1, OF.OffsetFetchRequest(group_id="simple", topics=[
        OF.OffsetFetchRequestTopic(name="t", partition_indexes=[0, 1])]))
    assert [(p.partition_index, p.committed_offset, p.metadata, p.error_code) for p in f1.topics[0].partitions] == [
        (0, 7, "v1", E.NONE), (1, -1, "", E.NONE)]
    # v2+: null topics means every committed partition
    f2 = raw.call(ApiKey.OFFSET_FETCH, 2, OF.OffsetFetchRequest(group_id="simple", topics=None))
    assert (f2.error_code, [(t.name, [p.partition_index for p in t.partitions]) for t in f2.topics]) == (
        E.NONE, [("t", [0])])
    # v8: several groups, unknown ones read as "nothing committed"
    f8 = raw.call(ApiKey.OFFSET_FETCH, 8, OF.OffsetFetchRequest(groups=[
        OF.OffsetFetchRequestGroup(group_id="simple", topics=None),
        OF.OffsetFetchRequestGroup(group_id="ghost", topics=[
            OF.OffsetFetchRequestTopics(name="t", partition_indexes=[0])])]))
    assert [(g.group_id, g.error_code, [(p.partition_index, p.committed_offset) for t in g.topics
                                        for p in t.partitions]) for g in f8.groups] == [
        ("simple", E.NONE, [(0, 7)]), ("ghost", E.NONE, [(0, -1)])]
    # a member of no group with a generation: ILLEGAL_GENERATION before v9
    c = raw.call(ApiKey.OFFSET_COMMIT, 8, OC.OffsetCommitRequest(
        group_id="ghost", generation_id_or_member_epoch=3, member_id="m", topics=[
            OC.OffsetCommitRequestTopic(name="t", partitions=[
                OC.OffsetCommitRequestPartition(partition_index=0, committed_offset=1)])]))
    assert c.topics[0].partitions[0].error_code == E.ILLEGAL_GENERATION


def test_describe_list_delete_versions(raw):
    first = join(raw, 9, "admin")
    j = join(raw, 9, "admin", first.member_id)
    raw.call(ApiKey.SYNC_GROUP, 5, SG.SyncGroupRequest(
        group_id="admin", generation_id=j.generation_id, member_id=j.member_id, protocol_type="consumer",
        protocol_name="range", assignments=[SG.SyncGroupRequestAssignment(member_id=j.member_id, assignment=b"a")]))
    d = raw.call(ApiKey.DESCRIBE_GROUPS, 3, DSG.DescribeGroupsRequest(
        groups=["admin", "ghost"], include_authorized_operations=True))
    admin, ghost = d.groups
    assert (admin.group_state, admin.protocol_data, admin.authorized_operations) == ("Stable", "range", 328)
    assert [(m.client_host, bytes(m.member_assignment)) for m in admin.members] == [("/127.0.0.1", b"a")]
    assert (ghost.error_code, ghost.group_state) == (E.NONE, "Dead")
    d0 = raw.call(ApiKey.DESCRIBE_GROUPS, 0, DSG.DescribeGroupsRequest(groups=["admin"]))
    assert d0.groups[0].group_state == "Stable"
    ls = raw.call(ApiKey.LIST_GROUPS, 4, LSG.ListGroupsRequest(states_filter=["STABLE"]))
    assert ("admin", "Stable") in [(g.group_id, g.group_state) for g in ls.groups]
    assert all(g.group_state == "Stable" for g in ls.groups)
    ls5 = raw.call(ApiKey.LIST_GROUPS, 5, LSG.ListGroupsRequest(types_filter=["consumer"]))
    assert ls5.groups == []  # every group here is a classic group
    dg = raw.call(ApiKey.DELETE_GROUPS, 0, DG.DeleteGroupsRequest(groups_names=["admin", "ghost", ""]))
    assert [(r.group_id, r.error_code) for r in dg.results] == [
        ("admin", E.NON_EMPTY_GROUP), ("ghost", E.GROUP_ID_NOT_FOUND), ("", E.INVALID_GROUP_ID)]

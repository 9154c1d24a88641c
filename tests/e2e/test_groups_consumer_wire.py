"""ConsumerGroupHeartbeat and ConsumerGroupDescribe on the wire, both versions.

Pins what librdkafka does not show: ApiVersions advertises 68 and 69 as v0-1; topic ids
go out and come back; v1's topic regex; the errors (UNSUPPORTED_ASSIGNOR with a message,
INVALID_REQUEST, FENCED_MEMBER_EPOCH, UNKNOWN_MEMBER_ID); a classic group is not a
consumer group (GROUP_ID_NOT_FOUND from ConsumerGroupDescribe and from the heartbeat, and
DescribeGroups shows a consumer group as Dead); OffsetCommit v9 with the member epoch.
"""

from __future__ import annotations

import pytest
from e2e.raw import RawClient

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages import api_versions as AV
from kafkito.protocol.messages import consumer_group_describe as CGD
from kafkito.protocol.messages import consumer_group_heartbeat as CGH
from kafkito.protocol.messages import describe_groups as DSG
from kafkito.protocol.messages import join_group as JG
from kafkito.protocol.messages import metadata as MD
from kafkito.protocol.messages import offset_commit as OC
from kafkito.testing import broker as embedded_broker

pytestmark = pytest.mark.e2e
E = ErrorCode


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    with embedded_broker(tmp_path_factory.mktemp("kafkito-kip848-wire")) as b:
        b.create_topic("w", 2)
        b.create_topic("wx", 1)
        client = RawClient(b.host, b.port)
        yield client
        client.close()


def topic_ids(raw) -> dict[str, object]:
    r = raw.call(ApiKey.METADATA, 12, MD.MetadataRequest(topics=None))
    return {t.name: t.topic_id for t in r.topics}


def hb(raw, version=0, **kw):
    req = dict(group_id="wg", member_id="", member_epoch=0, rebalance_timeout_ms=30_000,
               subscribed_topic_names=["w"], topic_partitions=[])
    req.update(kw)
    return raw.call(ApiKey.CONSUMER_GROUP_HEARTBEAT, version, CGH.ConsumerGroupHeartbeatRequest(**req))


def test_api_versions_advertises_both_apis(raw):
    r = raw.call(ApiKey.API_VERSIONS, 3, AV.ApiVersionsRequest(client_software_name="raw",
                                                              client_software_version="1"))
    keys = {k.api_key: (k.min_version, k.max_version) for k in r.api_keys}
    assert keys[68] == (0, 1) and keys[69] == (0, 1)


@pytest.mark.parametrize("version", [0, 1])
def test_join_heartbeat_describe_leave(raw, version):
    ids = topic_ids(raw)
    group = f"wg-{version}"
    r = hb(raw, version, group_id=group, server_assignor="range")
    assert r.error_code == E.NONE and r.member_id and r.member_epoch == 1 and r.heartbeat_interval_ms > 0
    assert [(tp.topic_id, tp.partitions) for tp in r.assignment.topic_partitions] == [(ids["w"], [0, 1])]
    member, epoch = r.member_id, r.member_epoch
    owned = [CGH.TopicPartitions(topic_id=ids["w"], partitions=[0, 1])]
    r = hb(raw, version, group_id=group, member_id=member, member_epoch=epoch, rebalance_timeout_ms=-1,
           subscribed_topic_names=None, topic_partitions=owned)
    assert r.error_code == E.NONE and r.assignment is None  # nothing changed, nothing sent

    d = raw.call(ApiKey.CONSUMER_GROUP_DESCRIBE, version, CGD.ConsumerGroupDescribeRequest(
        group_ids=[group, "absent"], include_authorized_operations=True))
    g, absent = d.groups
    assert (g.error_code, g.group_state, g.group_epoch, g.assignment_epoch, g.assignor_name) == \
        (E.NONE, "Stable", 1, 1, "range")
    (m,) = g.members
    assert m.member_id == member and m.member_epoch == 1 and m.subscribed_topic_names == ["w"]
    assert m.client_id == "raw" and m.client_host.startswith("/")
    assert [(tp.topic_name, tp.partitions) for tp in m.assignment.topic_partitions] == [("w", [0, 1])]
    assert m.target_assignment == m.assignment
    assert g.authorized_operations > 0
    assert absent.error_code == E.GROUP_ID_NOT_FOUND

    # OffsetCommit v9 carries the member epoch.
    def commit(epoch):
        r = raw.call(ApiKey.OFFSET_COMMIT, 9, OC.OffsetCommitRequest(
            group_id=group, generation_id_or_member_epoch=epoch, member_id=member,
            topics=[OC.OffsetCommitRequestTopic(name="w", partitions=[
                OC.OffsetCommitRequestPartition(partition_index=0, committed_offset=1)])]))
        return r.topics[0].partitions[0].error_code
    assert commit(epoch) == E.NONE
    assert commit(epoch + 1) == E.FENCED_MEMBER_EPOCH
    assert commit(epoch - 1) == E.STALE_MEMBER_EPOCH

    # A classic DescribeGroups sees no classic group by that name.
    dg = raw.call(ApiKey.DESCRIBE_GROUPS, 5, DSG.DescribeGroupsRequest(groups=[group]))
    assert (dg.groups[0].error_code, dg.groups[0].group_state) == (E.NONE, "Dead")
    # A classic member may not join it.
    j = raw.call(ApiKey.JOIN_GROUP, 5, JG.JoinGroupRequest(
        group_id=group, session_timeout_ms=10_000, rebalance_timeout_ms=10_000, member_id="",
        protocol_type="consumer", protocols=[JG.JoinGroupRequestProtocol(name="range", metadata=b"")]))
    assert j.error_code == E.INCONSISTENT_GROUP_PROTOCOL

    r = hb(raw, version, group_id=group, member_id=member, member_epoch=-1, rebalance_timeout_ms=-1,
           subscribed_topic_names=None, topic_partitions=None)
    assert (r.error_code, r.member_epoch) == (E.NONE, -1)
    r = hb(raw, version, group_id=group, member_id=member, member_epoch=epoch, rebalance_timeout_ms=-1,
           subscribed_topic_names=None, topic_partitions=None)
    assert r.error_code == E.UNKNOWN_MEMBER_ID


def test_v1_topic_regex(raw):
    ids = topic_ids(raw)
    r = hb(raw, 1, group_id="wg-regex", subscribed_topic_names=[], subscribed_topic_regex="w.*")
    assert r.error_code == E.NONE
    got = {(tp.topic_id, tuple(tp.partitions)) for tp in r.assignment.topic_partitions}
    assert got == {(ids["w"], (0, 1)), (ids["wx"], (0,))}


def test_errors(raw):
    r = hb(raw, group_id="wg-err", server_assignor="sticky")
    assert r.error_code == E.UNSUPPORTED_ASSIGNOR and "uniform" in r.error_message
    assert hb(raw, group_id="wg-err", rebalance_timeout_ms=-1).error_code == E.INVALID_REQUEST
    assert hb(raw, group_id="wg-err", member_epoch=3).error_code == E.INVALID_REQUEST
    r = hb(raw, group_id="wg-err")
    assert r.error_code == E.NONE
    r2 = hb(raw, group_id="wg-err", member_id=r.member_id, member_epoch=r.member_epoch + 5,
            rebalance_timeout_ms=-1, subscribed_topic_names=None, topic_partitions=None)
    assert r2.error_code == E.FENCED_MEMBER_EPOCH


def test_classic_group_is_not_a_consumer_group(raw):
    j = raw.call(ApiKey.JOIN_GROUP, 3, JG.JoinGroupRequest(  # v3: no MEMBER_ID_REQUIRED round
        group_id="wg-classic", session_timeout_ms=10_000, rebalance_timeout_ms=10_000, member_id="",
        protocol_type="consumer", protocols=[JG.JoinGroupRequestProtocol(name="range", metadata=b"")]))
    assert j.error_code == E.NONE
    d = raw.call(ApiKey.CONSUMER_GROUP_DESCRIBE, 0, CGD.ConsumerGroupDescribeRequest(group_ids=["wg-classic"]))
    assert d.groups[0].error_code == E.GROUP_ID_NOT_FOUND
    assert "not a consumer group" in d.groups[0].error_message
    assert d.groups[0].authorized_operations == -2147483648
    assert hb(raw, group_id="wg-classic").error_code == E.GROUP_ID_NOT_FOUND

"""Group administration with real admin clients: list (with a state filter), describe,
fetch offsets of several groups at once, alter and delete offsets, remove a static member
by instance id, delete groups (refused while members are active)."""

from __future__ import annotations

import pytest
from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from e2e.test_groups_rebalance import PARTITIONS, Member, produce, wait_until
from kafka import KafkaAdminClient
from kafka import TopicPartition as KTopicPartition
from kafka.admin import MemberToRemove
from kafka.structs import OffsetAndMetadata

pytestmark = pytest.mark.e2e


def _listed(admin: AdminClient, states=None) -> set[str]:
    kwargs = {"states": states} if states else {}
    return {g.group_id for g in admin.list_consumer_groups(request_timeout=10, **kwargs).result(10).valid}


def test_admin_clients_manage_groups_and_offsets(gbroker):
    bootstrap = gbroker.bootstrap_servers
    topic, group, other = "admin-t", "admin-g", "admin-simple"
    gbroker.create_topic(topic, PARTITIONS)
    produce(bootstrap, topic, "a", 2)
    cadmin = AdminClient({"bootstrap.servers": bootstrap})
    kadmin = KafkaAdminClient(bootstrap_servers=bootstrap)
    member = Member("confluent", bootstrap, group, topic, instance="static-1", session_ms=30000)
    try:
        wait_until(lambda: len(member.records) >= 2 * PARTITIONS, 30, "member consumed")
        member.commit()

        # A simple (group-less) commit through the admin client creates an Empty group.
        errors = kadmin.alter_group_offsets(other, {KTopicPartition(topic, 0): OffsetAndMetadata(1, "m", -1)})
        assert all(e.errno == 0 for e in errors.values()), errors

        assert {group, other} <= _listed(cadmin)
        assert group in _listed(cadmin, {ConsumerGroupState.STABLE})
        assert group not in _listed(cadmin, {ConsumerGroupState.EMPTY})
        assert other in _listed(cadmin, {ConsumerGroupState.EMPTY})

        d = cadmin.describe_consumer_groups([group], request_timeout=10)[group].result(10)
        assert d.state == ConsumerGroupState.STABLE and d.partition_assignor == "range"
        (m,) = d.members
        assert m.group_instance_id == "static-1"
        assert sorted(tp.partition for tp in m.assignment.topic_partitions) == list(range(PARTITIONS))

        # OffsetFetch for two groups in one request (v8+), via kafka-python.
        fetched = kadmin.list_group_offsets({group: None, other: None})
        assert {tp.partition: om.offset for tp, om in fetched[group].items()} == {p: 2 for p in range(PARTITIONS)}
        assert {(tp.partition, om.offset, om.metadata) for tp, om in fetched[other].items()} == {(0, 1, "m")}

        # A live group can be neither deleted nor have a subscribed topic's offsets deleted.
        with pytest.raises(KafkaException, match="NON_EMPTY_GROUP"):
            cadmin.delete_consumer_groups([group], request_timeout=10)[group].result(10)
        res = kadmin.delete_group_offsets(group, [KTopicPartition(topic, 0)])
        assert [e.__name__ for e in res.values()] == ["GroupSubscribedToTopicError"]

        # The static member dies; instead of waiting out its 30 s session, an operator
        # removes it by its instance id alone (LeaveGroup v3+).
        member.kill()
        removed = kadmin.remove_group_members(group, [MemberToRemove(group_instance_id="static-1")])
        assert [e.errno for e in removed.values()] == [0]
        wait_until(lambda: group in _listed(cadmin, {ConsumerGroupState.EMPTY}), 10, "group empty")

        # Now its offsets may go, one partition at a time, and then the whole group.
        res = kadmin.delete_group_offsets(group, [KTopicPartition(topic, 0)])
        assert [e.errno for e in res.values()] == [0]
        left = cadmin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(10)
        assert sorted(tp.partition for tp in left.topic_partitions if tp.offset >= 0) == [1, 2, 3]
        cadmin.delete_consumer_groups([group, other], request_timeout=10)[group].result(10)
        assert not {group, other} & _listed(cadmin)
        again = cadmin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 1)])])[group].result(10)
        assert [tp.offset for tp in again.topic_partitions] == [-1001]  # nothing committed
    finally:
        member.stop_quietly()
        kadmin.close()

"""ConsumerGroupDescribe (key 69): versions 0-1, KIP-848 consumer groups.

Each consumer group with its state (Empty/Assigning/Reconciling/Stable), group and
assignment epochs, server assignor and members: epoch, subscription, current assignment
and target assignment (topic ids and names). A classic group, or an unknown one, answers
GROUP_ID_NOT_FOUND, as in Kafka; admin clients then describe it with DescribeGroups.
Authorized operations: without ACLs everything on a group is allowed (READ, DELETE,
DESCRIBE) when asked, otherwise the "not computed" value.

Version notes: v1 adds ``member_type`` (1: a member of the consumer protocol; we have no
classic members in a consumer group).
"""

from __future__ import annotations

from kafkito.broker.group.coordinator import GROUP_AUTHORIZED_OPERATIONS
from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.consumer_group_describe import (
    Assignment,
    ConsumerGroupDescribeResponse,
    DescribedGroup,
    Member,
    TopicPartitions,
)

from ._common import AUTHORIZED_OPERATIONS_OMITTED
from ._group import unavailable

API_KEY = ApiKey.CONSUMER_GROUP_DESCRIBE
MIN_VERSION = 0
MAX_VERSION = 1
MEMBER_TYPE_CONSUMER = 1


async def handle(ctx, request) -> ConsumerGroupDescribeResponse:
    error = unavailable(ctx)
    want_ops = request.include_authorized_operations
    ids = {m.name: m.topic_id for m in ctx.broker.logs.topics()}

    def assignment(tps) -> Assignment:
        return Assignment(topic_partitions=[
            TopicPartitions(topic_id=ids[t], topic_name=t, partitions=sorted(ps))
            for t, ps in sorted(tps.items()) if ps and t in ids])

    out = []
    for group_id in request.group_ids:
        if error is not None:
            out.append(DescribedGroup(error_code=error, group_id=group_id))
            continue
        if not group_id:
            out.append(DescribedGroup(error_code=ErrorCode.INVALID_GROUP_ID, group_id=group_id))
            continue
        g = ctx.broker.groups.consumer_group_describe(group_id=group_id)
        if isinstance(g, str):
            out.append(DescribedGroup(error_code=ErrorCode.GROUP_ID_NOT_FOUND, error_message=g,
                                      group_id=group_id))
            continue
        out.append(DescribedGroup(
            error_code=ErrorCode.NONE, group_id=group_id, group_state=g.state,
            group_epoch=g.group_epoch, assignment_epoch=g.assignment_epoch,
            assignor_name=g.assignor_name(),
            members=[Member(
                member_id=m.member_id, instance_id=m.instance_id, rack_id=m.rack_id,
                member_epoch=m.member_epoch, client_id=m.client_id, client_host=m.client_host,
                subscribed_topic_names=list(m.subscribed_topic_names),
                subscribed_topic_regex=m.subscribed_topic_regex,
                assignment=assignment(m.assigned),
                target_assignment=assignment(g.target.get(m.member_id, {})),
                member_type=MEMBER_TYPE_CONSUMER)
                for m in g.members.values()],
            authorized_operations=GROUP_AUTHORIZED_OPERATIONS if want_ops else AUTHORIZED_OPERATIONS_OMITTED,
        ))
    return ConsumerGroupDescribeResponse(groups=out)

"""ConsumerGroupHeartbeat (key 68): versions 0-1, the KIP-848 "consumer" group protocol.

A member joins with epoch 0, heartbeats with its epoch and the partitions it owns, leaves
with -1 (or -2: a static member leaving for now). The broker computes the assignment with
its server assignor ("uniform" by default, or "range" if the members ask for it) and hands
it over incrementally: a partition goes to a member only once no other member owns it.
All decisions are in ``kafkito.broker.group.consumer_group``; this module translates topic
ids to names and back (ids of unknown topics are ignored, as Kafka does).

Version notes: v1 adds ``subscribed_topic_regex`` (matched with Python's ``re.fullmatch``
against every non-internal topic; Kafka uses RE2/J, which agrees on ordinary patterns).

Not implemented: client-side assignors (KIP-848's ConsumerGroupPrepareAssignment, never
shipped by Kafka either), rack-aware assignment (``rack_id`` is stored and shown only),
classic members joining a consumer group (Kafka's online migration): they get
INCONSISTENT_GROUP_PROTOCOL. Membership is not persisted: after a restart members get
UNKNOWN_MEMBER_ID and rejoin (offsets are persisted as for classic groups).
"""

from __future__ import annotations

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.consumer_group_heartbeat import (
    Assignment,
    ConsumerGroupHeartbeatResponse,
    TopicPartitions,
)

from ._group import client_host, client_id, unavailable

API_KEY = ApiKey.CONSUMER_GROUP_HEARTBEAT
MIN_VERSION = 0
MAX_VERSION = 1


async def handle(ctx, request) -> ConsumerGroupHeartbeatResponse:
    error = unavailable(ctx)
    if error is not None:
        return ConsumerGroupHeartbeatResponse(error_code=error)
    metas = ctx.broker.logs.topics()
    by_id = {m.topic_id: m.name for m in metas}
    ids = {m.name: m.topic_id for m in metas}
    owned = None
    if request.topic_partitions is not None:
        owned = {}
        for tp in request.topic_partitions:
            name = by_id.get(tp.topic_id)
            if name is not None:
                owned.setdefault(name, set()).update(tp.partitions)
    r = ctx.broker.groups.consumer_group_heartbeat(
        group_id=request.group_id,
        member_id=request.member_id,
        member_epoch=request.member_epoch,
        instance_id=request.instance_id,
        rack_id=request.rack_id,
        rebalance_timeout_ms=request.rebalance_timeout_ms,
        subscribed_topic_names=request.subscribed_topic_names,
        subscribed_topic_regex=request.subscribed_topic_regex if ctx.api_version >= 1 else None,
        server_assignor=request.server_assignor,
        owned=owned,
        topics={m.name: m.num_partitions for m in metas},
        client_id=client_id(ctx),
        client_host=client_host(ctx),
    )
    if r.error != ErrorCode.NONE:
        return ConsumerGroupHeartbeatResponse(error_code=r.error, error_message=r.error_message)
    assignment = None
    if r.assignment is not None:
        assignment = Assignment(topic_partitions=[
            TopicPartitions(topic_id=ids[topic], partitions=sorted(parts))
            for topic, parts in sorted(r.assignment.items()) if topic in ids and parts])
    return ConsumerGroupHeartbeatResponse(
        error_code=ErrorCode.NONE, member_id=r.member_id, member_epoch=r.member_epoch,
        heartbeat_interval_ms=r.heartbeat_interval_ms, assignment=assignment)

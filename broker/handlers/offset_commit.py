"""OffsetCommit (key 8): versions 1-9.

Commits are checked against the group (a member of the current generation outside the
sync phase, or a group-less "simple" consumer committing with generation -1 to an empty
or absent group), written to ``__consumer_offsets`` and acknowledged only once fsynced.
Partitions of unknown topics, or beyond a topic's partition count, get
UNKNOWN_TOPIC_OR_PARTITION without reaching the coordinator, as in Kafka. Metadata longer
than ``offset.metadata.max.bytes`` gets OFFSET_METADATA_TOO_LARGE. A commit the log cannot
write (a full disk: KAFKA_STORAGE_ERROR) is answered NOT_COORDINATOR, Kafka's mapping for a
group write that hit a storage error: clients look the coordinator up again and retry.

Version notes: v1 has a per-partition commit timestamp; v2-v4 a retention time (an
explicit expiry for these offsets); v6+ the leader epoch; v7+ ``group.instance.id``; v9
answers GROUP_ID_NOT_FOUND instead of ILLEGAL_GENERATION when a member commits to a group
that does not exist.

Not served: v0 (Kafka stored those offsets in ZooKeeper; gone with KRaft, KIP-896) and
v10 (topic ids, part of KIP-848).
"""

from __future__ import annotations

from kafkito.broker.group.coordinator import OffsetCommitEntry
from kafkito.protocol import ApiKey
from kafkito.protocol.messages.offset_commit import (
    OffsetCommitResponse,
    OffsetCommitResponsePartition,
    OffsetCommitResponseTopic,
)

from ..context import Deferred
from ._group import commit_answered, split_commit, unavailable

API_KEY = ApiKey.OFFSET_COMMIT
MIN_VERSION = 1
MAX_VERSION = 9


async def handle(ctx, request) -> Deferred | OffsetCommitResponse:
    v = ctx.api_version
    errors, to_commit = split_commit(ctx, request.topics, unavailable(ctx), lambda p: OffsetCommitEntry(
        p.partition_index, p.committed_offset,
        leader_epoch=p.committed_leader_epoch if v >= 6 else -1,
        metadata=p.committed_metadata,
        commit_timestamp_ms=p.commit_timestamp if v == 1 else -1,
    ))
    if to_commit:
        groups = ctx.broker.groups
        waiter = groups.commit_offsets(
            group_id=request.group_id,
            member_id=request.member_id,
            group_instance_id=request.group_instance_id if v >= 7 else None,
            generation_id=request.generation_id_or_member_epoch,
            topics=to_commit,
            retention_time_ms=request.retention_time_ms if 2 <= v <= 4 else -1,
            api_version=v,
        )

        async def answer() -> OffsetCommitResponse:
            return _response(request, await commit_answered(groups, waiter, errors))

        return Deferred(answer)
    return _response(request, errors)


def _response(request, errors) -> OffsetCommitResponse:
    return OffsetCommitResponse(topics=[
        OffsetCommitResponseTopic(name=topic.name, partitions=[
            OffsetCommitResponsePartition(partition_index=p.partition_index,
                                          error_code=errors[(topic.name, p.partition_index)])
            for p in topic.partitions
        ])
        for topic in request.topics
    ])

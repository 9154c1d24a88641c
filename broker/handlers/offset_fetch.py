"""OffsetFetch (key 9): versions 1-9.

Returns committed offsets (offset -1 and empty metadata where nothing is committed, also
for unknown groups, as Kafka does). v2+ may ask for every committed partition of the
group (null topics) and report a group-level error in ``error_code``; v1 reports it in
each partition. v5+ return the committed leader epoch. v7 adds ``require_stable``: a
partition with an offset pending in an open transaction (TxnOffsetCommit, not yet
committed by its marker) answers UNSTABLE_OFFSET_COMMIT, and the client retries;
without it the committed offset is answered, the pending one never. v8+ fetch several
groups in one request. v9 adds the KIP-848 member id/epoch, which classic groups ignore.

Not served: v0 (ZooKeeper-stored offsets, gone with KRaft) and v10 (topic ids, KIP-848).
"""

from __future__ import annotations

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.offset_fetch import (
    OffsetFetchResponse,
    OffsetFetchResponseGroup,
    OffsetFetchResponsePartition,
    OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
)

from ._group import unavailable

API_KEY = ApiKey.OFFSET_FETCH
MIN_VERSION = 1
MAX_VERSION = 9


def _fetch(ctx, group_id: str, topics, require_stable: bool):
    """(group error, [(topic, [FetchedOffset])]) for one group."""
    error = unavailable(ctx)
    if error is not None:
        if topics is None:
            return error, []
        from kafkito.broker.group.coordinator import FetchedOffset

        return error, [(t, [FetchedOffset(p, error=error) for p in parts]) for t, parts in topics]
    rows = ctx.broker.groups.fetch_offsets(group_id=group_id, topics=topics,
                                           require_stable=require_stable)
    return ErrorCode.NONE, rows


async def handle(ctx, request) -> OffsetFetchResponse:
    v = ctx.api_version
    if v >= 8:
        out = []
        for g in request.groups:
            topics = None if g.topics is None else [(t.name, list(t.partition_indexes)) for t in g.topics]
            error, rows = _fetch(ctx, g.group_id, topics, request.require_stable)
            out.append(OffsetFetchResponseGroup(group_id=g.group_id, error_code=error, topics=[
                OffsetFetchResponseTopics(name=t, partitions=[
                    OffsetFetchResponsePartitions(
                        partition_index=f.partition, committed_offset=f.offset,
                        committed_leader_epoch=f.leader_epoch, metadata=f.metadata,
                        error_code=f.error)
                    for f in fs])
                for t, fs in rows]))
        return OffsetFetchResponse(groups=out)
    topics = None if request.topics is None else [(t.name, list(t.partition_indexes)) for t in request.topics]
    error, rows = _fetch(ctx, request.group_id, topics, v >= 7 and request.require_stable)
    return OffsetFetchResponse(
        error_code=error,
        topics=[OffsetFetchResponseTopic(name=t, partitions=[
            OffsetFetchResponsePartition(
                partition_index=f.partition, committed_offset=f.offset,
                committed_leader_epoch=f.leader_epoch, metadata=f.metadata,
                # v1 has no group-level error: it goes in every partition
                error_code=f.error if f.error != ErrorCode.NONE or v >= 2 else error)
            for f in fs])
            for t, fs in rows],
    )

"""ListOffsets (key 2): versions 1-9.

Timestamps: -2 earliest (the log start offset), -1 latest (the high watermark; for
read_committed, isolation_level 1, the last stable offset), -3 the
record with the largest timestamp (v7+), -4 earliest local (v8+, KIP-405: the local log
start offset), -5 latest tiered (v9+, KIP-1005: the highest offset in the remote tier; -1
when nothing is tiered). Earliest is the log start over both tiers. Any other value
finds the first offset whose timestamp is at or after it, or -1 when none is, searching
only below the high watermark (below the last stable offset for read_committed).

A timestamp or MAX_TIMESTAMP lookup may decompress batches, so it runs in a worker thread:
the event loop keeps serving others meanwhile (the log is safe to read from threads).

Not served: v0 (the "old style offsets" list; removed by Kafka 4, KIP-896).
"""

from __future__ import annotations

import trio

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.list_offsets import (
    ListOffsetsPartitionResponse,
    ListOffsetsResponse,
    ListOffsetsTopicResponse,
)

from ._common import resolve_topic, storage_error_code

API_KEY = ApiKey.LIST_OFFSETS
MIN_VERSION = 1
MAX_VERSION = 9

LATEST, EARLIEST, MAX_TIMESTAMP, EARLIEST_LOCAL, LATEST_TIERED = -1, -2, -3, -4, -5


_READ_COMMITTED = 1


def lookup(st, timestamp: int, read_committed: bool = False) -> tuple[int, int]:
    """(offset, timestamp) for one ListOffsets query against one partition."""
    plog = st.log
    hw = plog.last_stable_offset if read_committed else st.high_watermark
    if timestamp == LATEST:
        return hw, -1
    if timestamp == EARLIEST:
        return plog.log_start_offset, -1
    if timestamp == EARLIEST_LOCAL:
        return plog.local_log_start_offset, -1
    if timestamp == LATEST_TIERED:
        return (plog.tier.highest_offset if plog.tier is not None else -1), -1
    if timestamp == MAX_TIMESTAMP:
        found = plog.max_timestamp()
        if found is None or found[0] >= hw:
            return -1, -1
        return found
    found = plog.offset_for_timestamp(timestamp)
    if found is None or found[0] >= hw:
        return -1, -1
    return found


async def handle(ctx, request) -> ListOffsetsResponse:
    state = ctx.broker
    topics = []
    for topic in request.topics:
        meta = resolve_topic(state, topic.name, None)
        partitions = []
        for part in topic.partitions:
            response = ListOffsetsPartitionResponse(
                partition_index=part.partition_index, error_code=ErrorCode.NONE,
                timestamp=-1, offset=-1, leader_epoch=0,
            )
            st = state.partitions.lookup(meta, part.partition_index)
            if st is None:
                response.error_code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                response.leader_epoch = -1
            elif part.timestamp < LATEST_TIERED or (
                part.timestamp == MAX_TIMESTAMP and ctx.api_version < 7
            ):
                response.error_code = ErrorCode.UNSUPPORTED_VERSION
            else:
                try:
                    committed = getattr(request, "isolation_level", 0) == _READ_COMMITTED
                    if part.timestamp >= 0 or part.timestamp == MAX_TIMESTAMP:
                        found = await trio.to_thread.run_sync(lookup, st, part.timestamp,
                                                              committed)
                    else:
                        found = lookup(st, part.timestamp, committed)
                    response.offset, response.timestamp = found
                except Exception as exc:
                    response.error_code = storage_error_code(exc)
            partitions.append(response)
        topics.append(ListOffsetsTopicResponse(name=topic.name, partitions=partitions))
    return ListOffsetsResponse(throttle_time_ms=0, topics=topics)

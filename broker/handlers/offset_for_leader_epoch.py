"""OffsetForLeaderEpoch (key 23): versions 2-4.

Consumers ask it to validate their position after a leader change (KIP-320): "where does
the epoch my data came from end?". A single node has one leader epoch, 0, for the whole
life of every partition, so:
- a requested ``leader_epoch`` >= 0 is answered with ``leader_epoch`` 0 and
  ``end_offset`` = the high watermark (the end of everything a consumer can have read,
  so a valid position is never truncated); a negative one (undefined) gets -1 and -1,
  as in Kafka;
- ``current_leader_epoch`` (the client's view of the leader's epoch) is checked as Kafka
  checks it: -1 skips the check, above 0 is UNKNOWN_LEADER_EPOCH (the client knows a
  newer leader than exists here), below -1 is FENCED_LEADER_EPOCH (older than ours), and
  0 passes;
- an unknown topic or partition is UNKNOWN_TOPIC_OR_PARTITION.
Requests from "replicas" (v3+ ``replica_id`` >= 0) are answered alike: there are none.

Version notes: v2 adds current_leader_epoch and throttle_time_ms (no quotas: 0); v3
adds replica_id; v4 is flexible. Not served: v0-1 (removed by Kafka 4, KIP-896).
"""

from __future__ import annotations

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.offset_for_leader_epoch import (
    EpochEndOffset,
    OffsetForLeaderEpochResponse,
    OffsetForLeaderTopicResult,
)

API_KEY = ApiKey.OFFSET_FOR_LEADER_EPOCH
MIN_VERSION = 2
MAX_VERSION = 4

LEADER_EPOCH = 0  # the only epoch a single node ever has
NO_EPOCH = -1


def _end_offset(state, meta, part) -> EpochEndOffset:
    out = EpochEndOffset(partition=part.partition, error_code=ErrorCode.NONE,
                         leader_epoch=NO_EPOCH, end_offset=-1)
    st = state.partitions.lookup(meta, part.partition)
    if st is None:
        out.error_code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    elif part.current_leader_epoch > LEADER_EPOCH:
        out.error_code = ErrorCode.UNKNOWN_LEADER_EPOCH
    elif part.current_leader_epoch < NO_EPOCH:
        out.error_code = ErrorCode.FENCED_LEADER_EPOCH
    elif part.leader_epoch >= 0:
        out.leader_epoch = LEADER_EPOCH
        out.end_offset = st.high_watermark
    return out


async def handle(ctx, request) -> OffsetForLeaderEpochResponse:
    state = ctx.broker
    topics = []
    for topic in request.topics:
        meta = state.logs.topic(topic.topic)
        topics.append(OffsetForLeaderTopicResult(
            topic=topic.topic, partitions=[_end_offset(state, meta, p) for p in topic.partitions]))
    return OffsetForLeaderEpochResponse(throttle_time_ms=0, topics=topics)

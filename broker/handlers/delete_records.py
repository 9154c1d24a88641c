"""DeleteRecords (key 21): versions 0-2.

Behaviour: moves each partition's log start offset forward to the requested offset
(-1 means the high watermark); segments wholly below it are deleted by storage, and
consumers then see the new start (ListOffsets earliest, OFFSET_OUT_OF_RANGE below it).
The answer's ``low_watermark`` is the partition's log start offset afterwards, and
waiting fetches on the partition are woken so they re-read the log's bounds. An offset
below the current start changes nothing and answers the current start, as in Kafka.
Per-partition errors, as Kafka gives them:
- UNKNOWN_TOPIC_OR_PARTITION for an unknown topic or partition;
- OFFSET_OUT_OF_RANGE for an offset above the high watermark, or negative other than -1;
- POLICY_VIOLATION when the topic's cleanup.policy does not include ``delete``
  (records of compacted-only topics cannot be deleted);
- INVALID_TOPIC_EXCEPTION for internal topics;
- KAFKA_STORAGE_ERROR when the disk fails.
Errors carry ``low_watermark`` -1.

Version notes: v1 is v0 with throttling, v2 is flexible; kafkito has no quotas
(throttle_time_ms 0). With one replica there is nothing to wait for, so ``timeout_ms``
is never needed.
"""

from __future__ import annotations

import logging

import trio

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.delete_records import (
    DeleteRecordsPartitionResult,
    DeleteRecordsResponse,
    DeleteRecordsTopicResult,
)
from kafkito.storage import StorageError

from ._admin import AdminError
from ._common import is_internal, storage_error_code

API_KEY = ApiKey.DELETE_RECORDS
MIN_VERSION = 0
MAX_VERSION = 2

HIGH_WATERMARK = -1  # the requested offset that means "everything readable so far"

log = logging.getLogger("kafkito.broker.handlers.delete_records")


async def _delete_before(state, meta, partition: int, offset: int) -> int:
    """Move one partition's log start offset; return it (the new low watermark)."""
    st = state.partitions.lookup(meta, partition)
    if st is None:
        raise AdminError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "unknown topic or partition")
    if is_internal(meta.name):
        raise AdminError(ErrorCode.INVALID_TOPIC_EXCEPTION, "internal topic")
    plog = st.log
    if not plog.config.delete:
        raise AdminError(ErrorCode.POLICY_VIOLATION, "cleanup.policy does not include delete")
    hw = st.high_watermark
    target = hw if offset == HIGH_WATERMARK else offset
    if target < 0 or target > hw:
        raise AdminError(ErrorCode.OFFSET_OUT_OF_RANGE, f"offset {offset} outside 0..{hw}")
    if target <= plog.log_start_offset:
        return plog.log_start_offset
    try:
        # It writes a checkpoint and unlinks segments: disk work, kept off the event loop.
        start = await trio.to_thread.run_sync(plog.delete_records_before, target)
    except StorageError as exc:
        raise AdminError(storage_error_code(exc), str(exc)) from None
    state.partitions.refresh(meta.name, partition)
    log.info("%s-%d: records before offset %d deleted (log start offset now %d)",
             meta.name, partition, target, start)
    return start


async def handle(ctx, request) -> DeleteRecordsResponse:
    state = ctx.broker
    topics = []
    for topic in request.topics:
        meta = state.logs.topic(topic.name)
        partitions = []
        for part in topic.partitions:
            result = DeleteRecordsPartitionResult(partition_index=part.partition_index,
                                                  low_watermark=-1, error_code=ErrorCode.NONE)
            try:
                result.low_watermark = await _delete_before(state, meta, part.partition_index, part.offset)
            except AdminError as exc:
                result.error_code = exc.code
            partitions.append(result)
        topics.append(DeleteRecordsTopicResult(name=topic.name, partitions=partitions))
    return DeleteRecordsResponse(throttle_time_ms=0, topics=topics)

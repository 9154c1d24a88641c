"""DescribeProducers (key 61): version 0.

The producers each partition's log remembers (storage's producer state, Kafka's
ProducerStateManager): producer id and epoch, last sequence and timestamp, the epoch of
the coordinator that last wrote a marker for it, and the first offset of its open
transaction (-1 if none): what ``kafka-transactions.sh find-hanging`` reads.
UNKNOWN_TOPIC_OR_PARTITION for a partition that does not exist.
"""

from __future__ import annotations

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.describe_producers import (
    DescribeProducersResponse,
    PartitionResponse,
    ProducerState,
    TopicResponse,
)

API_KEY = ApiKey.DESCRIBE_PRODUCERS
MIN_VERSION = 0
MAX_VERSION = 0


async def handle(ctx, request) -> DescribeProducersResponse:
    state = ctx.broker
    topics = []
    for t in request.topics:
        meta = state.logs.topic(t.name)
        partitions = []
        for index in t.partition_indexes:
            st = state.partitions.lookup(meta, index)
            if st is None:
                partitions.append(PartitionResponse(partition_index=index,
                                                    error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                                    error_message=None, active_producers=[]))
                continue
            partitions.append(PartitionResponse(
                partition_index=index, error_code=ErrorCode.NONE, error_message=None,
                active_producers=[ProducerState(
                    producer_id=p.producer_id, producer_epoch=p.producer_epoch, last_sequence=p.last_sequence,
                    last_timestamp=p.last_timestamp, coordinator_epoch=p.coordinator_epoch,
                    current_txn_start_offset=p.current_txn_start_offset)
                    for p in st.log.active_producers()]))
        topics.append(TopicResponse(name=t.name, partitions=partitions))
    return DescribeProducersResponse(throttle_time_ms=0, topics=topics)

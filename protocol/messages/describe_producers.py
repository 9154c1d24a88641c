"""DescribeProducers (key 61): Active idempotent/transactional producers per partition.

Declared v0, flexible from v0.
Always flexible.
"""

from ..schema import ApiSpec, field, struct
from ..types import INT16, INT32, INT64, STRING, array


TopicRequest = struct(
    "TopicRequest",
    field("name", STRING),
    field("partition_indexes", array(INT32)),
)


DescribeProducersRequest = struct(
    "DescribeProducersRequest",
    field("topics", array(TopicRequest)),
)


ProducerState = struct(
    "ProducerState",
    field("producer_id", INT64),
    field("producer_epoch", INT32),
    field("last_sequence", INT32, default=-1),
    field("last_timestamp", INT64, default=-1),
    field("coordinator_epoch", INT32),
    field("current_txn_start_offset", INT64, default=-1),
)


PartitionResponse = struct(
    "PartitionResponse",
    field("partition_index", INT32),
    field("error_code", INT16),
    field("error_message", STRING, nullable="0+"),
    field("active_producers", array(ProducerState)),
)


TopicResponse = struct(
    "TopicResponse",
    field("name", STRING),
    field("partitions", array(PartitionResponse)),
)


DescribeProducersResponse = struct(
    "DescribeProducersResponse",
    field("throttle_time_ms", INT32),
    field("topics", array(TopicResponse)),
)

SPEC = ApiSpec(61, "DescribeProducers", "0", "0+", DescribeProducersRequest, DescribeProducersResponse)

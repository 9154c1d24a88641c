"""Produce (key 0): A producer appends record batches to partitions; acks=0 gets no response.

Declared v0-13, flexible from v9.
v3 adds transactional_id and requires record batch v2 (magic 2); v7 allows zstd; v8
adds per-batch record_errors and error_message to the response; v9 is flexible; v10 adds
current_leader / node_endpoints tags (KIP-951); v11 may answer TRANSACTION_ABORTABLE; v12
marks transactions v2 (KIP-890); v13 names topics by topic_id instead of name. Kafka 4
serves v3+ but advertises v0 because some librdkafka versions stop compressing without it.
Records decode as zero-copy memoryview slices of the frame.
"""

from ..schema import ApiSpec, field, struct
from ..types import INT16, INT32, INT64, RECORDS, STRING, UUID, array


PartitionProduceData = struct(
    "PartitionProduceData",
    field("index", INT32),
    field("records", RECORDS, nullable="0+"),
)


TopicProduceData = struct(
    "TopicProduceData",
    field("name", STRING, "0-12"),
    field("topic_id", UUID, "13+"),
    field("partition_data", array(PartitionProduceData)),
)


ProduceRequest = struct(
    "ProduceRequest",
    field("transactional_id", STRING, "3+", nullable="3+"),
    field("acks", INT16),
    field("timeout_ms", INT32),
    field("topic_data", array(TopicProduceData)),
)


BatchIndexAndErrorMessage = struct(
    "BatchIndexAndErrorMessage",
    field("batch_index", INT32, "8+"),
    field("batch_index_error_message", STRING, "8+", nullable="8+"),
)


LeaderIdAndEpoch = struct(
    "LeaderIdAndEpoch",
    field("leader_id", INT32, "10+", default=-1),
    field("leader_epoch", INT32, "10+", default=-1),
)


PartitionProduceResponse = struct(
    "PartitionProduceResponse",
    field("index", INT32),
    field("error_code", INT16),
    field("base_offset", INT64),
    field("log_append_time_ms", INT64, "2+", default=-1),
    field("log_start_offset", INT64, "5+", default=-1),
    field("record_errors", array(BatchIndexAndErrorMessage), "8+"),
    field("error_message", STRING, "8+", nullable="8+"),
    field("current_leader", LeaderIdAndEpoch, "10+", tag=0),
)


TopicProduceResponse = struct(
    "TopicProduceResponse",
    field("name", STRING, "0-12"),
    field("topic_id", UUID, "13+"),
    field("partition_responses", array(PartitionProduceResponse)),
)


NodeEndpoint = struct(
    "NodeEndpoint",
    field("node_id", INT32, "10+"),
    field("host", STRING, "10+"),
    field("port", INT32, "10+"),
    field("rack", STRING, "10+", nullable="10+"),
)


ProduceResponse = struct(
    "ProduceResponse",
    field("responses", array(TopicProduceResponse)),
    field("throttle_time_ms", INT32, "1+"),
    field("node_endpoints", array(NodeEndpoint), "10+", tag=0),
)

SPEC = ApiSpec(0, "Produce", "0-13", "9+", ProduceRequest, ProduceResponse)

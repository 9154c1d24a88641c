"""AddPartitionsToTxn (key 24): Add partitions to an ongoing transaction; from v4 batched for brokers.

Declared v0-5, flexible from v3.
v0-3 (clients) carry one transaction in the v3_and_below_* fields; v4+ (brokers)
batch several ``transactions``; v3 is flexible.
"""

from ..schema import ApiSpec, field, struct
from ..types import BOOL, INT16, INT32, INT64, STRING, array


AddPartitionsToTxnTopic = struct(
    "AddPartitionsToTxnTopic",
    field("name", STRING),
    field("partitions", array(INT32)),
)


AddPartitionsToTxnTransaction = struct(
    "AddPartitionsToTxnTransaction",
    field("transactional_id", STRING, "4+"),
    field("producer_id", INT64, "4+"),
    field("producer_epoch", INT16, "4+"),
    field("verify_only", BOOL, "4+"),
    field("topics", array(AddPartitionsToTxnTopic), "4+"),
)


AddPartitionsToTxnRequest = struct(
    "AddPartitionsToTxnRequest",
    field("transactions", array(AddPartitionsToTxnTransaction), "4+"),
    field("v3_and_below_transactional_id", STRING, "0-3"),
    field("v3_and_below_producer_id", INT64, "0-3"),
    field("v3_and_below_producer_epoch", INT16, "0-3"),
    field("v3_and_below_topics", array(AddPartitionsToTxnTopic), "0-3"),
)


AddPartitionsToTxnPartitionResult = struct(
    "AddPartitionsToTxnPartitionResult",
    field("partition_index", INT32),
    field("partition_error_code", INT16),
)


AddPartitionsToTxnTopicResult = struct(
    "AddPartitionsToTxnTopicResult",
    field("name", STRING),
    field("results_by_partition", array(AddPartitionsToTxnPartitionResult)),
)


AddPartitionsToTxnResult = struct(
    "AddPartitionsToTxnResult",
    field("transactional_id", STRING, "4+"),
    field("topic_results", array(AddPartitionsToTxnTopicResult), "4+"),
)


AddPartitionsToTxnResponse = struct(
    "AddPartitionsToTxnResponse",
    field("throttle_time_ms", INT32),
    field("error_code", INT16, "4+"),
    field("results_by_transaction", array(AddPartitionsToTxnResult), "4+"),
    field("results_by_topic_v3_and_below", array(AddPartitionsToTxnTopicResult), "0-3"),
)

SPEC = ApiSpec(24, "AddPartitionsToTxn", "0-5", "3+", AddPartitionsToTxnRequest, AddPartitionsToTxnResponse)

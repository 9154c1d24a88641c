"""DescribeTransactions (key 65): State of transactions by transactional id.

Declared v0, flexible from v0.
Always flexible.
"""

from ..schema import ApiSpec, field, struct
from ..types import INT16, INT32, INT64, STRING, array


DescribeTransactionsRequest = struct(
    "DescribeTransactionsRequest",
    field("transactional_ids", array(STRING)),
)


TopicData = struct(
    "TopicData",
    field("topic", STRING),
    field("partitions", array(INT32)),
)


TransactionState = struct(
    "TransactionState",
    field("error_code", INT16),
    field("transactional_id", STRING),
    field("transaction_state", STRING),
    field("transaction_timeout_ms", INT32),
    field("transaction_start_time_ms", INT64),
    field("producer_id", INT64),
    field("producer_epoch", INT16),
    field("topics", array(TopicData)),
)


DescribeTransactionsResponse = struct(
    "DescribeTransactionsResponse",
    field("throttle_time_ms", INT32),
    field("transaction_states", array(TransactionState)),
)

SPEC = ApiSpec(65, "DescribeTransactions", "0", "0+", DescribeTransactionsRequest, DescribeTransactionsResponse)

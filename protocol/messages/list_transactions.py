"""ListTransactions (key 66): Transactions the coordinator knows, filtered by state and producer id.

Declared v0-2, flexible from v0.
Always flexible; v1 duration_filter; v2 transactional_id_pattern.
"""

from ..schema import ApiSpec, field, struct
from ..types import INT16, INT32, INT64, STRING, array


ListTransactionsRequest = struct(
    "ListTransactionsRequest",
    field("state_filters", array(STRING)),
    field("producer_id_filters", array(INT64)),
    field("duration_filter", INT64, "1+", default=-1),
    field("transactional_id_pattern", STRING, "2+", nullable="2+", default=None),
)


TransactionState = struct(
    "TransactionState",
    field("transactional_id", STRING),
    field("producer_id", INT64),
    field("transaction_state", STRING),
)


ListTransactionsResponse = struct(
    "ListTransactionsResponse",
    field("throttle_time_ms", INT32),
    field("error_code", INT16),
    field("unknown_state_filters", array(STRING)),
    field("transaction_states", array(TransactionState)),
)

SPEC = ApiSpec(66, "ListTransactions", "0-2", "0+", ListTransactionsRequest, ListTransactionsResponse)

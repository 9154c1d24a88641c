"""InitProducerId (key 22): Obtain a producer id and epoch for idempotence or transactions.

Declared v0-6, flexible from v2.
v2 is flexible; v3 sends the current producer_id/epoch to resume; v6 2PC fields (KIP-939).
"""

from ..schema import ApiSpec, field, struct
from ..types import BOOL, INT16, INT32, INT64, STRING


InitProducerIdRequest = struct(
    "InitProducerIdRequest",
    field("transactional_id", STRING, nullable="0+"),
    field("transaction_timeout_ms", INT32),
    field("producer_id", INT64, "3+", default=-1),
    field("producer_epoch", INT16, "3+", default=-1),
    field("enable2_pc", BOOL, "6+"),
    field("keep_prepared_txn", BOOL, "6+"),
)


InitProducerIdResponse = struct(
    "InitProducerIdResponse",
    field("throttle_time_ms", INT32),
    field("error_code", INT16),
    field("producer_id", INT64, default=-1),
    field("producer_epoch", INT16),
    field("ongoing_txn_producer_id", INT64, "6+", default=-1),
    field("ongoing_txn_producer_epoch", INT16, "6+", default=-1),
)

SPEC = ApiSpec(22, "InitProducerId", "0-6", "2+", InitProducerIdRequest, InitProducerIdResponse)

"""EndTxn (key 26): Commit or abort a transaction.

Declared v0-5, flexible from v3.
v3 is flexible; v5 returns producer_id/epoch (transactions v2, KIP-890).
"""

from ..schema import ApiSpec, field, struct
from ..types import BOOL, INT16, INT32, INT64, STRING


EndTxnRequest = struct(
    "EndTxnRequest",
    field("transactional_id", STRING),
    field("producer_id", INT64),
    field("producer_epoch", INT16),
    field("committed", BOOL),
)


EndTxnResponse = struct(
    "EndTxnResponse",
    field("throttle_time_ms", INT32),
    field("error_code", INT16),
    field("producer_id", INT64, "5+", default=-1),
    field("producer_epoch", INT16, "5+", default=-1),
)

SPEC = ApiSpec(26, "EndTxn", "0-5", "3+", EndTxnRequest, EndTxnResponse)

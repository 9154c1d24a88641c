"""AddOffsetsToTxn (key 25): Add a group's offset commits to an ongoing transaction.

Declared v0-4, flexible from v3.
v3 is flexible.
"""

from ..schema import ApiSpec, field, struct
from ..types import INT16, INT32, INT64, STRING


AddOffsetsToTxnRequest = struct(
    "AddOffsetsToTxnRequest",
    field("transactional_id", STRING),
    field("producer_id", INT64),
    field("producer_epoch", INT16),
    field("group_id", STRING),
)


AddOffsetsToTxnResponse = struct(
    "AddOffsetsToTxnResponse",
    field("throttle_time_ms", INT32),
    field("error_code", INT16),
)

SPEC = ApiSpec(25, "AddOffsetsToTxn", "0-4", "3+", AddOffsetsToTxnRequest, AddOffsetsToTxnResponse)

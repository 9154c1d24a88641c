"""CreatePartitions (key 37): Increase topics' partition counts.

Declared v0-3, flexible from v2.
v2 is flexible.
"""

from ..schema import ApiSpec, field, struct
from ..types import BOOL, INT16, INT32, STRING, array


CreatePartitionsAssignment = struct(
    "CreatePartitionsAssignment",
    field("broker_ids", array(INT32)),
)


CreatePartitionsTopic = struct(
    "CreatePartitionsTopic",
    field("name", STRING),
    field("count", INT32),
    field("assignments", array(CreatePartitionsAssignment), nullable="0+"),
)


CreatePartitionsRequest = struct(
    "CreatePartitionsRequest",
    field("topics", array(CreatePartitionsTopic)),
    field("timeout_ms", INT32),
    field("validate_only", BOOL),
)


CreatePartitionsTopicResult = struct(
    "CreatePartitionsTopicResult",
    field("name", STRING),
    field("error_code", INT16),
    field("error_message", STRING, nullable="0+"),
)


CreatePartitionsResponse = struct(
    "CreatePartitionsResponse",
    field("throttle_time_ms", INT32),
    field("results", array(CreatePartitionsTopicResult)),
)

SPEC = ApiSpec(37, "CreatePartitions", "0-3", "2+", CreatePartitionsRequest, CreatePartitionsResponse)

"""OffsetDelete (key 47): Delete a group's committed offsets for some partitions.

Declared v0, never flexible.
Only v0, never flexible.
"""

from ..schema import ApiSpec, field, struct
from ..types import INT16, INT32, STRING, array


OffsetDeleteRequestPartition = struct(
    "OffsetDeleteRequestPartition",
    field("partition_index", INT32),
)


OffsetDeleteRequestTopic = struct(
    "OffsetDeleteRequestTopic",
    field("name", STRING),
    field("partitions", array(OffsetDeleteRequestPartition)),
)


OffsetDeleteRequest = struct(
    "OffsetDeleteRequest",
    field("group_id", STRING),
    field("topics", array(OffsetDeleteRequestTopic)),
)


OffsetDeleteResponsePartition = struct(
    "OffsetDeleteResponsePartition",
    field("partition_index", INT32),
    field("error_code", INT16),
)


OffsetDeleteResponseTopic = struct(
    "OffsetDeleteResponseTopic",
    field("name", STRING),
    field("partitions", array(OffsetDeleteResponsePartition)),
)


OffsetDeleteResponse = struct(
    "OffsetDeleteResponse",
    field("error_code", INT16),
    field("throttle_time_ms", INT32),
    field("topics", array(OffsetDeleteResponseTopic)),
)

SPEC = ApiSpec(47, "OffsetDelete", "0", "none", OffsetDeleteRequest, OffsetDeleteResponse)

"""ListOffsets (key 2): Find the offset for a timestamp per partition (-2 earliest, -1 latest, -3 max timestamp).

Declared v0-11, flexible from v6.
v0 returns old_style_offsets (max_num_offsets); v1 a single timestamp/offset; v2
isolation_level; v4 current/leader epochs; v6 is flexible; v7-v9 add the special
timestamps -3 (max timestamp), -4 (local log start), -5 (last tiered); v10 timeout_ms.
"""

from ..schema import ApiSpec, field, struct
from ..types import INT16, INT32, INT64, INT8, STRING, array


ListOffsetsPartition = struct(
    "ListOffsetsPartition",
    field("partition_index", INT32),
    field("current_leader_epoch", INT32, "4+", default=-1),
    field("timestamp", INT64),
    field("max_num_offsets", INT32, "0", default=1),
)


ListOffsetsTopic = struct(
    "ListOffsetsTopic",
    field("name", STRING),
    field("partitions", array(ListOffsetsPartition)),
)


ListOffsetsRequest = struct(
    "ListOffsetsRequest",
    field("replica_id", INT32),
    field("isolation_level", INT8, "2+"),
    field("topics", array(ListOffsetsTopic)),
    field("timeout_ms", INT32, "10+"),
)


ListOffsetsPartitionResponse = struct(
    "ListOffsetsPartitionResponse",
    field("partition_index", INT32),
    field("error_code", INT16),
    field("old_style_offsets", array(INT64), "0"),
    field("timestamp", INT64, "1+", default=-1),
    field("offset", INT64, "1+", default=-1),
    field("leader_epoch", INT32, "4+", default=-1),
)


ListOffsetsTopicResponse = struct(
    "ListOffsetsTopicResponse",
    field("name", STRING),
    field("partitions", array(ListOffsetsPartitionResponse)),
)


ListOffsetsResponse = struct(
    "ListOffsetsResponse",
    field("throttle_time_ms", INT32, "2+"),
    field("topics", array(ListOffsetsTopicResponse)),
)

SPEC = ApiSpec(2, "ListOffsets", "0-11", "6+", ListOffsetsRequest, ListOffsetsResponse)

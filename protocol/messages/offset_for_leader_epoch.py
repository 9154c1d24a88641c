"""OffsetForLeaderEpoch (key 23): The end offset of a leader epoch per partition (log truncation detection).

Declared v0-4, flexible from v4.
v2 current_leader_epoch; v3 replica_id; v4 is flexible.
"""

from ..schema import ApiSpec, field, struct
from ..types import INT16, INT32, INT64, STRING, array


OffsetForLeaderPartition = struct(
    "OffsetForLeaderPartition",
    field("partition", INT32),
    field("current_leader_epoch", INT32, "2+", default=-1),
    field("leader_epoch", INT32),
)


OffsetForLeaderTopic = struct(
    "OffsetForLeaderTopic",
    field("topic", STRING),
    field("partitions", array(OffsetForLeaderPartition)),
)


OffsetForLeaderEpochRequest = struct(
    "OffsetForLeaderEpochRequest",
    field("replica_id", INT32, "3+", default=-2),
    field("topics", array(OffsetForLeaderTopic)),
)


EpochEndOffset = struct(
    "EpochEndOffset",
    field("error_code", INT16),
    field("partition", INT32),
    field("leader_epoch", INT32, "1+", default=-1),
    field("end_offset", INT64, default=-1),
)


OffsetForLeaderTopicResult = struct(
    "OffsetForLeaderTopicResult",
    field("topic", STRING),
    field("partitions", array(EpochEndOffset)),
)


OffsetForLeaderEpochResponse = struct(
    "OffsetForLeaderEpochResponse",
    field("throttle_time_ms", INT32, "2+"),
    field("topics", array(OffsetForLeaderTopicResult)),
)

SPEC = ApiSpec(23, "OffsetForLeaderEpoch", "0-4", "4+", OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse)

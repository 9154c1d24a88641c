"""OffsetFetch (key 9): Read a group's committed offsets; from v8 several groups in one request.

Declared v0-10, flexible from v6.
v2 allows topics=null (all topics) and adds a top-level error_code; v6 is flexible; v7
require_stable; v8 batches several groups (``groups``); v9 member_id/member_epoch (KIP-848);
v10 names topics by topic_id. Request struct names follow Kafka: OffsetFetchRequestTopic
(v0-7) and OffsetFetchRequestTopics (v8+), likewise for the response.
"""

from ..schema import ApiSpec, field, struct
from ..types import BOOL, INT16, INT32, INT64, STRING, UUID, array


OffsetFetchRequestTopic = struct(
    "OffsetFetchRequestTopic",
    field("name", STRING, "0-7"),
    field("partition_indexes", array(INT32), "0-7"),
)


OffsetFetchRequestTopics = struct(
    "OffsetFetchRequestTopics",
    field("name", STRING, "8-9"),
    field("topic_id", UUID, "10+"),
    field("partition_indexes", array(INT32), "8+"),
)


OffsetFetchRequestGroup = struct(
    "OffsetFetchRequestGroup",
    field("group_id", STRING, "8+"),
    field("member_id", STRING, "9+", nullable="9+"),
    field("member_epoch", INT32, "9+", default=-1),
    field("topics", array(OffsetFetchRequestTopics), "8+", nullable="8+"),
)


OffsetFetchRequest = struct(
    "OffsetFetchRequest",
    field("group_id", STRING, "0-7"),
    field("topics", array(OffsetFetchRequestTopic), "0-7", nullable="2-7"),
    field("groups", array(OffsetFetchRequestGroup), "8+"),
    field("require_stable", BOOL, "7+"),
)


OffsetFetchResponsePartition = struct(
    "OffsetFetchResponsePartition",
    field("partition_index", INT32, "0-7"),
    field("committed_offset", INT64, "0-7"),
    field("committed_leader_epoch", INT32, "5-7", default=-1),
    field("metadata", STRING, "0-7", nullable="0-7"),
    field("error_code", INT16, "0-7"),
)


OffsetFetchResponseTopic = struct(
    "OffsetFetchResponseTopic",
    field("name", STRING, "0-7"),
    field("partitions", array(OffsetFetchResponsePartition), "0-7"),
)


OffsetFetchResponsePartitions = struct(
    "OffsetFetchResponsePartitions",
    field("partition_index", INT32, "8+"),
    field("committed_offset", INT64, "8+"),
    field("committed_leader_epoch", INT32, "8+", default=-1),
    field("metadata", STRING, "8+", nullable="8+"),
    field("error_code", INT16, "8+"),
)


OffsetFetchResponseTopics = struct(
    "OffsetFetchResponseTopics",
    field("name", STRING, "8-9"),
    field("topic_id", UUID, "10+"),
    field("partitions", array(OffsetFetchResponsePartitions), "8+"),
)


OffsetFetchResponseGroup = struct(
    "OffsetFetchResponseGroup",
    field("group_id", STRING, "8+"),
    field("topics", array(OffsetFetchResponseTopics), "8+"),
    field("error_code", INT16, "8+"),
)


OffsetFetchResponse = struct(
    "OffsetFetchResponse",
    field("throttle_time_ms", INT32, "3+"),
    field("topics", array(OffsetFetchResponseTopic), "0-7"),
    field("error_code", INT16, "2-7"),
    field("groups", array(OffsetFetchResponseGroup), "8+"),
)

SPEC = ApiSpec(9, "OffsetFetch", "0-10", "6+", OffsetFetchRequest, OffsetFetchResponse)

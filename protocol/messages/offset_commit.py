"""OffsetCommit (key 8): A group member stores committed offsets (with a metadata string) for partitions.

Declared v0-10, flexible from v8.
v1 adds generation_id/member_id and a commit timestamp; v2-v4 retention_time_ms; v5 drops
retention; v6 committed_leader_epoch; v7 group_instance_id; v8 is flexible; v9 serves the
KIP-848 consumer protocol; v10 names topics by topic_id.
"""

from ..schema import ApiSpec, field, struct
from ..types import INT16, INT32, INT64, STRING, UUID, array


OffsetCommitRequestPartition = struct(
    "OffsetCommitRequestPartition",
    field("partition_index", INT32),
    field("committed_offset", INT64),
    field("committed_leader_epoch", INT32, "6+", default=-1),
    field("commit_timestamp", INT64, "1", default=-1),
    field("committed_metadata", STRING, nullable="0+"),
)


OffsetCommitRequestTopic = struct(
    "OffsetCommitRequestTopic",
    field("name", STRING, "0-9"),
    field("topic_id", UUID, "10+"),
    field("partitions", array(OffsetCommitRequestPartition)),
)


OffsetCommitRequest = struct(
    "OffsetCommitRequest",
    field("group_id", STRING),
    field("generation_id_or_member_epoch", INT32, "1+", default=-1),
    field("member_id", STRING, "1+"),
    field("group_instance_id", STRING, "7+", nullable="7+"),
    field("retention_time_ms", INT64, "2-4", default=-1),
    field("topics", array(OffsetCommitRequestTopic)),
)


OffsetCommitResponsePartition = struct(
    "OffsetCommitResponsePartition",
    field("partition_index", INT32),
    field("error_code", INT16),
)


OffsetCommitResponseTopic = struct(
    "OffsetCommitResponseTopic",
    field("name", STRING, "0-9"),
    field("topic_id", UUID, "10+"),
    field("partitions", array(OffsetCommitResponsePartition)),
)


OffsetCommitResponse = struct(
    "OffsetCommitResponse",
    field("throttle_time_ms", INT32, "3+"),
    field("topics", array(OffsetCommitResponseTopic)),
)

SPEC = ApiSpec(8, "OffsetCommit", "0-10", "8+", OffsetCommitRequest, OffsetCommitResponse)

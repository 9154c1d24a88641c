"""TxnOffsetCommit (key 28): Commit offsets as part of a transaction.

Declared v0-5, flexible from v3.
v2 committed_leader_epoch; v3 is flexible and adds generation_id/member_id/
group_instance_id.
"""

from ..schema import ApiSpec, field, struct
from ..types import INT16, INT32, INT64, STRING, array


TxnOffsetCommitRequestPartition = struct(
    "TxnOffsetCommitRequestPartition",
    field("partition_index", INT32),
    field("committed_offset", INT64),
    field("committed_leader_epoch", INT32, "2+", default=-1),
    field("committed_metadata", STRING, nullable="0+"),
)


TxnOffsetCommitRequestTopic = struct(
    "TxnOffsetCommitRequestTopic",
    field("name", STRING),
    field("partitions", array(TxnOffsetCommitRequestPartition)),
)


TxnOffsetCommitRequest = struct(
    "TxnOffsetCommitRequest",
    field("transactional_id", STRING),
    field("group_id", STRING),
    field("producer_id", INT64),
    field("producer_epoch", INT16),
    field("generation_id", INT32, "3+", default=-1),
    field("member_id", STRING, "3+"),
    field("group_instance_id", STRING, "3+", nullable="3+"),
    field("topics", array(TxnOffsetCommitRequestTopic)),
)


TxnOffsetCommitResponsePartition = struct(
    "TxnOffsetCommitResponsePartition",
    field("partition_index", INT32),
    field("error_code", INT16),
)


TxnOffsetCommitResponseTopic = struct(
    "TxnOffsetCommitResponseTopic",
    field("name", STRING),
    field("partitions", array(TxnOffsetCommitResponsePartition)),
)


TxnOffsetCommitResponse = struct(
    "TxnOffsetCommitResponse",
    field("throttle_time_ms", INT32),
    field("topics", array(TxnOffsetCommitResponseTopic)),
)

SPEC = ApiSpec(28, "TxnOffsetCommit", "0-5", "3+", TxnOffsetCommitRequest, TxnOffsetCommitResponse)

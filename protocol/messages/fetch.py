"""Fetch (key 1): A consumer reads record batches from partitions, long-polling up to max_wait_ms.

Declared v0-18, flexible from v12.
v4 adds isolation_level, last_stable_offset and aborted_transactions; v5 log_start_offset;
v7 fetch sessions (session_id/session_epoch, forgotten_topics_data); v9 current_leader_epoch;
v11 rack_id and preferred_read_replica; v12 is flexible (last_fetched_epoch, diverging_epoch
and current_leader tags); v13 names topics by topic_id; v15 replica_state tag replaces
replica_id; v16 node_endpoints tag; v17 replica_directory_id tag; v18 high_watermark tag.
A response records value may be a RecordsRef, emitted as its own chunk for sendfile.
"""

from ..schema import ApiSpec, field, struct
from ..types import INT16, INT32, INT64, INT8, RECORDS, STRING, UUID, array


ReplicaState = struct(
    "ReplicaState",
    field("replica_id", INT32, "15+", default=-1),
    field("replica_epoch", INT64, "15+", default=-1),
)


FetchPartition = struct(
    "FetchPartition",
    field("partition", INT32),
    field("current_leader_epoch", INT32, "9+", default=-1),
    field("fetch_offset", INT64),
    field("last_fetched_epoch", INT32, "12+", default=-1),
    field("log_start_offset", INT64, "5+", default=-1),
    field("partition_max_bytes", INT32),
    field("replica_directory_id", UUID, "17+", tag=0),
    field("high_watermark", INT64, "18+", default=0x7FFFFFFFFFFFFFFF, tag=1),
)


FetchTopic = struct(
    "FetchTopic",
    field("topic", STRING, "0-12"),
    field("topic_id", UUID, "13+"),
    field("partitions", array(FetchPartition)),
)


ForgottenTopic = struct(
    "ForgottenTopic",
    field("topic", STRING, "7-12"),
    field("topic_id", UUID, "13+"),
    field("partitions", array(INT32), "7+"),
)


FetchRequest = struct(
    "FetchRequest",
    field("cluster_id", STRING, "12+", nullable="12+", tag=0),
    field("replica_id", INT32, "0-14", default=-1),
    field("replica_state", ReplicaState, "15+", tag=1),
    field("max_wait_ms", INT32),
    field("min_bytes", INT32),
    field("max_bytes", INT32, "3+", default=2147483647),
    field("isolation_level", INT8, "4+"),
    field("session_id", INT32, "7+"),
    field("session_epoch", INT32, "7+", default=-1),
    field("topics", array(FetchTopic)),
    field("forgotten_topics_data", array(ForgottenTopic), "7+"),
    field("rack_id", STRING, "11+"),
)


EpochEndOffset = struct(
    "EpochEndOffset",
    field("epoch", INT32, "12+", default=-1),
    field("end_offset", INT64, "12+", default=-1),
)


LeaderIdAndEpoch = struct(
    "LeaderIdAndEpoch",
    field("leader_id", INT32, "12+", default=-1),
    field("leader_epoch", INT32, "12+", default=-1),
)


SnapshotId = struct(
    "SnapshotId",
    field("end_offset", INT64, default=-1),
    field("epoch", INT32, default=-1),
)


AbortedTransaction = struct(
    "AbortedTransaction",
    field("producer_id", INT64, "4+"),
    field("first_offset", INT64, "4+"),
)


PartitionData = struct(
    "PartitionData",
    field("partition_index", INT32),
    field("error_code", INT16),
    field("high_watermark", INT64),
    field("last_stable_offset", INT64, "4+", default=-1),
    field("log_start_offset", INT64, "5+", default=-1),
    field("diverging_epoch", EpochEndOffset, "12+", tag=0),
    field("current_leader", LeaderIdAndEpoch, "12+", tag=1),
    field("snapshot_id", SnapshotId, "12+", tag=2),
    field("aborted_transactions", array(AbortedTransaction), "4+", nullable="4+"),
    field("preferred_read_replica", INT32, "11+", default=-1),
    field("records", RECORDS, nullable="0+"),
)


FetchableTopicResponse = struct(
    "FetchableTopicResponse",
    field("topic", STRING, "0-12"),
    field("topic_id", UUID, "13+"),
    field("partitions", array(PartitionData)),
)


NodeEndpoint = struct(
    "NodeEndpoint",
    field("node_id", INT32, "16+"),
    field("host", STRING, "16+"),
    field("port", INT32, "16+"),
    field("rack", STRING, "16+", nullable="16+"),
)


FetchResponse = struct(
    "FetchResponse",
    field("throttle_time_ms", INT32, "1+"),
    field("error_code", INT16, "7+"),
    field("session_id", INT32, "7+"),
    field("responses", array(FetchableTopicResponse)),
    field("node_endpoints", array(NodeEndpoint), "16+", tag=0),
)

SPEC = ApiSpec(1, "Fetch", "0-18", "12+", FetchRequest, FetchResponse)

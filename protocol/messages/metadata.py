"""Metadata (key 3): Brokers, the controller, and topics with their partitions and leaders.

Declared v0-13, flexible from v9.
In v0 an empty topic list means all topics; from v1 null means all and empty means none.
v1 adds rack, is_internal and controller_id; v2 cluster_id; v4 allow_auto_topic_creation;
v7 leader_epoch; v8 authorized operations; v9 is flexible; v10 topic ids; v11 drops the
cluster authorized operations (see DescribeCluster); v13 adds a top-level error_code.
MetadataRequest.topics is nullable only from v1, so its default is [] (not None).
"""

from ..schema import ApiSpec, field, struct
from ..types import BOOL, INT16, INT32, STRING, UUID, array


MetadataRequestTopic = struct(
    "MetadataRequestTopic",
    field("topic_id", UUID, "10+"),
    field("name", STRING, nullable="10+"),
)


MetadataRequest = struct(
    "MetadataRequest",
    field("topics", array(MetadataRequestTopic), nullable="1+"),
    field("allow_auto_topic_creation", BOOL, "4+", default=True),
    field("include_cluster_authorized_operations", BOOL, "8-10"),
    field("include_topic_authorized_operations", BOOL, "8+"),
)


MetadataResponseBroker = struct(
    "MetadataResponseBroker",
    field("node_id", INT32),
    field("host", STRING),
    field("port", INT32),
    field("rack", STRING, "1+", nullable="1+"),
)


MetadataResponsePartition = struct(
    "MetadataResponsePartition",
    field("error_code", INT16),
    field("partition_index", INT32),
    field("leader_id", INT32),
    field("leader_epoch", INT32, "7+", default=-1),
    field("replica_nodes", array(INT32)),
    field("isr_nodes", array(INT32)),
    field("offline_replicas", array(INT32), "5+"),
)


MetadataResponseTopic = struct(
    "MetadataResponseTopic",
    field("error_code", INT16),
    field("name", STRING, nullable="12+"),
    field("topic_id", UUID, "10+"),
    field("is_internal", BOOL, "1+"),
    field("partitions", array(MetadataResponsePartition)),
    field("topic_authorized_operations", INT32, "8+", default=-2147483648),
)


MetadataResponse = struct(
    "MetadataResponse",
    field("throttle_time_ms", INT32, "3+"),
    field("brokers", array(MetadataResponseBroker)),
    field("cluster_id", STRING, "2+", nullable="2+"),
    field("controller_id", INT32, "1+", default=-1),
    field("topics", array(MetadataResponseTopic)),
    field("cluster_authorized_operations", INT32, "8-10", default=-2147483648),
    field("error_code", INT16, "13+"),
)

SPEC = ApiSpec(3, "Metadata", "0-13", "9+", MetadataRequest, MetadataResponse)

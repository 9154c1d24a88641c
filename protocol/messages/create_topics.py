"""CreateTopics (key 19): Create topics with partition counts, replica assignments and configs.

Declared v0-7, flexible from v5.
v1 validate_only; v4 lets num_partitions/replication_factor be -1 (broker defaults);
v5 is flexible and returns the topic configs; v7 returns topic_id.
"""

from ..schema import ApiSpec, field, struct
from ..types import BOOL, INT16, INT32, INT8, STRING, UUID, array


CreatableReplicaAssignment = struct(
    "CreatableReplicaAssignment",
    field("partition_index", INT32),
    field("broker_ids", array(INT32)),
)


CreatableTopicConfig = struct(
    "CreatableTopicConfig",
    field("name", STRING),
    field("value", STRING, nullable="0+"),
)


CreatableTopic = struct(
    "CreatableTopic",
    field("name", STRING),
    field("num_partitions", INT32),
    field("replication_factor", INT16),
    field("assignments", array(CreatableReplicaAssignment)),
    field("configs", array(CreatableTopicConfig)),
)


CreateTopicsRequest = struct(
    "CreateTopicsRequest",
    field("topics", array(CreatableTopic)),
    field("timeout_ms", INT32, default=60000),
    field("validate_only", BOOL, "1+"),
)


CreatableTopicConfigs = struct(
    "CreatableTopicConfigs",
    field("name", STRING, "5+"),
    field("value", STRING, "5+", nullable="5+"),
    field("read_only", BOOL, "5+"),
    field("config_source", INT8, "5+", default=-1),
    field("is_sensitive", BOOL, "5+"),
)


CreatableTopicResult = struct(
    "CreatableTopicResult",
    field("name", STRING),
    field("topic_id", UUID, "7+"),
    field("error_code", INT16),
    field("error_message", STRING, "1+", nullable="0+"),
    field("topic_config_error_code", INT16, "5+", tag=0),
    field("num_partitions", INT32, "5+", default=-1),
    field("replication_factor", INT16, "5+", default=-1),
    field("configs", array(CreatableTopicConfigs), "5+", nullable="5+"),
)


CreateTopicsResponse = struct(
    "CreateTopicsResponse",
    field("throttle_time_ms", INT32, "2+"),
    field("topics", array(CreatableTopicResult)),
)

SPEC = ApiSpec(19, "CreateTopics", "0-7", "5+", CreateTopicsRequest, CreateTopicsResponse)

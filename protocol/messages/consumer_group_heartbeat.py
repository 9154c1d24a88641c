"""ConsumerGroupHeartbeat (key 68): The KIP-848 consumer group protocol: join, heartbeat and receive assignments.

Declared v0-1, flexible from v0.
Always flexible; v1 subscribed_topic_regex. The request's topic_partitions and the
response assignment's topic_partitions share one struct class, TopicPartitions, because
Kafka declares them identically.
"""

from ..schema import ApiSpec, field, struct
from ..types import INT16, INT32, STRING, UUID, array


TopicPartitions = struct(
    "TopicPartitions",
    field("topic_id", UUID),
    field("partitions", array(INT32)),
)


ConsumerGroupHeartbeatRequest = struct(
    "ConsumerGroupHeartbeatRequest",
    field("group_id", STRING),
    field("member_id", STRING),
    field("member_epoch", INT32),
    field("instance_id", STRING, nullable="0+"),
    field("rack_id", STRING, nullable="0+"),
    field("rebalance_timeout_ms", INT32, default=-1),
    field("subscribed_topic_names", array(STRING), nullable="0+"),
    field("subscribed_topic_regex", STRING, "1+", nullable="1+"),
    field("server_assignor", STRING, nullable="0+"),
    field("topic_partitions", array(TopicPartitions), nullable="0+"),
)


Assignment = struct(
    "Assignment",
    field("topic_partitions", array(TopicPartitions)),
)


ConsumerGroupHeartbeatResponse = struct(
    "ConsumerGroupHeartbeatResponse",
    field("throttle_time_ms", INT32),
    field("error_code", INT16),
    field("error_message", STRING, nullable="0+"),
    field("member_id", STRING, nullable="0+"),
    field("member_epoch", INT32),
    field("heartbeat_interval_ms", INT32),
    field("assignment", Assignment, nullable="0+"),
)

SPEC = ApiSpec(68, "ConsumerGroupHeartbeat", "0-1", "0+", ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse)

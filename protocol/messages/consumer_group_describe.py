"""ConsumerGroupDescribe (key 69): Describe KIP-848 consumer groups, their members and assignments.

Declared v0-1, flexible from v0.
Always flexible; v1 member_type.
"""

from ..schema import ApiSpec, field, struct
from ..types import BOOL, INT8, INT16, INT32, STRING, UUID, array


ConsumerGroupDescribeRequest = struct(
    "ConsumerGroupDescribeRequest",
    field("group_ids", array(STRING)),
    field("include_authorized_operations", BOOL),
)


TopicPartitions = struct(
    "TopicPartitions",
    field("topic_id", UUID),
    field("topic_name", STRING),
    field("partitions", array(INT32)),
)


Assignment = struct(
    "Assignment",
    field("topic_partitions", array(TopicPartitions)),
)


Member = struct(
    "Member",
    field("member_id", STRING),
    field("instance_id", STRING, nullable="0+"),
    field("rack_id", STRING, nullable="0+"),
    field("member_epoch", INT32),
    field("client_id", STRING),
    field("client_host", STRING),
    field("subscribed_topic_names", array(STRING)),
    field("subscribed_topic_regex", STRING, nullable="0+"),
    field("assignment", Assignment),
    field("target_assignment", Assignment),
    field("member_type", INT8, "1+", default=-1),
)


DescribedGroup = struct(
    "DescribedGroup",
    field("error_code", INT16),
    field("error_message", STRING, nullable="0+"),
    field("group_id", STRING),
    field("group_state", STRING),
    field("group_epoch", INT32),
    field("assignment_epoch", INT32),
    field("assignor_name", STRING),
    field("members", array(Member)),
    field("authorized_operations", INT32, default=-2147483648),
)


ConsumerGroupDescribeResponse = struct(
    "ConsumerGroupDescribeResponse",
    field("throttle_time_ms", INT32),
    field("groups", array(DescribedGroup)),
)

SPEC = ApiSpec(69, "ConsumerGroupDescribe", "0-1", "0+", ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse)

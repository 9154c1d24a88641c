"""JoinGroup (key 11): A member joins a classic group; the leader receives every member's metadata.

Declared v0-9, flexible from v6.
v1 rebalance_timeout_ms; v4 expects MEMBER_ID_REQUIRED and a second join; v5
group_instance_id (static members); v6 is flexible; v7 protocol_type in the response; v8
reason; v9 skip_assignment.
"""

from ..schema import ApiSpec, field, struct
from ..types import BOOL, BYTES, INT16, INT32, STRING, array


JoinGroupRequestProtocol = struct(
    "JoinGroupRequestProtocol",
    field("name", STRING),
    field("metadata", BYTES),
)


JoinGroupRequest = struct(
    "JoinGroupRequest",
    field("group_id", STRING),
    field("session_timeout_ms", INT32),
    field("rebalance_timeout_ms", INT32, "1+", default=-1),
    field("member_id", STRING),
    field("group_instance_id", STRING, "5+", nullable="5+"),
    field("protocol_type", STRING),
    field("protocols", array(JoinGroupRequestProtocol)),
    field("reason", STRING, "8+", nullable="8+"),
)


JoinGroupResponseMember = struct(
    "JoinGroupResponseMember",
    field("member_id", STRING),
    field("group_instance_id", STRING, "5+", nullable="5+"),
    field("metadata", BYTES),
)


JoinGroupResponse = struct(
    "JoinGroupResponse",
    field("throttle_time_ms", INT32, "2+"),
    field("error_code", INT16),
    field("generation_id", INT32, default=-1),
    field("protocol_type", STRING, "7+", nullable="7+"),
    field("protocol_name", STRING, nullable="7+"),
    field("leader", STRING),
    field("skip_assignment", BOOL, "9+"),
    field("member_id", STRING),
    field("members", array(JoinGroupResponseMember)),
)

SPEC = ApiSpec(11, "JoinGroup", "0-9", "6+", JoinGroupRequest, JoinGroupResponse)

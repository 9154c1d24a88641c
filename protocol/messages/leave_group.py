"""LeaveGroup (key 13): Members leave a classic group; from v3 several members (static membership) at once.

Declared v0-5, flexible from v4.
v3 leaves several members at once (members with group_instance_id); v4 is flexible;
v5 adds a reason per member.
"""

from ..schema import ApiSpec, field, struct
from ..types import INT16, INT32, STRING, array


MemberIdentity = struct(
    "MemberIdentity",
    field("member_id", STRING, "3+"),
    field("group_instance_id", STRING, "3+", nullable="3+"),
    field("reason", STRING, "5+", nullable="5+"),
)


LeaveGroupRequest = struct(
    "LeaveGroupRequest",
    field("group_id", STRING),
    field("member_id", STRING, "0-2"),
    field("members", array(MemberIdentity), "3+"),
)


MemberResponse = struct(
    "MemberResponse",
    field("member_id", STRING, "3+"),
    field("group_instance_id", STRING, "3+", nullable="3+"),
    field("error_code", INT16, "3+"),
)


LeaveGroupResponse = struct(
    "LeaveGroupResponse",
    field("throttle_time_ms", INT32, "1+"),
    field("error_code", INT16),
    field("members", array(MemberResponse), "3+"),
)

SPEC = ApiSpec(13, "LeaveGroup", "0-5", "4+", LeaveGroupRequest, LeaveGroupResponse)

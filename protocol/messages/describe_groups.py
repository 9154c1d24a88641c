"""DescribeGroups (key 15): State, protocol and members of classic groups.

Declared v0-6, flexible from v5.
v3 include_authorized_operations (answer -2147483648 when not computed); v4
group_instance_id per member; v5 is flexible; v6 error_message per group.
"""

from ..schema import ApiSpec, field, struct
from ..types import BOOL, BYTES, INT16, INT32, STRING, array


DescribeGroupsRequest = struct(
    "DescribeGroupsRequest",
    field("groups", array(STRING)),
    field("include_authorized_operations", BOOL, "3+"),
)


DescribedGroupMember = struct(
    "DescribedGroupMember",
    field("member_id", STRING),
    field("group_instance_id", STRING, "4+", nullable="4+"),
    field("client_id", STRING),
    field("client_host", STRING),
    field("member_metadata", BYTES),
    field("member_assignment", BYTES),
)


DescribedGroup = struct(
    "DescribedGroup",
    field("error_code", INT16),
    field("error_message", STRING, "6+", nullable="6+", default=None),
    field("group_id", STRING),
    field("group_state", STRING),
    field("protocol_type", STRING),
    field("protocol_data", STRING),
    field("members", array(DescribedGroupMember)),
    field("authorized_operations", INT32, "3+", default=-2147483648),
)


DescribeGroupsResponse = struct(
    "DescribeGroupsResponse",
    field("throttle_time_ms", INT32, "1+"),
    field("groups", array(DescribedGroup)),
)

SPEC = ApiSpec(15, "DescribeGroups", "0-6", "5+", DescribeGroupsRequest, DescribeGroupsResponse)

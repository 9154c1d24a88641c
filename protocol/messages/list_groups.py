"""ListGroups (key 16): All groups the coordinator knows, optionally filtered by state and type.

Declared v0-5, flexible from v3.
v3 is flexible; v4 states_filter; v5 types_filter and group_type.
"""

from ..schema import ApiSpec, field, struct
from ..types import INT16, INT32, STRING, array


ListGroupsRequest = struct(
    "ListGroupsRequest",
    field("states_filter", array(STRING), "4+"),
    field("types_filter", array(STRING), "5+"),
)


ListedGroup = struct(
    "ListedGroup",
    field("group_id", STRING),
    field("protocol_type", STRING),
    field("group_state", STRING, "4+"),
    field("group_type", STRING, "5+"),
)


ListGroupsResponse = struct(
    "ListGroupsResponse",
    field("throttle_time_ms", INT32, "1+"),
    field("error_code", INT16),
    field("groups", array(ListedGroup)),
)

SPEC = ApiSpec(16, "ListGroups", "0-5", "3+", ListGroupsRequest, ListGroupsResponse)

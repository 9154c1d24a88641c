"""DeleteGroups (key 42): Delete empty groups and their committed offsets.

Declared v0-2, flexible from v2.
v2 is flexible.
"""

from ..schema import ApiSpec, field, struct
from ..types import INT16, INT32, STRING, array


DeleteGroupsRequest = struct(
    "DeleteGroupsRequest",
    field("groups_names", array(STRING)),
)


DeletableGroupResult = struct(
    "DeletableGroupResult",
    field("group_id", STRING),
    field("error_code", INT16),
)


DeleteGroupsResponse = struct(
    "DeleteGroupsResponse",
    field("throttle_time_ms", INT32),
    field("results", array(DeletableGroupResult)),
)

SPEC = ApiSpec(42, "DeleteGroups", "0-2", "2+", DeleteGroupsRequest, DeleteGroupsResponse)

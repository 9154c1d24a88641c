"""SyncGroup (key 14): The leader hands out assignments; every member receives its own.

Declared v0-5, flexible from v4.
v3 adds group_instance_id; v4 is flexible; v5 protocol_type/protocol_name (KIP-559).
"""

from ..schema import ApiSpec, field, struct
from ..types import BYTES, INT16, INT32, STRING, array


SyncGroupRequestAssignment = struct(
    "SyncGroupRequestAssignment",
    field("member_id", STRING),
    field("assignment", BYTES),
)


SyncGroupRequest = struct(
    "SyncGroupRequest",
    field("group_id", STRING),
    field("generation_id", INT32),
    field("member_id", STRING),
    field("group_instance_id", STRING, "3+", nullable="3+"),
    field("protocol_type", STRING, "5+", nullable="5+"),
    field("protocol_name", STRING, "5+", nullable="5+"),
    field("assignments", array(SyncGroupRequestAssignment)),
)


SyncGroupResponse = struct(
    "SyncGroupResponse",
    field("throttle_time_ms", INT32, "1+"),
    field("error_code", INT16),
    field("protocol_type", STRING, "5+", nullable="5+"),
    field("protocol_name", STRING, "5+", nullable="5+"),
    field("assignment", BYTES),
)

SPEC = ApiSpec(14, "SyncGroup", "0-5", "4+", SyncGroupRequest, SyncGroupResponse)

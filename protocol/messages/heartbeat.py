"""Heartbeat (key 12): A classic group member keeps its session alive and learns of rebalances.

Declared v0-4, flexible from v4.
v3 adds group_instance_id; v4 is flexible.
"""

from ..schema import ApiSpec, field, struct
from ..types import INT16, INT32, STRING


HeartbeatRequest = struct(
    "HeartbeatRequest",
    field("group_id", STRING),
    field("generation_id", INT32),
    field("member_id", STRING),
    field("group_instance_id", STRING, "3+", nullable="3+"),
)


HeartbeatResponse = struct(
    "HeartbeatResponse",
    field("throttle_time_ms", INT32, "1+"),
    field("error_code", INT16),
)

SPEC = ApiSpec(12, "Heartbeat", "0-4", "4+", HeartbeatRequest, HeartbeatResponse)

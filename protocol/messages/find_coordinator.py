"""FindCoordinator (key 10): Which broker coordinates a group or transactional id; from v4 several keys at once.

Declared v0-6, flexible from v3.
v1 adds key_type (0 group, 1 transaction); v3 is flexible; v4 batches keys
(coordinator_keys in, coordinators out); v6 share groups.
"""

from ..schema import ApiSpec, field, struct
from ..types import INT16, INT32, INT8, STRING, array


FindCoordinatorRequest = struct(
    "FindCoordinatorRequest",
    field("key", STRING, "0-3"),
    field("key_type", INT8, "1+"),
    field("coordinator_keys", array(STRING), "4+"),
)


Coordinator = struct(
    "Coordinator",
    field("key", STRING, "4+"),
    field("node_id", INT32, "4+"),
    field("host", STRING, "4+"),
    field("port", INT32, "4+"),
    field("error_code", INT16, "4+"),
    field("error_message", STRING, "4+", nullable="4+"),
)


FindCoordinatorResponse = struct(
    "FindCoordinatorResponse",
    field("throttle_time_ms", INT32, "1+"),
    field("error_code", INT16, "0-3"),
    field("error_message", STRING, "1-3", nullable="1-3"),
    field("node_id", INT32, "0-3"),
    field("host", STRING, "0-3"),
    field("port", INT32, "0-3"),
    field("coordinators", array(Coordinator), "4+"),
)

SPEC = ApiSpec(10, "FindCoordinator", "0-6", "3+", FindCoordinatorRequest, FindCoordinatorResponse)

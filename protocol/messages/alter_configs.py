"""AlterConfigs (key 33): Replace the whole config override set of resources (the legacy API).

Declared v0-2, flexible from v2.
The legacy whole-set replacement (aiokafka still uses it); v2 is flexible.
"""

from ..schema import ApiSpec, field, struct
from ..types import BOOL, INT16, INT32, INT8, STRING, array


AlterableConfig = struct(
    "AlterableConfig",
    field("name", STRING),
    field("value", STRING, nullable="0+"),
)


AlterConfigsResource = struct(
    "AlterConfigsResource",
    field("resource_type", INT8),
    field("resource_name", STRING),
    field("configs", array(AlterableConfig)),
)


AlterConfigsRequest = struct(
    "AlterConfigsRequest",
    field("resources", array(AlterConfigsResource)),
    field("validate_only", BOOL),
)


AlterConfigsResourceResponse = struct(
    "AlterConfigsResourceResponse",
    field("error_code", INT16),
    field("error_message", STRING, nullable="0+"),
    field("resource_type", INT8),
    field("resource_name", STRING),
)


AlterConfigsResponse = struct(
    "AlterConfigsResponse",
    field("throttle_time_ms", INT32),
    field("responses", array(AlterConfigsResourceResponse)),
)

SPEC = ApiSpec(33, "AlterConfigs", "0-2", "2+", AlterConfigsRequest, AlterConfigsResponse)

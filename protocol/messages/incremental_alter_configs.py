"""IncrementalAlterConfigs (key 44): Set, delete, append to or subtract from single config entries.

Declared v0-1, flexible from v1.
v1 is flexible.
"""

from ..schema import ApiSpec, field, struct
from ..types import BOOL, INT16, INT32, INT8, STRING, array


AlterableConfig = struct(
    "AlterableConfig",
    field("name", STRING),
    field("config_operation", INT8),
    field("value", STRING, nullable="0+"),
)


AlterConfigsResource = struct(
    "AlterConfigsResource",
    field("resource_type", INT8),
    field("resource_name", STRING),
    field("configs", array(AlterableConfig)),
)


IncrementalAlterConfigsRequest = struct(
    "IncrementalAlterConfigsRequest",
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


IncrementalAlterConfigsResponse = struct(
    "IncrementalAlterConfigsResponse",
    field("throttle_time_ms", INT32),
    field("responses", array(AlterConfigsResourceResponse)),
)

SPEC = ApiSpec(44, "IncrementalAlterConfigs", "0-1", "1+", IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse)

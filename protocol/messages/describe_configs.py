"""DescribeConfigs (key 32): Read topic or broker configs with their sources and synonyms.

Declared v0-4, flexible from v4.
v1 include_synonyms; v3 include_documentation; v4 is flexible.
"""

from ..schema import ApiSpec, field, struct
from ..types import BOOL, INT16, INT32, INT8, STRING, array


DescribeConfigsResource = struct(
    "DescribeConfigsResource",
    field("resource_type", INT8),
    field("resource_name", STRING),
    field("configuration_keys", array(STRING), nullable="0+"),
)


DescribeConfigsRequest = struct(
    "DescribeConfigsRequest",
    field("resources", array(DescribeConfigsResource)),
    field("include_synonyms", BOOL, "1+"),
    field("include_documentation", BOOL, "3+"),
)


DescribeConfigsSynonym = struct(
    "DescribeConfigsSynonym",
    field("name", STRING, "1+"),
    field("value", STRING, "1+", nullable="0+"),
    field("source", INT8, "1+"),
)


DescribeConfigsResourceResult = struct(
    "DescribeConfigsResourceResult",
    field("name", STRING),
    field("value", STRING, nullable="0+"),
    field("read_only", BOOL),
    field("is_default", BOOL, "0"),
    field("config_source", INT8, "1+", default=-1),
    field("is_sensitive", BOOL),
    field("synonyms", array(DescribeConfigsSynonym), "1+"),
    field("config_type", INT8, "3+"),
    field("documentation", STRING, "3+", nullable="0+"),
)


DescribeConfigsResult = struct(
    "DescribeConfigsResult",
    field("error_code", INT16),
    field("error_message", STRING, nullable="0+"),
    field("resource_type", INT8),
    field("resource_name", STRING),
    field("configs", array(DescribeConfigsResourceResult)),
)


DescribeConfigsResponse = struct(
    "DescribeConfigsResponse",
    field("throttle_time_ms", INT32),
    field("results", array(DescribeConfigsResult)),
)

SPEC = ApiSpec(32, "DescribeConfigs", "0-4", "4+", DescribeConfigsRequest, DescribeConfigsResponse)

"""ApiVersions (key 18): Which versions of which APIs the broker serves. Its response always uses header v0, so a
client that sent a version we do not know can still read the UNSUPPORTED_VERSION answer.

Declared v0-4, flexible from v3.
v3 is flexible and adds client_software_name/version; its response tags
(supported_features, finalized_features...) are written only when set, as Kafka does.
"""

from ..schema import ApiSpec, field, struct
from ..types import BOOL, INT16, INT32, INT64, STRING, array


ApiVersionsRequest = struct(
    "ApiVersionsRequest",
    field("client_software_name", STRING, "3+"),
    field("client_software_version", STRING, "3+"),
)


ApiVersion = struct(
    "ApiVersion",
    field("api_key", INT16),
    field("min_version", INT16),
    field("max_version", INT16),
)


SupportedFeatureKey = struct(
    "SupportedFeatureKey",
    field("name", STRING, "3+"),
    field("min_version", INT16, "3+"),
    field("max_version", INT16, "3+"),
)


FinalizedFeatureKey = struct(
    "FinalizedFeatureKey",
    field("name", STRING, "3+"),
    field("max_version_level", INT16, "3+"),
    field("min_version_level", INT16, "3+"),
)


ApiVersionsResponse = struct(
    "ApiVersionsResponse",
    field("error_code", INT16),
    field("api_keys", array(ApiVersion)),
    field("throttle_time_ms", INT32, "1+"),
    field("supported_features", array(SupportedFeatureKey), "3+", tag=0),
    field("finalized_features_epoch", INT64, "3+", default=-1, tag=1),
    field("finalized_features", array(FinalizedFeatureKey), "3+", tag=2),
    field("zk_migration_ready", BOOL, "3+", tag=3),
)

SPEC = ApiSpec(18, "ApiVersions", "0-4", "3+", ApiVersionsRequest, ApiVersionsResponse)

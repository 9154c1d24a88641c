"""DescribeCluster (key 60): Cluster id, controller and brokers (the admin client's Metadata).

Declared v0-2, flexible from v0.
Always flexible; v1 endpoint_type; v2 include_fenced_brokers / is_fenced.
"""

from ..schema import ApiSpec, field, struct
from ..types import BOOL, INT16, INT32, INT8, STRING, array


DescribeClusterRequest = struct(
    "DescribeClusterRequest",
    field("include_cluster_authorized_operations", BOOL),
    field("endpoint_type", INT8, "1+", default=1),
    field("include_fenced_brokers", BOOL, "2+"),
)


DescribeClusterBroker = struct(
    "DescribeClusterBroker",
    field("broker_id", INT32),
    field("host", STRING),
    field("port", INT32),
    field("rack", STRING, nullable="0+"),
    field("is_fenced", BOOL, "2+"),
)


DescribeClusterResponse = struct(
    "DescribeClusterResponse",
    field("throttle_time_ms", INT32),
    field("error_code", INT16),
    field("error_message", STRING, nullable="0+"),
    field("endpoint_type", INT8, "1+", default=1),
    field("cluster_id", STRING),
    field("controller_id", INT32, default=-1),
    field("brokers", array(DescribeClusterBroker)),
    field("cluster_authorized_operations", INT32, default=-2147483648),
)

SPEC = ApiSpec(60, "DescribeCluster", "0-2", "0+", DescribeClusterRequest, DescribeClusterResponse)

"""DescribeCluster (key 60): versions 0-2.

Behaviour: the cluster is this one broker. The answer carries the cluster id persisted
in the data directory, this broker (node id, advertised host and port, no rack, never
fenced) and this broker as the controller (``controller_id`` = node id: it is also the
only metadata authority). ``cluster_authorized_operations`` is always Kafka's "not
computed" value (-2147483648): kafkito has no ACLs, so there are no operations to list.

Version notes: v1 adds ``endpoint_type``: 1 (brokers) and 2 (controllers) are both
answered with this node, which plays both roles on one listener, and the response echoes
the type; any other value is UNSUPPORTED_ENDPOINT_TYPE. v2 adds
``include_fenced_brokers`` and ``is_fenced``: nothing is ever fenced here.
kafkito has no quotas (throttle_time_ms 0).
"""

from __future__ import annotations

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.describe_cluster import DescribeClusterBroker, DescribeClusterResponse

from ._common import AUTHORIZED_OPERATIONS_OMITTED

API_KEY = ApiKey.DESCRIBE_CLUSTER
MIN_VERSION = 0
MAX_VERSION = 2

ENDPOINT_BROKERS = 1
ENDPOINT_CONTROLLERS = 2


async def handle(ctx, request) -> DescribeClusterResponse:
    state = ctx.broker
    endpoint_type = request.endpoint_type if ctx.api_version >= 1 else ENDPOINT_BROKERS
    response = DescribeClusterResponse(
        throttle_time_ms=0,
        error_code=ErrorCode.NONE,
        error_message=None,
        endpoint_type=endpoint_type,
        cluster_id=state.cluster_id,
        controller_id=state.node_id,
        brokers=[DescribeClusterBroker(broker_id=state.node_id, host=state.advertised_host,
                                       port=state.advertised_port, rack=None, is_fenced=False)],
        cluster_authorized_operations=AUTHORIZED_OPERATIONS_OMITTED,
    )
    if endpoint_type not in (ENDPOINT_BROKERS, ENDPOINT_CONTROLLERS):
        response.error_code = ErrorCode.UNSUPPORTED_ENDPOINT_TYPE
        response.error_message = f"Unsupported endpoint type {endpoint_type}"
        response.brokers = []
        response.controller_id = -1
    return response

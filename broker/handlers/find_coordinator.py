"""FindCoordinator (key 10): versions 0-6.

A single node is every coordinator: for a group key (key_type 0) and a transactional id
(key_type 1) the answer is this broker's advertised address. v0-v3 ask for one key
(``key``; v0 has no key type and means a group); v4+ batch them in ``coordinator_keys``
with one result each. Share-group coordinators (key_type 2, KIP-932) are not served:
INVALID_REQUEST, as Kafka answers when share groups are disabled; so is any unknown type.
An empty group id is still answered (Kafka does too; the group requests then reject it).
"""

from __future__ import annotations

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.find_coordinator import Coordinator, FindCoordinatorResponse

API_KEY = ApiKey.FIND_COORDINATOR
MIN_VERSION = 0
MAX_VERSION = 6

GROUP, TRANSACTION = 0, 1


def _lookup(ctx, key_type: int) -> tuple[ErrorCode, int, str, int]:
    state = ctx.broker
    if key_type not in (GROUP, TRANSACTION):
        return ErrorCode.INVALID_REQUEST, -1, "", -1
    return ErrorCode.NONE, state.node_id, state.advertised_host, state.advertised_port


async def handle(ctx, request) -> FindCoordinatorResponse:
    key_type = request.key_type if ctx.api_version >= 1 else GROUP
    if ctx.api_version >= 4:
        coordinators = []
        for key in request.coordinator_keys:
            error, node_id, host, port = _lookup(ctx, key_type)
            coordinators.append(Coordinator(key=key, node_id=node_id, host=host, port=port,
                                            error_code=error, error_message=None))
        return FindCoordinatorResponse(coordinators=coordinators)
    error, node_id, host, port = _lookup(ctx, key_type)
    return FindCoordinatorResponse(
        error_code=error, error_message=None if error == ErrorCode.NONE else error.name,
        node_id=node_id, host=host, port=port)

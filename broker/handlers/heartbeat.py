"""Heartbeat (key 12): versions 0-4.

Keeps a member's session alive and tells it when to rejoin (REBALANCE_IN_PROGRESS). A
member that is fenced, unknown or of an old generation learns it here. v3+ carry
``group.instance.id``. All decisions are ``ClassicGroupCoordinator.heartbeat``'s.
"""

from __future__ import annotations

from kafkito.protocol import ApiKey
from kafkito.protocol.messages.heartbeat import HeartbeatResponse

from ._group import unavailable

API_KEY = ApiKey.HEARTBEAT
MIN_VERSION = 0
MAX_VERSION = 4


async def handle(ctx, request) -> HeartbeatResponse:
    error = unavailable(ctx)
    if error is None:
        error = ctx.broker.groups.heartbeat(
            group_id=request.group_id,
            member_id=request.member_id,
            group_instance_id=request.group_instance_id if ctx.api_version >= 3 else None,
            generation_id=request.generation_id,
        )
    return HeartbeatResponse(error_code=error)

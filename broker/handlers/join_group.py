"""JoinGroup (key 11): versions 0-9, the classic group protocol's first phase.

The request parks until the group's join phase completes (every member rejoined, or the
rebalance timeout dropped the laggards); the leader then receives every member's
metadata for the chosen protocol. All decisions are ``ClassicGroupCoordinator.join_group``'s.

Version notes: v0 has no rebalance timeout (the session timeout serves as both); v4+
members without an id first get MEMBER_ID_REQUIRED with their new id (KIP-394); v5+ carry
``group.instance.id`` (static membership, KIP-345); v7+ return the protocol type and a
nullable protocol name; v8+ send a reason (logged by clients, ignored here); v9 lets a
restarted static leader skip recomputing the assignment (``skip_assignment``).
"""

from __future__ import annotations

from functools import partial

from kafkito.protocol import ApiKey
from kafkito.protocol.messages.join_group import JoinGroupResponse, JoinGroupResponseMember

from ..context import Deferred
from ._group import client_host, client_id, unavailable

API_KEY = ApiKey.JOIN_GROUP
MIN_VERSION = 0
MAX_VERSION = 9


async def handle(ctx, request) -> Deferred | JoinGroupResponse:
    v = ctx.api_version
    error = unavailable(ctx)
    if error is not None:
        return JoinGroupResponse(error_code=error, member_id=request.member_id,
                                 protocol_name=None if v >= 7 else "")
    groups = ctx.broker.groups
    waiter = groups.join_group(
        group_id=request.group_id,
        member_id=request.member_id,
        group_instance_id=request.group_instance_id if v >= 5 else None,
        protocol_type=request.protocol_type,
        protocols=[(p.name, p.metadata) for p in request.protocols],
        session_timeout_ms=request.session_timeout_ms,
        rebalance_timeout_ms=request.rebalance_timeout_ms if v >= 1 else -1,
        client_id=client_id(ctx),
        client_host=client_host(ctx),
        require_known_member_id=v >= 4,
        supports_skip_assignment=v >= 9,
    )
    return Deferred(partial(_answer, groups, waiter, v))


async def _answer(groups, waiter, v: int) -> JoinGroupResponse:
    r = await groups.wait(waiter)  # parked on the coordinator, off the connection's turn
    return JoinGroupResponse(
        error_code=r.error,
        generation_id=r.generation_id,
        protocol_type=r.protocol_type,
        # Before v7 the protocol name is not nullable.
        protocol_name=r.protocol_name if v >= 7 else (r.protocol_name or ""),
        leader=r.leader,
        skip_assignment=r.skip_assignment,
        member_id=r.member_id,
        members=[JoinGroupResponseMember(member_id=m.member_id, group_instance_id=m.group_instance_id,
                                         metadata=m.metadata) for m in r.members],
    )

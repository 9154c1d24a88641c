"""SyncGroup (key 14): versions 0-5, the classic group protocol's second phase.

Followers park until the leader's SyncGroup brings the assignment; the assignment is
written to ``__consumer_offsets`` before anyone is answered, so a restarted broker resumes
the same generation. All decisions are ``ClassicGroupCoordinator.sync_group``'s.

Version notes: v3+ carry ``group.instance.id``; v5+ send the protocol type and name, which
must match the group's (INCONSISTENT_GROUP_PROTOCOL otherwise, and when either is missing,
as Kafka checks), and get them back in the response.
"""

from __future__ import annotations

from functools import partial

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.sync_group import SyncGroupResponse

from ..context import Deferred
from ._group import unavailable

API_KEY = ApiKey.SYNC_GROUP
MIN_VERSION = 0
MAX_VERSION = 5


async def handle(ctx, request) -> Deferred | SyncGroupResponse:
    v = ctx.api_version
    error = unavailable(ctx)
    if error is None and v >= 5 and (request.protocol_type is None or request.protocol_name is None):
        error = ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    if error is not None:
        return SyncGroupResponse(error_code=error, assignment=b"")
    groups = ctx.broker.groups
    waiter = groups.sync_group(
        group_id=request.group_id,
        generation_id=request.generation_id,
        member_id=request.member_id,
        group_instance_id=request.group_instance_id if v >= 3 else None,
        protocol_type=request.protocol_type if v >= 5 else None,
        protocol_name=request.protocol_name if v >= 5 else None,
        assignments=[(a.member_id, a.assignment) for a in request.assignments],
    )
    return Deferred(partial(_answer, groups, waiter))


async def _answer(groups, waiter) -> SyncGroupResponse:
    r = await groups.wait(waiter)  # parked on the coordinator, off the connection's turn
    return SyncGroupResponse(error_code=r.error, protocol_type=r.protocol_type,
                             protocol_name=r.protocol_name, assignment=r.assignment)

"""LeaveGroup (key 13): versions 0-5.

Removes members at once (no waiting for their session to expire) and starts a rebalance
for the others. v0-v2 name one member (``member_id``); v3+ batch members and may remove
a static member by ``group.instance.id`` alone (an empty member id: administrative
removal, KIP-345); v5+ add a reason (ignored). For v0-v2 the single member's error is the
response's error, as Kafka reports it.
"""

from __future__ import annotations

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.leave_group import LeaveGroupResponse, MemberResponse

from ._group import unavailable

API_KEY = ApiKey.LEAVE_GROUP
MIN_VERSION = 0
MAX_VERSION = 5


async def handle(ctx, request) -> LeaveGroupResponse:
    v = ctx.api_version
    error = unavailable(ctx)
    if error is not None:
        return LeaveGroupResponse(error_code=error)
    if v >= 3:
        members = [(m.member_id, m.group_instance_id) for m in request.members]
    else:
        members = [(request.member_id, None)]
    result = ctx.broker.groups.leave_group(group_id=request.group_id, members=members)
    if v < 3:
        error = result.error
        if error == ErrorCode.NONE and result.members:
            error = result.members[0][2]
        return LeaveGroupResponse(error_code=error)
    return LeaveGroupResponse(
        error_code=result.error,
        members=[MemberResponse(member_id=mid, group_instance_id=iid, error_code=err)
                 for mid, iid, err in result.members],
    )

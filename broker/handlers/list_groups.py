"""ListGroups (key 16): versions 0-5.

Every group this coordinator knows (also "simple" groups that only hold offsets) with
its protocol type; v4+ can filter by state (case-insensitive, Kafka's state names) and
report each group's state; v5+ can filter by type ("classic", "consumer") and report it.
KIP-848 consumer groups are listed with protocol type "consumer" and their own states
(Empty, Assigning, Reconciling, Stable).
"""

from __future__ import annotations

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.list_groups import ListedGroup, ListGroupsResponse

from ._group import unavailable

API_KEY = ApiKey.LIST_GROUPS
MIN_VERSION = 0
MAX_VERSION = 5


async def handle(ctx, request) -> ListGroupsResponse:
    v = ctx.api_version
    error = unavailable(ctx)
    if error is not None:
        return ListGroupsResponse(error_code=error)
    listed = ctx.broker.groups.list_groups(
        states=request.states_filter if v >= 4 else (),
        types=request.types_filter if v >= 5 else (),
    )
    return ListGroupsResponse(error_code=ErrorCode.NONE, groups=[
        ListedGroup(group_id=g.group_id, protocol_type=g.protocol_type, group_state=g.state,
                    group_type=g.group_type)
        for g in listed])

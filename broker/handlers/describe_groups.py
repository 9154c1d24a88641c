"""DescribeGroups (key 15): versions 0-5.

State, protocol type, and members (id, instance id, client id and host). A Stable group
also shows the chosen protocol and each member's subscription metadata and assignment;
in any other state they are empty, as in Kafka (they are in flux). An unknown group is
reported with state "Dead" and no error (before v6 Kafka has no GROUP_ID_NOT_FOUND here);
so is a KIP-848 consumer group, as in Kafka (ConsumerGroupDescribe describes those).
v3+ can ask for authorized operations: without ACLs everything on a group is allowed
(READ, DELETE, DESCRIBE); otherwise the "not computed" value. v4+ show the instance id.

Not served: v6 (KIP-1043 error messages).
"""

from __future__ import annotations

from kafkito.broker.group.coordinator import GROUP_AUTHORIZED_OPERATIONS
from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.describe_groups import (
    DescribedGroup,
    DescribedGroupMember,
    DescribeGroupsResponse,
)

from ._common import AUTHORIZED_OPERATIONS_OMITTED
from ._group import unavailable

API_KEY = ApiKey.DESCRIBE_GROUPS
MIN_VERSION = 0
MAX_VERSION = 5


async def handle(ctx, request) -> DescribeGroupsResponse:
    error = unavailable(ctx)
    want_ops = ctx.api_version >= 3 and request.include_authorized_operations
    out = []
    for group_id in request.groups:
        if error is not None:
            out.append(DescribedGroup(error_code=error, group_id=group_id, group_state="",
                                      protocol_type="", protocol_data=""))
            continue
        if not group_id:
            out.append(DescribedGroup(error_code=ErrorCode.INVALID_GROUP_ID, group_id=group_id,
                                      group_state="", protocol_type="", protocol_data=""))
            continue
        d = ctx.broker.groups.describe_group(group_id=group_id)
        out.append(DescribedGroup(
            error_code=d.error, group_id=d.group_id, group_state=d.state,
            protocol_type=d.protocol_type, protocol_data=d.protocol_data,
            members=[DescribedGroupMember(
                member_id=m.member_id, group_instance_id=m.group_instance_id,
                client_id=m.client_id, client_host=m.client_host,
                member_metadata=m.metadata, member_assignment=m.assignment)
                for m in d.members],
            authorized_operations=GROUP_AUTHORIZED_OPERATIONS if want_ops else AUTHORIZED_OPERATIONS_OMITTED,
        ))
    return DescribeGroupsResponse(groups=out)

"""OffsetDelete (key 47): version 0.

Deletes committed offsets of an empty group, or of a consumer group for topics it no
longer subscribes to (GROUP_SUBSCRIBED_TO_TOPIC for the others); a group whose members'
subscriptions the broker cannot read (not protocol type "consumer") must be empty
(NON_EMPTY_GROUP). Unknown groups get GROUP_ID_NOT_FOUND. Tombstones are fsynced before
the answer.
"""

from __future__ import annotations

from functools import partial

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.offset_delete import (
    OffsetDeleteResponse,
    OffsetDeleteResponsePartition,
    OffsetDeleteResponseTopic,
)

from ..context import Deferred
from ._group import unavailable

API_KEY = ApiKey.OFFSET_DELETE
MIN_VERSION = 0
MAX_VERSION = 0


async def handle(ctx, request) -> Deferred | OffsetDeleteResponse:
    error = unavailable(ctx)
    if error is not None:
        return OffsetDeleteResponse(error_code=error)
    groups = ctx.broker.groups
    waiter = groups.delete_offsets(
        group_id=request.group_id,
        topics=[(t.name, [p.partition_index for p in t.partitions]) for t in request.topics])
    return Deferred(partial(_answer, groups, waiter))


async def _answer(groups, waiter) -> OffsetDeleteResponse:
    error, rows = await groups.wait(waiter)  # parked on the coordinator, off the connection's turn
    if error != ErrorCode.NONE:
        return OffsetDeleteResponse(error_code=error)
    return OffsetDeleteResponse(error_code=ErrorCode.NONE, topics=[
        OffsetDeleteResponseTopic(name=t, partitions=[
            OffsetDeleteResponsePartition(partition_index=p, error_code=e) for p, e in ps])
        for t, ps in rows])

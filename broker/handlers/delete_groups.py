"""DeleteGroups (key 42): versions 0-2.

Deletes groups without members together with their committed offsets (tombstones in
``__consumer_offsets``, fsynced before the answer). A group with members gets
NON_EMPTY_GROUP, an unknown one GROUP_ID_NOT_FOUND, an empty id INVALID_GROUP_ID.
"""

from __future__ import annotations

from functools import partial

from kafkito.protocol import ApiKey
from kafkito.protocol.messages.delete_groups import DeletableGroupResult, DeleteGroupsResponse

from ..context import Deferred
from ._group import unavailable

API_KEY = ApiKey.DELETE_GROUPS
MIN_VERSION = 0
MAX_VERSION = 2


async def handle(ctx, request) -> Deferred | DeleteGroupsResponse:
    error = unavailable(ctx)
    if error is not None:
        return _response([(g, error) for g in request.groups_names])
    groups = ctx.broker.groups
    return Deferred(partial(_answer, groups, groups.delete_groups(group_ids=list(request.groups_names))))


async def _answer(groups, waiter) -> DeleteGroupsResponse:
    return _response(await groups.wait(waiter))  # parked on the coordinator, off the connection's turn


def _response(results) -> DeleteGroupsResponse:
    return DeleteGroupsResponse(results=[DeletableGroupResult(group_id=g, error_code=e) for g, e in results])

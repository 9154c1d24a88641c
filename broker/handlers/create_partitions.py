"""CreatePartitions (key 37): versions 0-3.

Behaviour: grows a topic to ``count`` partitions; the new partitions are empty logs,
visible to Metadata as soon as the answer is sent. Per-topic errors, as Kafka gives them:
- INVALID_REQUEST for a topic named twice in one request ("Duplicate topic name.");
- UNKNOWN_TOPIC_OR_PARTITION for an unknown topic;
- INVALID_PARTITIONS when ``count`` is not above the current count (partitions can only
  be added, never removed), with Kafka's message;
- INVALID_REPLICA_ASSIGNMENT when ``assignments`` is given but does not list exactly one
  ``[node_id]`` replica list per new partition;
- INVALID_TOPIC_EXCEPTION for internal topics (``__consumer_offsets``...): their
  partition count decides which partition holds each group's state, so changing it
  would orphan committed offsets. (Kafka leaves this to operators; kafkito refuses.)
``validate_only`` runs every check and changes nothing.

Limits: the partitions the whole request adds above ``max.partitions.per.request``
fail every topic with POLICY_VIOLATION (CreateTopics' rule, applied to growth); growth
past ``max.partitions`` is POLICY_VIOLATION from storage. New partitions are created all or
nothing (directories, then the metadata), in a worker thread.

Version notes: v1-v3 are v0 with throttling and flexible encoding; kafkito has no
quotas (throttle_time_ms 0). Growth is synchronous, so ``timeout_ms`` is never needed.
"""

from __future__ import annotations

import logging

import trio

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.create_partitions import (
    CreatePartitionsResponse,
    CreatePartitionsTopicResult,
)
from kafkito.storage import StorageError

from kafkito.storage.manager import PARTITIONS_MAX

from ._admin import AdminError, once_each, replica_assignment_error
from .create_topics import per_request_limit_error
from ._common import is_internal, storage_error_code

API_KEY = ApiKey.CREATE_PARTITIONS
MIN_VERSION = 0
MAX_VERSION = 3

log = logging.getLogger("kafkito.broker.handlers.create_partitions")


async def _grow(state, topic, validate_only: bool) -> None:
    name = topic.name
    meta = state.logs.topic(name)
    if meta is None:
        raise AdminError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{name}' does not exist.")
    if is_internal(name):
        raise AdminError(ErrorCode.INVALID_TOPIC_EXCEPTION,
                         f"Cannot add partitions to internal topic {name}.")
    current = meta.num_partitions
    if topic.count == current:
        raise AdminError(ErrorCode.INVALID_PARTITIONS, f"Topic already has {current} partitions.")
    if topic.count < current:
        raise AdminError(ErrorCode.INVALID_PARTITIONS,
                         f"Topic currently has {current} partitions, which is higher than the "
                         f"requested {topic.count}.")
    if topic.count > PARTITIONS_MAX:
        raise AdminError(ErrorCode.INVALID_PARTITIONS,
                         f"{topic.count} partitions is above kafkito's limit of {PARTITIONS_MAX}.")
    if topic.assignments is not None:
        added = topic.count - current
        if len(topic.assignments) != added:
            raise AdminError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                             f"Attempted to add {added} additional partition(s), but only "
                             f"{len(topic.assignments)} assignment(s) were specified.")
        for i, assignment in enumerate(topic.assignments):
            reason = replica_assignment_error(assignment.broker_ids, state.node_id, current + i)
            if reason is not None:
                raise AdminError(ErrorCode.INVALID_REPLICA_ASSIGNMENT, reason)
    if validate_only:
        return
    try:
        await trio.to_thread.run_sync(state.logs.create_partitions, name, topic.count)
    except StorageError as exc:
        raise AdminError(storage_error_code(exc), str(exc)) from None
    log.info("topic %s grown from %d to %d partitions", name, current, topic.count)


def _added(state, topics) -> int:
    added = 0
    for topic in topics:
        meta = state.logs.topic(topic.name)
        if meta is not None and topic.count > meta.num_partitions:
            added += topic.count - meta.num_partitions
    return added


async def handle(ctx, request) -> CreatePartitionsResponse:
    state = ctx.broker
    too_many = per_request_limit_error(state, _added(state, request.topics))
    if too_many is not None:
        return CreatePartitionsResponse(throttle_time_ms=0, results=[
            CreatePartitionsTopicResult(name=topic.name, error_code=ErrorCode.POLICY_VIOLATION,
                                        error_message=too_many) for topic in request.topics])
    results = []
    for topic, repeated in once_each(request.topics, lambda t: t.name):
        if repeated:
            results.append(CreatePartitionsTopicResult(
                name=topic.name, error_code=ErrorCode.INVALID_REQUEST, error_message="Duplicate topic name."))
            continue
        try:
            await _grow(state, topic, request.validate_only)
        except AdminError as exc:
            results.append(CreatePartitionsTopicResult(name=topic.name, error_code=exc.code,
                                                       error_message=exc.message))
        else:
            results.append(CreatePartitionsTopicResult(name=topic.name, error_code=ErrorCode.NONE))
    return CreatePartitionsResponse(throttle_time_ms=0, results=results)

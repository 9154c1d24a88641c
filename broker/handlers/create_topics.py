"""CreateTopics (key 19): versions 2-7.

Behaviour, per topic, checks in Kafka's order, the first failure answering:
- a name used twice in one request: INVALID_REQUEST for that name (reported once);
- an illegal name (empty, ".", "..", over 249 characters, characters other than ASCII
  alphanumerics, '.', '_', '-'): INVALID_TOPIC_EXCEPTION with the reason; a name
  that differs from an existing topic only by '.' vs '_' likewise (the metric names
  would collide);
- an existing topic: TOPIC_ALREADY_EXISTS;
- a name kafkito treats as internal (``__`` prefix: ``__consumer_offsets`` and friends,
  which the broker creates itself): INVALID_REQUEST, like Kafka for its metadata topic;
- configs: unknown names, null values and invalid values are INVALID_CONFIG with the
  reason, checked by the same validator the log uses (storage's LogConfig);
- partitions and replicas: with manual ``assignments`` both counts must be -1
  (INVALID_REQUEST) and every partition 0..n-1 must be assigned exactly ``[node_id]``
  (INVALID_REPLICA_ASSIGNMENT). Otherwise ``num_partitions`` -1 means
  ``num.partitions`` and 0 or below -1 is INVALID_PARTITIONS; ``replication_factor`` -1
  means ``default.replication.factor`` and 0 or below -1 is INVALID_REPLICATION_FACTOR.
  A factor above 1 cannot be met by one broker: by default it is accepted with a logged
  warning and the topic gets one replica (so code written for a 3-broker cluster runs
  unchanged); with ``strict.replication.factor=true`` it is INVALID_REPLICATION_FACTOR
  with the message a one-broker Kafka gives.
``validate_only`` runs every check and creates nothing (the response then carries a zero
topic id: no id was allocated).

Limits, before any topic is looked at (as Kafka's controller checks its batch limit):
the partitions the whole request asks for (``num_partitions``, -1 counted as
``num.partitions``, or the assignments) above ``max.partitions.per.request`` (10,000,
Kafka's hard-coded MAX_PARTITIONS_PER_BATCH) fail every topic with POLICY_VIOLATION and
Kafka's message plus the figures. A topic that would take the broker past
``max.partitions`` gets POLICY_VIOLATION too (storage checks it, counting creations in
progress); one above 100,000 partitions INVALID_PARTITIONS.

Version notes: v2-v4 answer name, error code and message; v5+ also the partition count,
the replication factor actually stored (always 1) and the topic's effective configs with
their sources (as DescribeConfigs describes them); v7 adds the topic id. v6 may return
THROTTLING_QUOTA_EXCEEDED in Kafka; kafkito has no quotas, so throttle_time_ms is 0.

Creation is all or nothing and synchronous (every partition directory, then the
checksummed metadata, before the answer), so ``timeout_ms`` is never needed; it runs in a
worker thread, so the broker keeps answering other connections while thousands of
partitions are made. Not served: v0-1 (removed by Kafka 4, KIP-896).
"""

from __future__ import annotations

import logging

import trio

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.create_topics import (
    CreatableTopicConfigs,
    CreatableTopicResult,
    CreateTopicsResponse,
)
from kafkito.storage import StorageError

from kafkito.storage.manager import PARTITIONS_MAX

from ._admin import (
    AdminError,
    once_each,
    replica_assignment_error,
    topic_collision,
    topic_config_entries,
    topic_name_error,
    validated_overrides,
)
from ._common import ZERO_UUID, is_internal, storage_error_code

API_KEY = ApiKey.CREATE_TOPICS
MIN_VERSION = 2
MAX_VERSION = 7

log = logging.getLogger("kafkito.broker.handlers.create_topics")

STORED_REPLICATION_FACTOR = 1  # one broker holds the only replica


def _failed(name: str, code: ErrorCode, message: str | None) -> CreatableTopicResult:
    return CreatableTopicResult(name=name, error_code=code, error_message=message, configs=[])


def _check_name(state, name: str) -> None:
    reason = topic_name_error(name)
    if reason is not None:
        raise AdminError(ErrorCode.INVALID_TOPIC_EXCEPTION, reason)
    if state.logs.topic(name) is not None:
        raise AdminError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
    other = topic_collision(name, (meta.name for meta in state.logs.topics()))
    if other is not None:
        raise AdminError(ErrorCode.INVALID_TOPIC_EXCEPTION,
                        f"Topic '{name}' collides with existing topic: {other}")
    if is_internal(name):
        raise AdminError(ErrorCode.INVALID_REQUEST,
                        f"Creation of internal topic {name} is prohibited.")


def _partition_count(state, topic) -> int:
    """The number of partitions to create, after Kafka's checks on counts and assignments."""
    config = state.config
    if topic.assignments:
        if topic.replication_factor != -1:
            raise AdminError(ErrorCode.INVALID_REQUEST, "A manual partition assignment was "
                            "specified, but replication factor was not set to -1.")
        if topic.num_partitions != -1:
            raise AdminError(ErrorCode.INVALID_REQUEST, "A manual partition assignment was "
                            "specified, but numPartitions was not set to -1.")
        seen: set[int] = set()
        for assignment in topic.assignments:
            index = assignment.partition_index
            if index in seen:
                raise AdminError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                                f"Found multiple manual partition assignments for partition {index}")
            seen.add(index)
            reason = replica_assignment_error(assignment.broker_ids, state.node_id, index)
            if reason is not None:
                raise AdminError(ErrorCode.INVALID_REPLICA_ASSIGNMENT, reason)
        if seen != set(range(len(seen))):
            raise AdminError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                            "partitions should be a consecutive 0-based integer sequence")
        return len(seen)
    if topic.replication_factor < -1 or topic.replication_factor == 0:
        raise AdminError(ErrorCode.INVALID_REPLICATION_FACTOR,
                        "Replication factor must be larger than 0, or -1 to use the default value.")
    if topic.num_partitions < -1 or topic.num_partitions == 0:
        raise AdminError(ErrorCode.INVALID_PARTITIONS,
                        "Number of partitions was set to an invalid non-positive value.")
    count = config.num_partitions if topic.num_partitions == -1 else topic.num_partitions
    if count > PARTITIONS_MAX:
        raise AdminError(ErrorCode.INVALID_PARTITIONS,
                         f"Number of partitions {count} is above kafkito's limit of {PARTITIONS_MAX}.")
    factor = config.default_replication_factor if topic.replication_factor == -1 else topic.replication_factor
    if factor > STORED_REPLICATION_FACTOR:
        if config.strict_replication_factor:
            raise AdminError(ErrorCode.INVALID_REPLICATION_FACTOR,
                            f"Unable to replicate the partition {factor} time(s): The target "
                            f"replication factor of {factor} cannot be reached because only "
                            f"1 broker(s) are registered.")
        log.warning("topic %s asks for replication factor %d; this single-node broker keeps "
                    "one replica (strict.replication.factor=true would reject it)",
                    topic.name, factor)
    return count


def requested_partitions(state, topics) -> int:
    """Kafka's upper bound of what a request creates (validateTotalNumberOfPartitions)."""
    total = 0
    for topic in topics:
        if topic.assignments:
            total += len(topic.assignments)
        elif topic.num_partitions == -1:
            total += state.config.num_partitions
        elif topic.num_partitions > 0:
            total += topic.num_partitions
    return total


def per_request_limit_error(state, requested: int) -> str | None:
    limit = state.config.max_partitions_per_request
    if requested <= limit:
        return None
    return (f"Excessively large number of partitions per request: {requested} requested, "
            f"max.partitions.per.request is {limit}.")


async def _create(state, topic, validate_only: bool, version: int) -> CreatableTopicResult:
    name = topic.name
    _check_name(state, name)
    # CreatableTopicConfig is keyed by name in Kafka's schema: a repeated name keeps
    # the last value, as Kafka's controller does.
    overrides = {entry.name: entry.value for entry in topic.configs}
    validated_overrides(state, overrides, name)
    count = _partition_count(state, topic)
    if validate_only:
        topic_id = ZERO_UUID
    else:
        try:
            meta = await trio.to_thread.run_sync(state.logs.create_topic, name, count, overrides)
        except StorageError as exc:
            raise AdminError(storage_error_code(exc), str(exc)) from None
        topic_id, count = meta.topic_id, meta.num_partitions
        log.info("created topic %s (%d partitions, id %s)", name, count, topic_id)
    result = CreatableTopicResult(name=name, topic_id=topic_id, error_code=ErrorCode.NONE)
    if version >= 5:
        result.num_partitions = count
        result.replication_factor = STORED_REPLICATION_FACTOR
        result.configs = [
            CreatableTopicConfigs(name=e.name, value=e.value, read_only=e.read_only,
                                  config_source=e.source, is_sensitive=e.is_sensitive)
            for e in topic_config_entries(state, overrides)
        ]
    return result


async def handle(ctx, request) -> CreateTopicsResponse:
    state = ctx.broker
    too_many = per_request_limit_error(state, requested_partitions(state, request.topics))
    if too_many is not None:
        return CreateTopicsResponse(throttle_time_ms=0, topics=[
            _failed(topic.name, ErrorCode.POLICY_VIOLATION, too_many) for topic in request.topics])
    results = []
    for topic, repeated in once_each(request.topics, lambda t: t.name):
        if repeated:
            results.append(_failed(topic.name, ErrorCode.INVALID_REQUEST, "Duplicate topic name."))
            continue
        try:
            results.append(await _create(state, topic, request.validate_only, ctx.api_version))
        except AdminError as exc:
            results.append(_failed(topic.name, exc.code, exc.message))
    return CreateTopicsResponse(throttle_time_ms=0, topics=results)


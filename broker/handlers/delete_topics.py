"""DeleteTopics (key 20): versions 1-6.

Behaviour: each named topic's logs and metadata are removed before the answer, then the
partition manager forgets the topic, which wakes every Fetch long-polling on it so it
answers at once (with UNKNOWN_TOPIC_OR_PARTITION) instead of at its max wait.
Per-topic errors, as Kafka's controller gives them:
- UNKNOWN_TOPIC_OR_PARTITION for an unknown name; UNKNOWN_TOPIC_ID for an unknown id;
- INVALID_REQUEST for a name or id listed twice ("Duplicate topic name."), for an entry
  naming both a name and an id, or neither;
- INVALID_TOPIC_EXCEPTION for internal topics (``__consumer_offsets``...): the broker's
  own state lives in them. (Kafka's brokers leave this check to its tools; kafkito
  refuses, because deleting them would lose every committed offset.)
- with ``delete.topic.enable=false`` every topic fails with TOPIC_DELETION_DISABLED
  (INVALID_REQUEST before v3, as in Kafka).

Version notes: v1-v5 name topics in ``topic_names``; v6 in ``topics`` by name or by id,
and answers with the topic id; v5+ carries an error message. Deletion is synchronous, so
``timeout_ms`` is never needed; kafkito has no quotas (throttle_time_ms 0).

Not served: v0 (removed by Kafka 4, KIP-896).
"""

from __future__ import annotations

import logging

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.delete_topics import DeletableTopicResult, DeleteTopicsResponse
from kafkito.storage import StorageError

from ._admin import once_each
from ._common import ZERO_UUID, is_internal, storage_error_code

API_KEY = ApiKey.DELETE_TOPICS
MIN_VERSION = 1
MAX_VERSION = 6

log = logging.getLogger("kafkito.broker.handlers.delete_topics")


def _requested(request, version: int) -> list[tuple[str | None, object]]:
    """(name, topic id) pairs in request order; the id is ZERO_UUID when named."""
    if version < 6:
        return [(name, ZERO_UUID) for name in request.topic_names]
    return [(t.name, t.topic_id) for t in request.topics]


def _delete(state, name: str | None, topic_id) -> DeletableTopicResult:
    if name is not None and topic_id != ZERO_UUID:
        return DeletableTopicResult(name=name, topic_id=topic_id, error_code=ErrorCode.INVALID_REQUEST,
                                    error_message="You may not specify both topic name and topic id.")
    if name is None:
        if topic_id == ZERO_UUID:
            return DeletableTopicResult(name=None, topic_id=ZERO_UUID, error_code=ErrorCode.INVALID_REQUEST,
                                        error_message="Neither topic name nor id were specified.")
        meta = state.logs.topic_by_id(topic_id)
        if meta is None:
            return DeletableTopicResult(name=None, topic_id=topic_id, error_code=ErrorCode.UNKNOWN_TOPIC_ID,
                                        error_message=f"Topic id {topic_id} does not exist.")
    else:
        meta = state.logs.topic(name)
        if meta is None:
            return DeletableTopicResult(name=name, topic_id=ZERO_UUID,
                                        error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                        error_message=f"Topic '{name}' does not exist.")
    if is_internal(meta.name):
        return DeletableTopicResult(name=meta.name, topic_id=meta.topic_id,
                                    error_code=ErrorCode.INVALID_TOPIC_EXCEPTION,
                                    error_message=f"Internal topic {meta.name} cannot be deleted.")
    try:
        state.logs.delete_topic(meta.name)
    except StorageError as exc:
        return DeletableTopicResult(name=meta.name, topic_id=meta.topic_id,
                                    error_code=storage_error_code(exc), error_message=str(exc))
    state.partitions.forget_topic(meta.name)
    log.info("deleted topic %s (id %s)", meta.name, meta.topic_id)
    return DeletableTopicResult(name=meta.name, topic_id=meta.topic_id, error_code=ErrorCode.NONE)


def _identity(entry: tuple[str | None, object]):
    """What makes two entries "the same topic" for the duplicate check: the name, else the
    id; an entry with neither is unique (it is answered INVALID_REQUEST on its own)."""
    name, topic_id = entry
    if name is not None:
        return ("name", name)
    if topic_id != ZERO_UUID:
        return ("id", topic_id)
    return ("none", id(entry))


async def handle(ctx, request) -> DeleteTopicsResponse:
    state = ctx.broker
    version = ctx.api_version
    wanted = _requested(request, version)
    if not state.config.delete_topic_enable:
        code = ErrorCode.TOPIC_DELETION_DISABLED if version >= 3 else ErrorCode.INVALID_REQUEST
        return DeleteTopicsResponse(throttle_time_ms=0, responses=[
            DeletableTopicResult(name=name, topic_id=topic_id, error_code=code,
                                 error_message="Topic deletion is disabled (delete.topic.enable=false).")
            for name, topic_id in wanted
        ])
    results = []
    for (name, topic_id), repeated in once_each(wanted, _identity):
        if repeated:
            what = "name" if name is not None else "id"
            results.append(DeletableTopicResult(name=name, topic_id=topic_id, error_code=ErrorCode.INVALID_REQUEST,
                                                error_message=f"Duplicate topic {what}."))
        else:
            results.append(_delete(state, name, topic_id))
    return DeleteTopicsResponse(throttle_time_ms=0, responses=results)

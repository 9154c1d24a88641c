"""Metadata (key 3): versions 0-12.

Behaviour: one broker (this one) leads every partition, with leader epoch 0 and itself
as the only replica and in-sync replica. A null topic list (v1+; an empty list in v0)
means every topic, internal ones flagged ``is_internal``. Unknown topics are created
with ``num.partitions`` when ``auto.create.topics.enable`` is on and the request allows
it (v4+ ``allow_auto_topic_creation``); internal topic names are never auto-created.
At most ``auto.create.topics.max.per.request`` topics are created per request, in a
worker thread (the broker keeps answering other connections meanwhile); the unknown topics
past that bound are answered LEADER_NOT_AVAILABLE, which is what Kafka answers for a topic
whose auto-creation is under way: every client treats it as retriable and keeps the topic
(librdkafka does not give up on it as it may on UNKNOWN_TOPIC_OR_PARTITION), and its next
Metadata request creates the next batch. A request for 10,000 unknown topics thus creates
them at a bounded pace instead of stalling the broker and exhausting its descriptors.
v10+ may name topics by id. Authorized operations are answered with Kafka's "not
computed" value: kafkito has no ACLs.
"""

from __future__ import annotations

import trio

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.metadata import (
    MetadataResponse,
    MetadataResponseBroker,
    MetadataResponsePartition,
    MetadataResponseTopic,
)

from ._common import AUTHORIZED_OPERATIONS_OMITTED, ZERO_UUID, is_internal, resolve_topic, storage_error_code

API_KEY = ApiKey.METADATA
MIN_VERSION = 0
MAX_VERSION = 12


def topic_response(state, meta) -> MetadataResponseTopic:
    node = state.node_id
    return MetadataResponseTopic(
        error_code=ErrorCode.NONE,
        name=meta.name,
        topic_id=meta.topic_id,
        is_internal=is_internal(meta.name),
        partitions=[
            MetadataResponsePartition(
                error_code=ErrorCode.NONE,
                partition_index=p,
                leader_id=node,
                leader_epoch=0,
                replica_nodes=[node],
                isr_nodes=[node],
                offline_replicas=[],
            )
            for p in range(meta.num_partitions)
        ],
        topic_authorized_operations=AUTHORIZED_OPERATIONS_OMITTED,
    )


def _auto_create(state, name: str):
    config = state.config
    try:
        return state.logs.create_topic(name, config.num_partitions, {}), ErrorCode.NONE
    except Exception as exc:  # a racing create is fine; a bad name is the client's error
        meta = state.logs.topic(name)
        if meta is not None:
            return meta, ErrorCode.NONE
        return None, storage_error_code(exc)


def _auto_create_all(state, names: list[str]) -> dict:
    """Runs in a worker thread: name -> (TopicMetadata or None, error code)."""
    return {name: _auto_create(state, name) for name in names}


def _to_create(state, wanted, allow_create: bool) -> list[str]:
    """The unknown topics this request may create, in request order, at most the bound."""
    if not allow_create:
        return []
    budget = state.config.auto_create_topics_max_per_request
    names: dict[str, None] = {}
    for item in wanted:
        name = item.name
        if len(names) >= budget:
            break
        if name and not is_internal(name) and state.logs.topic(name) is None:
            names[name] = None
    return list(names)


async def handle(ctx, request) -> MetadataResponse:
    state = ctx.broker
    version = ctx.api_version
    wanted = request.topics
    if version == 0 and not wanted:
        wanted = None  # v0: an empty list means every topic
    if wanted is None:
        topics = [topic_response(state, meta) for meta in state.logs.topics()]
    else:
        allow_create = state.config.auto_create_topics_enable and (
            version < 4 or request.allow_auto_topic_creation
        )
        names = _to_create(state, wanted, allow_create)
        created = await trio.to_thread.run_sync(_auto_create_all, state, names) if names else {}
        topics = []
        for item in wanted:
            meta = resolve_topic(state, item.name, getattr(item, "topic_id", None))
            error = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            if meta is None and item.name in created:
                meta, error = created[item.name]
            elif meta is None and item.name and allow_create and not is_internal(item.name):
                error = ErrorCode.LEADER_NOT_AVAILABLE  # past the bound: created on a retry
            if meta is None:
                if not item.name:
                    error = ErrorCode.UNKNOWN_TOPIC_ID
                topics.append(MetadataResponseTopic(
                    error_code=error, name=item.name, topic_id=getattr(item, "topic_id", None) or ZERO_UUID,
                    topic_authorized_operations=AUTHORIZED_OPERATIONS_OMITTED,
                ))
            else:
                topics.append(topic_response(state, meta))
    return MetadataResponse(
        throttle_time_ms=0,
        brokers=[MetadataResponseBroker(
            node_id=state.node_id, host=state.advertised_host, port=state.advertised_port, rack=None,
        )],
        cluster_id=state.cluster_id,
        controller_id=state.node_id,
        topics=topics,
        cluster_authorized_operations=AUTHORIZED_OPERATIONS_OMITTED,
    )

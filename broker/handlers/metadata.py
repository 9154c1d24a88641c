"""Metadata (key 3): versions 0-12.

Behaviour: one broker (this one) leads every partition, with leader epoch 0 and itself
as the only replica and in-sync replica. A null topic list (v1+; an empty list in v0)
means every topic, internal ones flagged ``is_internal``. Unknown topics are created
with ``num.partitions`` when ``auto.create.topics.enable`` is on and the request allows
it (v4+ ``allow_auto_topic_creation``); internal topic names are never auto-created.
v10+ may name topics by id. Authorized operations are answered with Kafka's "not
computed" value: kafkito has no ACLs.
"""

from __future__ import annotations

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
        topics = []
        for item in wanted:
            meta = resolve_topic(state, item.name, getattr(item, "topic_id", None))
            error = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            if meta is None and item.name and allow_create and not is_internal(item.name):
                meta, error = _auto_create(state, item.name)
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

"""Offset look-ups and commits shared by the consumer, the admin client and the mirror.

``list_offsets`` asks each partition's leader (ListOffsets) for the offset of a timestamp:
``EARLIEST`` (-2), ``LATEST`` (-1) or a time in ms (the first offset whose timestamp is at
or after it, None past the end). Partitions are grouped by leader, one request per broker;
a leader that moved (NOT_LEADER_OR_FOLLOWER, ...) triggers a metadata refresh and a retry
of those partitions until ``timeout_ms``.

``commit_offsets`` / ``fetch_committed`` are OffsetCommit / OffsetFetch to the group's
coordinator, with the same retry on a coordinator that moved or is still loading.
"""

from __future__ import annotations

import time
from collections import defaultdict

import anyio

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.list_offsets import ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic
from kafkito.protocol.messages.offset_commit import (
    OffsetCommitRequest,
    OffsetCommitRequestPartition,
    OffsetCommitRequestTopic,
)
from kafkito.protocol.messages.offset_fetch import OffsetFetchRequest, OffsetFetchRequestTopic

from .errors import KafkaError, error_for
from .types import OffsetAndMetadata, OffsetAndTimestamp, TopicPartition

__all__ = ["EARLIEST", "LATEST", "commit_offsets", "fetch_committed", "list_offsets"]

EARLIEST = -2
LATEST = -1
LIST_OFFSETS_MAX_VERSION = 7
OFFSET_COMMIT_MAX_VERSION = 8
OFFSET_FETCH_MAX_VERSION = 7
_COORDINATOR_MOVED = {ErrorCode.NOT_COORDINATOR, ErrorCode.COORDINATOR_NOT_AVAILABLE,
                      ErrorCode.COORDINATOR_LOAD_IN_PROGRESS}


async def list_offsets(cluster, timestamps: dict[TopicPartition, int], *, isolation_level: int = 0,
                       timeout_ms: int | None = None) -> dict[TopicPartition, OffsetAndTimestamp | None]:
    deadline = time.monotonic() + (timeout_ms or cluster.request_timeout_ms) / 1000
    result: dict[TopicPartition, OffsetAndTimestamp | None] = {}
    todo = dict(timestamps)
    for topic in {tp.topic for tp in todo}:
        await cluster.partitions_for(topic)
    while todo:
        by_node: dict[int, dict[str, list]] = defaultdict(lambda: defaultdict(list))
        for tp, ts in todo.items():
            leader = cluster.leader_for(tp.topic, tp.partition)
            if leader < 0 and tp.partition not in cluster.topics.get(tp.topic, {}):
                raise error_for(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"{tp.topic}-{tp.partition}")
            by_node[leader][tp.topic].append(ListOffsetsPartition(
                partition_index=tp.partition, timestamp=ts,
                current_leader_epoch=cluster.leader_epoch(tp.topic, tp.partition)))
        retry: list[tuple[TopicPartition, KafkaError]] = []

        async def ask(node, topics):
            body = ListOffsetsRequest(replica_id=-1, isolation_level=isolation_level, topics=[
                ListOffsetsTopic(name=t, partitions=ps) for t, ps in topics.items()])
            try:
                resp = await cluster.send(node, ApiKey.LIST_OFFSETS, body, LIST_OFFSETS_MAX_VERSION, 1)
            except KafkaError as exc:
                for t, ps in topics.items():
                    for p in ps:
                        retry.append((TopicPartition(t, p.partition_index), exc))
                return
            for t in resp.topics:
                for p in t.partitions:
                    tp = TopicPartition(t.name, p.partition_index)
                    if p.error_code:
                        retry.append((tp, error_for(p.error_code, f"{tp.topic}-{tp.partition}")))
                    elif p.offset < 0:
                        result[tp] = None
                    else:
                        result[tp] = OffsetAndTimestamp(p.offset, p.timestamp)
                    todo.pop(tp, None)

        async with anyio.create_task_group() as tg:
            for node, topics in by_node.items():
                if node < 0:
                    for t, ps in topics.items():
                        for p in ps:
                            retry.append((TopicPartition(t, p.partition_index),
                                          error_for(ErrorCode.LEADER_NOT_AVAILABLE, t)))
                    continue
                tg.start_soon(ask, node, topics)
        if not retry:
            break
        for tp, err in retry:
            if not err.retriable or time.monotonic() > deadline:
                raise err
        cluster.invalidate()
        await anyio.sleep(cluster.retry_backoff_ms / 1000)
        await cluster.refresh()
    return result


async def _coordinator_call(cluster, group_id: str, api_key: int, body, max_version: int, min_version: int,
                            check, timeout_ms: int | None):
    """Send to the group's coordinator; ``check(resp)`` returns an error code (0 when done),
    retried while it says the coordinator moved or a retriable error, until ``timeout_ms``."""
    deadline = time.monotonic() + (timeout_ms or cluster.request_timeout_ms) / 1000
    while True:
        try:
            node = await cluster.coordinator(group_id)
            resp = await cluster.send(node, api_key, body, max_version, min_version)
            code = check(resp)
        except KafkaError as exc:
            if not exc.retriable or time.monotonic() > deadline:
                raise
            code, resp = exc.code, None
        if not code:
            return resp
        err = error_for(code, f"group {group_id!r}")
        if not err.retriable or time.monotonic() > deadline:
            raise err
        await anyio.sleep(cluster.retry_backoff_ms / 1000)


async def commit_offsets(cluster, group_id: str, offsets: dict[TopicPartition, OffsetAndMetadata | int], *,
                         generation_id: int = -1, member_id: str = "", group_instance_id: str | None = None,
                         timeout_ms: int | None = None, max_version: int | None = None) -> None:
    """OffsetCommit; raises the first partition's error (e.g. ILLEGAL_GENERATION after a rebalance)."""
    topics: dict[str, list] = defaultdict(list)
    for tp, om in offsets.items():
        if not isinstance(om, OffsetAndMetadata):
            om = OffsetAndMetadata(int(om))
        topics[tp.topic].append(OffsetCommitRequestPartition(
            partition_index=tp.partition, committed_offset=om.offset, committed_leader_epoch=om.leader_epoch,
            committed_metadata=om.metadata or ""))
    body = OffsetCommitRequest(group_id=group_id, generation_id_or_member_epoch=generation_id, member_id=member_id,
                               group_instance_id=group_instance_id,
                               topics=[OffsetCommitRequestTopic(name=t, partitions=ps) for t, ps in topics.items()])

    def check(resp):
        for t in resp.topics:
            for p in t.partitions:
                if p.error_code:
                    return p.error_code
        return 0

    # KIP-848 members commit with v9+ (the generation field carries the member epoch).
    await _coordinator_call(cluster, group_id, ApiKey.OFFSET_COMMIT, body, max_version or OFFSET_COMMIT_MAX_VERSION,
                            max_version or 2, check, timeout_ms)


async def fetch_committed(cluster, group_id: str, partitions: list[TopicPartition] | None = None, *,
                          require_stable: bool = True, timeout_ms: int | None = None
                          ) -> dict[TopicPartition, OffsetAndMetadata]:
    """The group's committed offsets (all of them when ``partitions`` is None)."""
    if partitions is None:
        topics = None
    else:
        by_topic: dict[str, list[int]] = defaultdict(list)
        for tp in partitions:
            by_topic[tp.topic].append(tp.partition)
        topics = [OffsetFetchRequestTopic(name=t, partition_indexes=ps) for t, ps in by_topic.items()]
    body = OffsetFetchRequest(group_id=group_id, topics=topics, require_stable=require_stable)

    def check(resp):
        if resp.error_code:
            return resp.error_code
        for t in resp.topics:
            for p in t.partitions:
                if p.error_code:
                    return p.error_code
        return 0

    resp = await _coordinator_call(cluster, group_id, ApiKey.OFFSET_FETCH, body, OFFSET_FETCH_MAX_VERSION,
                                   2 if partitions is None else 1, check, timeout_ms)
    out = {}
    for t in resp.topics:
        for p in t.partitions:
            if p.committed_offset >= 0:
                out[TopicPartition(t.name, p.partition_index)] = OffsetAndMetadata(
                    p.committed_offset, p.metadata or "", p.committed_leader_epoch)
    return out

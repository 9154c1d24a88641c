"""The async admin client: topics, partitions, configs, groups, offsets, records, cluster.

Theory of operation. Each method is one Kafka admin API sent to the broker that owns the
question (the controller for topic changes, each partition's leader for DeleteRecords and
ListOffsets, the group's coordinator for group questions) through the shared ``Cluster``.
Results come back as plain dicts and named tuples; a per-item error raises its typed
``KafkaError`` (``raise_errors=False`` on the bulk calls returns the errors instead).
Topic creation waits until the new topic appears in metadata, so a producer started
right after ``create_topics`` finds it.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import NamedTuple

import anyio

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.consumer_group_describe import ConsumerGroupDescribeRequest
from kafkito.protocol.messages.create_partitions import CreatePartitionsRequest, CreatePartitionsTopic
from kafkito.protocol.messages.create_topics import CreatableTopic, CreatableTopicConfig, CreateTopicsRequest
from kafkito.protocol.messages.delete_groups import DeleteGroupsRequest
from kafkito.protocol.messages.delete_records import (
    DeleteRecordsPartition,
    DeleteRecordsRequest,
    DeleteRecordsTopic,
)
from kafkito.protocol.messages.delete_topics import DeleteTopicsRequest
from kafkito.protocol.messages.describe_cluster import DescribeClusterRequest
from kafkito.protocol.messages.describe_configs import DescribeConfigsRequest, DescribeConfigsResource
from kafkito.protocol.messages.describe_groups import DescribeGroupsRequest
from kafkito.protocol.messages.incremental_alter_configs import (
    AlterableConfig,
    AlterConfigsResource,
    IncrementalAlterConfigsRequest,
)
from kafkito.protocol.messages.list_groups import ListGroupsRequest
from kafkito.protocol.messages.offset_delete import (
    OffsetDeleteRequest,
    OffsetDeleteRequestPartition,
    OffsetDeleteRequestTopic,
)
from kafkito.protocol.records.consumer_protocol import CONSUMER_PROTOCOL_ASSIGNMENT

from .base import ClientBase
from .cluster import Cluster
from .errors import KafkaError, error_for
from .offsets import EARLIEST, LATEST, commit_offsets, fetch_committed, list_offsets
from .types import Node, OffsetAndMetadata, PartitionInfo, TopicPartition

__all__ = ["Admin", "ClusterDescription", "GroupDescription", "MemberDescription", "TopicDescription"]

TOPIC_RESOURCE = 2
BROKER_RESOURCE = 4
_OPS = {"set": 0, "delete": 1, "append": 2, "subtract": 3}


class TopicDescription(NamedTuple):
    name: str
    partitions: list  # [PartitionInfo]
    internal: bool = False


class MemberDescription(NamedTuple):
    member_id: str
    group_instance_id: str | None
    client_id: str
    host: str
    assignment: list  # [TopicPartition]


class GroupDescription(NamedTuple):
    group_id: str
    state: str
    protocol_type: str
    protocol: str
    members: list  # [MemberDescription]


class ClusterDescription(NamedTuple):
    cluster_id: str | None
    controller_id: int
    brokers: list  # [Node]


class Admin(ClientBase):
    """Async admin client. ``async with Admin("127.0.0.1:9092") as admin: ...``"""

    def __init__(self, bootstrap_servers="127.0.0.1:9092", *, client_id: str = "kafkito-admin",
                 request_timeout_ms: int = 30000, connect_timeout_ms: int = 10000,
                 retry_backoff_ms: int = 100) -> None:
        self.cluster = Cluster(bootstrap_servers, client_id=client_id, request_timeout_ms=request_timeout_ms,
                               connect_timeout_ms=connect_timeout_ms, retry_backoff_ms=retry_backoff_ms,
                               allow_auto_create_topics=False)
        self.request_timeout_ms = request_timeout_ms
        self._tg = None

    async def close(self) -> None:
        await self._close_connections()

    async def _controller(self) -> int | None:
        if self.cluster.controller_id < 0 or self.cluster.needs_refresh:
            await self.cluster.refresh()
        c = self.cluster.controller_id
        return c if c >= 0 else None

    @staticmethod
    def _check(results: dict, raise_errors: bool) -> dict:
        if raise_errors:
            for v in results.values():
                if isinstance(v, KafkaError):
                    raise v
        return results

    # -- topics ------------------------------------------------------------------------------
    async def list_topics(self, *, internal: bool = False) -> list[str]:
        await self.cluster.refresh(all_topics=True)
        return sorted(t for t in self.cluster.topics if internal or t not in self.cluster.internal_topics)

    async def describe_topics(self, topics: list[str] | None = None) -> dict[str, TopicDescription]:
        """Partitions, leaders and replicas; every topic when ``topics`` is None."""
        if topics is None:
            await self.cluster.refresh(all_topics=True)
            topics = sorted(self.cluster.topics)
        else:
            self.cluster.want(topics)
            await self.cluster.refresh()
        out = {}
        for t in topics:
            parts = self.cluster.topics.get(t)
            if parts is None:
                raise error_for(self.cluster.topic_errors.get(t, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION), t)
            out[t] = TopicDescription(t, [parts[p] for p in sorted(parts)], t in self.cluster.internal_topics)
        return out

    async def create_topics(self, topics: dict | list, *, num_partitions: int = -1, replication_factor: int = -1,
                            configs: dict | None = None, validate_only: bool = False,
                            raise_errors: bool = True) -> dict[str, KafkaError | None]:
        """Create topics: ``{"name": {"num_partitions": 3, "replication_factor": 1,
        "configs": {...}}}`` or a list of names (taking the keyword defaults)."""
        if not isinstance(topics, dict):
            topics = {t: {} for t in topics}
        creatable = []
        for name, spec in topics.items():
            cfg = dict(configs or {})
            cfg.update(spec.get("configs") or {})
            creatable.append(CreatableTopic(
                name=name, num_partitions=spec.get("num_partitions", num_partitions),
                replication_factor=spec.get("replication_factor", replication_factor),
                configs=[CreatableTopicConfig(name=k, value=None if v is None else str(v)) for k, v in cfg.items()]))
        body = CreateTopicsRequest(topics=creatable, timeout_ms=self.request_timeout_ms, validate_only=validate_only)
        resp = await self.cluster.send(await self._controller(), ApiKey.CREATE_TOPICS, body, 5, 2)
        results = {t.name: (error_for(t.error_code, t.error_message or t.name) if t.error_code else None)
                   for t in resp.topics}
        if not validate_only:
            await self._await_topics([t for t, e in results.items() if e is None], present=True)
        return self._check(results, raise_errors)

    async def _await_topics(self, names: list[str], *, present: bool) -> None:
        if not names:
            return
        deadline = time.monotonic() + self.request_timeout_ms / 1000
        while time.monotonic() < deadline:
            await self.cluster.refresh(all_topics=True)
            have = set(self.cluster.topics)
            if all((n in have) == present for n in names):
                return
            await anyio.sleep(0.05)

    async def delete_topics(self, topics: list[str], *, raise_errors: bool = True) -> dict[str, KafkaError | None]:
        body = DeleteTopicsRequest(topic_names=list(topics), timeout_ms=self.request_timeout_ms)
        resp = await self.cluster.send(await self._controller(), ApiKey.DELETE_TOPICS, body, 5, 1)
        results = {r.name: (error_for(r.error_code, r.error_message or r.name) if r.error_code else None)
                   for r in resp.responses}
        await self._await_topics([t for t, e in results.items() if e is None], present=False)
        for t in topics:
            self.cluster.topics.pop(t, None)
        return self._check(results, raise_errors)

    async def create_partitions(self, counts: dict[str, int], *, validate_only: bool = False,
                                raise_errors: bool = True) -> dict[str, KafkaError | None]:
        """Grow topics to ``{topic: new total partition count}``."""
        body = CreatePartitionsRequest(
            topics=[CreatePartitionsTopic(name=t, count=n, assignments=None) for t, n in counts.items()],
            timeout_ms=self.request_timeout_ms, validate_only=validate_only)
        resp = await self.cluster.send(await self._controller(), ApiKey.CREATE_PARTITIONS, body, 3)
        results = {r.name: (error_for(r.error_code, r.error_message or r.name) if r.error_code else None)
                   for r in resp.results}
        self.cluster.invalidate()
        return self._check(results, raise_errors)

    # -- configs -----------------------------------------------------------------------------
    async def describe_configs(self, topics: list[str] = (), brokers: list[int] = (), *,
                               include_defaults: bool = True) -> dict[tuple[str, str], dict[str, dict]]:
        """``{("topic", name): {config: {"value", "source", "read_only", "sensitive",
        "default"}}}`` (and ``("broker", id)`` for brokers)."""
        resources = [DescribeConfigsResource(resource_type=TOPIC_RESOURCE, resource_name=t, configuration_keys=None)
                     for t in topics]
        resources += [DescribeConfigsResource(resource_type=BROKER_RESOURCE, resource_name=str(b),
                                              configuration_keys=None) for b in brokers]
        body = DescribeConfigsRequest(resources=resources, include_synonyms=False)
        resp = await self.cluster.send(None, ApiKey.DESCRIBE_CONFIGS, body, 4, 1)
        out = {}
        for r in resp.results:
            kind = "topic" if r.resource_type == TOPIC_RESOURCE else "broker"
            if r.error_code:
                raise error_for(r.error_code, r.error_message or r.resource_name)
            configs = {}
            for c in r.configs:
                default = c.config_source == 5 or c.config_source == -1 and c.is_default
                if not include_defaults and default:
                    continue
                configs[c.name] = {"value": c.value, "source": c.config_source, "read_only": c.read_only,
                                   "sensitive": c.is_sensitive, "default": default}
            out[(kind, r.resource_name)] = configs
        return out

    async def alter_configs(self, topic: str, set_configs: dict | None = None,
                            delete_configs: list[str] = (), *, validate_only: bool = False) -> None:
        """IncrementalAlterConfigs on one topic: set some configs, delete others."""
        ops = [AlterableConfig(name=k, config_operation=_OPS["set"], value=str(v))
               for k, v in (set_configs or {}).items()]
        ops += [AlterableConfig(name=k, config_operation=_OPS["delete"], value=None) for k in delete_configs]
        body = IncrementalAlterConfigsRequest(
            resources=[AlterConfigsResource(resource_type=TOPIC_RESOURCE, resource_name=topic, configs=ops)],
            validate_only=validate_only)
        resp = await self.cluster.send(None, ApiKey.INCREMENTAL_ALTER_CONFIGS, body, 1)
        for r in resp.responses:
            if r.error_code:
                raise error_for(r.error_code, r.error_message or r.resource_name)

    # -- groups ------------------------------------------------------------------------------
    async def list_groups(self) -> list[tuple[str, str, str]]:
        """(group id, protocol type, state) of every group on every broker."""
        await self.cluster.refresh()
        out = []
        for node in sorted(self.cluster.brokers):
            resp = await self.cluster.send(node, ApiKey.LIST_GROUPS, ListGroupsRequest(), 4)
            if resp.error_code:
                raise error_for(resp.error_code, "ListGroups")
            out += [(g.group_id, g.protocol_type, g.group_state or "") for g in resp.groups]
        return sorted(out)

    async def describe_groups(self, group_ids: list[str]) -> dict[str, GroupDescription]:
        out = {}
        for gid in group_ids:
            node = await self.cluster.coordinator(gid)
            resp = await self.cluster.send(node, ApiKey.DESCRIBE_GROUPS, DescribeGroupsRequest(groups=[gid]), 5)
            for g in resp.groups:
                if g.error_code:
                    raise error_for(g.error_code, g.error_message or g.group_id)
                members = []
                for m in g.members:
                    assigned = []
                    if g.protocol_type == "consumer" and m.member_assignment:
                        try:
                            _, a = CONSUMER_PROTOCOL_ASSIGNMENT.decode(m.member_assignment, exact=False)
                            assigned = [TopicPartition(t.topic, p) for t in a.assigned_partitions for p in t.partitions]
                        except Exception:
                            assigned = []
                    members.append(MemberDescription(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                                                     sorted(assigned)))
                out[g.group_id] = GroupDescription(g.group_id, g.group_state, g.protocol_type, g.protocol_data,
                                                   members)
                if g.group_state == "Dead" and not g.protocol_type and not members:
                    # Not a classic group: a KIP-848 group answers ConsumerGroupDescribe instead.
                    described = await self._describe_consumer_group(node, gid)
                    if described is not None:
                        out[g.group_id] = described
        return out

    async def _describe_consumer_group(self, node: int, group_id: str) -> GroupDescription | None:
        conn = await self.cluster.connection(node)
        if not conn.supports(ApiKey.CONSUMER_GROUP_DESCRIBE):
            return None
        resp = await self.cluster.send(node, ApiKey.CONSUMER_GROUP_DESCRIBE,
                                       ConsumerGroupDescribeRequest(group_ids=[group_id]), 1)
        for g in resp.groups:
            if g.error_code == ErrorCode.GROUP_ID_NOT_FOUND:
                return None
            if g.error_code:
                raise error_for(g.error_code, g.error_message or group_id)
            members = [MemberDescription(m.member_id, m.instance_id, m.client_id, m.client_host,
                                         sorted(TopicPartition(t.topic_name, p) for t in m.assignment.topic_partitions
                                                for p in t.partitions)) for m in g.members]
            return GroupDescription(g.group_id, g.group_state, "consumer", g.assignor_name, members)
        return None

    async def delete_groups(self, group_ids: list[str], *, raise_errors: bool = True) -> dict[str, KafkaError | None]:
        results = {}
        for gid in group_ids:
            node = await self.cluster.coordinator(gid)
            resp = await self.cluster.send(node, ApiKey.DELETE_GROUPS, DeleteGroupsRequest(groups_names=[gid]), 2)
            for r in resp.results:
                results[r.group_id] = error_for(r.error_code, r.group_id) if r.error_code else None
        return self._check(results, raise_errors)

    async def list_group_offsets(self, group_id: str, partitions: list[TopicPartition] | None = None
                                 ) -> dict[TopicPartition, OffsetAndMetadata]:
        return await fetch_committed(self.cluster, group_id, partitions)

    async def alter_group_offsets(self, group_id: str, offsets: dict) -> None:
        """Commit offsets for a group (it must have no active members, as Kafka requires)."""
        await commit_offsets(self.cluster, group_id, {TopicPartition(*tp): v for tp, v in offsets.items()})

    async def delete_group_offsets(self, group_id: str, partitions: list[TopicPartition]) -> None:
        by_topic: dict[str, list] = defaultdict(list)
        for tp in partitions:
            by_topic[tp.topic].append(OffsetDeleteRequestPartition(partition_index=tp.partition))
        body = OffsetDeleteRequest(group_id=group_id, topics=[OffsetDeleteRequestTopic(name=t, partitions=ps)
                                                              for t, ps in by_topic.items()])
        node = await self.cluster.coordinator(group_id)
        resp = await self.cluster.send(node, ApiKey.OFFSET_DELETE, body, 0)
        if resp.error_code:
            raise error_for(resp.error_code, group_id)
        for t in resp.topics:
            for p in t.partitions:
                if p.error_code:
                    raise error_for(p.error_code, f"{t.name}-{p.partition_index}")

    # -- offsets and records -----------------------------------------------------------------
    async def list_offsets(self, specs: dict, *, isolation_level: int = 0) -> dict:
        """``{tp: "earliest" | "latest" | timestamp_ms}`` → ``{tp: OffsetAndTimestamp | None}``."""
        ts = {TopicPartition(*tp): (EARLIEST if v == "earliest" else LATEST if v == "latest" else int(v))
              for tp, v in specs.items()}
        return await list_offsets(self.cluster, ts, isolation_level=isolation_level)

    async def delete_records(self, before: dict) -> dict[TopicPartition, int]:
        """Move each partition's log start to ``{tp: offset}`` (-1: the high watermark);
        returns the new low watermarks."""
        await self.cluster.refresh([tp[0] for tp in before])
        by_node: dict[int, dict[str, list]] = defaultdict(lambda: defaultdict(list))
        for tp, off in before.items():
            tp = TopicPartition(*tp)
            by_node[self.cluster.leader_for(*tp)][tp.topic].append(
                DeleteRecordsPartition(partition_index=tp.partition, offset=int(off)))
        out = {}
        for node, topics in by_node.items():
            body = DeleteRecordsRequest(topics=[DeleteRecordsTopic(name=t, partitions=ps) for t, ps in topics.items()],
                                        timeout_ms=self.request_timeout_ms)
            resp = await self.cluster.send(node, ApiKey.DELETE_RECORDS, body, 2)
            for t in resp.topics:
                for p in t.partitions:
                    if p.error_code:
                        raise error_for(p.error_code, f"{t.name}-{p.partition_index}")
                    out[TopicPartition(t.name, p.partition_index)] = p.low_watermark
        return out

    # -- cluster -----------------------------------------------------------------------------
    async def describe_cluster(self) -> ClusterDescription:
        conn = await self.cluster.any_connection()
        if conn.supports(ApiKey.DESCRIBE_CLUSTER):
            resp = await self.cluster.send(None, ApiKey.DESCRIBE_CLUSTER, DescribeClusterRequest(), 1)
            if resp.error_code:
                raise error_for(resp.error_code, resp.error_message)
            return ClusterDescription(resp.cluster_id, resp.controller_id,
                                      [Node(b.broker_id, b.host, b.port, b.rack) for b in resp.brokers])
        await self.cluster.refresh()
        return ClusterDescription(self.cluster.cluster_id, self.cluster.controller_id,
                                  sorted(self.cluster.brokers.values()))


_ = PartitionInfo  # re-exported type of TopicDescription.partitions

"""The cluster as the client sees it: bootstrap, metadata, one connection per broker.

Theory of operation
-------------------
``Cluster`` is shared by everything one Producer, Consumer or Admin does. It starts from
``bootstrap.servers`` (a comma-separated list or a list of ``host:port``), tries each
address in turn until one answers Metadata, and from then on knows the brokers by node id
and every topic it was asked about: partitions, their leaders and leader epochs.

Metadata is refreshed when it is older than ``metadata.max.age.ms``, when a caller asks
for a topic it does not know, and when a broker answers NOT_LEADER_OR_FOLLOWER,
UNKNOWN_TOPIC_OR_PARTITION or similar (``invalidate()``, then ``refresh()``). Concurrent
refreshes coalesce: whoever comes second waits for the first one's answer.

Connections are opened on demand, one per node, in the owner's task group; a dead one is
replaced on the next request. ``send(node, api, body, max_version)`` picks the version both
sides speak and retries a request whose connection failed (once a connection is open the
retry policy of each operation lives with the operation: produce must not resend blindly).
"""

from __future__ import annotations

import logging
import random
import time
from typing import Iterable

import anyio

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.metadata import MetadataRequest, MetadataRequestTopic

from .connection import BrokerConnection
from .errors import KafkaConnectionError, KafkaError, KafkaTimeoutError, error_for
from .types import Node, PartitionInfo

__all__ = ["Cluster", "parse_bootstrap"]

log = logging.getLogger("kafkito.client")

METADATA_MAX_VERSION = 12
BOOTSTRAP_NODE_BASE = -1000  # pseudo node ids of bootstrap addresses, as Kafka's client uses negative ids


def parse_bootstrap(servers) -> list[tuple[str, int]]:
    if isinstance(servers, str):
        servers = [s for s in servers.split(",") if s.strip()]
    out = []
    for s in servers:
        s = s.strip()
        host, _, port = s.rpartition(":")
        if not host:
            host, port = s, "9092"
        host = host.strip("[]")
        try:
            out.append((host, int(port)))
        except ValueError:
            raise ValueError(f"bad bootstrap address {s!r}: expected host:port") from None
    if not out:
        raise ValueError("bootstrap.servers is empty")
    return out


class Cluster:
    def __init__(self, bootstrap_servers, *, client_id: str = "kafkito", request_timeout_ms: int = 30000,
                 connect_timeout_ms: int = 10000, metadata_max_age_ms: int = 300000,
                 retry_backoff_ms: int = 100, max_in_flight: int = 5,
                 allow_auto_create_topics: bool = True) -> None:
        self.bootstrap = parse_bootstrap(bootstrap_servers)
        self.client_id = client_id
        self.request_timeout_ms = request_timeout_ms
        self.connect_timeout_ms = connect_timeout_ms
        self.metadata_max_age_ms = metadata_max_age_ms
        self.retry_backoff_ms = retry_backoff_ms
        self.max_in_flight = max_in_flight
        self.allow_auto_create_topics = allow_auto_create_topics
        self.brokers: dict[int, Node] = {}
        self.cluster_id: str | None = None
        self.controller_id: int = -1
        self.topics: dict[str, dict[int, PartitionInfo]] = {}
        self.topic_errors: dict[str, int] = {}
        self.topic_ids: dict[str, object] = {}  # name -> uuid (Metadata v10+; KIP-848 assignments use ids)
        self.internal_topics: set[str] = set()
        self._wanted: set[str] = set()  # topics kept fresh on every refresh
        self._conns: dict[int, BrokerConnection] = {}
        self._connecting: dict[int, anyio.Event] = {}
        self._tg = None
        self._refreshing: anyio.Event | None = None
        self._updated_at = 0.0
        self._stale = True
        self.closed = False

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self, task_group) -> None:
        self._tg = task_group
        await self.refresh()

    async def close(self) -> None:
        self.closed = True
        conns = list(self._conns.values())
        self._conns.clear()
        for c in conns:
            await c.close()

    # -- connections -------------------------------------------------------------------------
    async def connection(self, node_id: int) -> BrokerConnection:
        """The live connection to ``node_id`` (a bootstrap pseudo id is allowed), opened if needed."""
        while True:
            conn = self._conns.get(node_id)
            if conn is not None and conn.alive:
                return conn
            waiting = self._connecting.get(node_id)
            if waiting is None:
                break
            await waiting.wait()
        if self.closed:
            raise KafkaConnectionError("the client is closed")
        if node_id <= BOOTSTRAP_NODE_BASE:
            host, port = self.bootstrap[BOOTSTRAP_NODE_BASE - node_id]
        else:
            node = self.brokers.get(node_id)
            if node is None:
                raise KafkaConnectionError(f"broker {node_id} is not in the metadata")
            host, port = node.host, node.port
        done = self._connecting[node_id] = anyio.Event()
        try:
            conn = BrokerConnection(host, port, node_id=node_id, client_id=self.client_id,
                                    request_timeout_ms=self.request_timeout_ms,
                                    connect_timeout_ms=self.connect_timeout_ms,
                                    max_in_flight=self.max_in_flight)
            try:
                await conn.connect(self._tg)
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await conn.close()
                raise
            self._conns[node_id] = conn
            return conn
        finally:
            del self._connecting[node_id]
            done.set()

    async def any_connection(self) -> BrokerConnection:
        """A connection to some broker: an open one if any, else each known broker and then
        each bootstrap address in turn."""
        for conn in self._conns.values():
            if conn.alive and conn.node_id >= 0:
                return conn
        candidates = list(self.brokers)
        random.shuffle(candidates)
        candidates += [BOOTSTRAP_NODE_BASE - i for i in range(len(self.bootstrap))]
        last: Exception | None = None
        for node_id in candidates:
            try:
                return await self.connection(node_id)
            except KafkaConnectionError as exc:
                last = exc
        addrs = ", ".join(f"{h}:{p}" for h, p in self.bootstrap)
        raise KafkaConnectionError(f"no broker reachable (bootstrap {addrs}): {last.message if last else ''}")

    async def send(self, node_id: int | None, api_key: int, body_for_version, max_version: int,
                   min_version: int = 0, *, timeout_ms: int | None = None):
        """Send to ``node_id`` (None: any broker) at the best common version.

        ``body_for_version`` is a request body or a function of the version returning one
        (for requests whose shape changes between versions). A connection that fails before
        or while sending is retried once on a fresh connection; the response is returned
        as decoded (its error codes are the caller's to read)."""
        attempts = 2
        while True:
            conn = await (self.any_connection() if node_id is None else self.connection(node_id))
            version = conn.version(api_key, max_version, min_version)
            body = body_for_version(version) if callable(body_for_version) else body_for_version
            try:
                return await conn.request(api_key, version, body, timeout_ms=timeout_ms)
            except KafkaConnectionError:
                attempts -= 1
                if attempts <= 0 or self.closed:
                    raise
                self.invalidate()
                await anyio.sleep(self.retry_backoff_ms / 1000)

    # -- metadata ----------------------------------------------------------------------------
    def invalidate(self) -> None:
        self._stale = True

    @property
    def needs_refresh(self) -> bool:
        return self._stale or (time.monotonic() - self._updated_at) * 1000 > self.metadata_max_age_ms

    def want(self, topics: Iterable[str]) -> bool:
        """Keep ``topics`` fresh from now on; True if any was new."""
        new = set(topics) - self._wanted
        self._wanted |= new
        if new:
            self._stale = True
        return bool(new)

    async def refresh(self, topics: Iterable[str] | None = None, *, all_topics: bool = False) -> None:
        """Fetch metadata for the wanted topics (plus ``topics``); concurrent calls coalesce."""
        if topics:
            self.want(topics)
        if self._refreshing is not None:
            await self._refreshing.wait()
            if not self._stale and not all_topics:
                return
        event = self._refreshing = anyio.Event()
        try:
            wanted = None if all_topics else sorted(self._wanted)

            def body(version):
                if wanted is None:
                    names = None if version >= 1 else []
                else:
                    names = [MetadataRequestTopic(name=t) for t in wanted]
                return MetadataRequest(topics=names, allow_auto_topic_creation=self.allow_auto_create_topics)

            last: Exception | None = None
            deadline = time.monotonic() + self.request_timeout_ms / 1000
            while True:
                try:
                    resp = await self.send(None, ApiKey.METADATA, body, METADATA_MAX_VERSION, 1)
                    break
                except KafkaConnectionError as exc:
                    last = exc
                    if time.monotonic() > deadline or self.closed:
                        raise KafkaConnectionError(str(last.message)) from None
                    await anyio.sleep(self.retry_backoff_ms / 1000)
            self._apply(resp, replace_all=all_topics)
        finally:
            self._refreshing = None
            event.set()

    def _apply(self, resp, *, replace_all: bool) -> None:
        self.brokers = {b.node_id: Node(b.node_id, b.host, b.port, b.rack) for b in resp.brokers}
        self.cluster_id = resp.cluster_id
        self.controller_id = resp.controller_id
        for c_id, conn in list(self._conns.items()):
            node = self.brokers.get(c_id)
            if c_id >= 0 and (node is None or (node.host, node.port) != (conn.host, conn.port)):
                self._conns.pop(c_id)  # the broker moved: connect afresh next time
                if self._tg is not None:
                    self._tg.start_soon(conn.close)
        if replace_all:
            self.topics.clear()
        for t in resp.topics:
            if t.error_code:
                self.topic_errors[t.name] = t.error_code
                self.topics.pop(t.name, None)
                continue
            self.topic_errors.pop(t.name, None)
            if t.topic_id is not None and t.topic_id.int:
                self.topic_ids[t.name] = t.topic_id
            if t.is_internal:
                self.internal_topics.add(t.name)
            self.topics[t.name] = {
                p.partition_index: PartitionInfo(t.name, p.partition_index, p.leader_id, p.leader_epoch,
                                                 tuple(p.replica_nodes), tuple(p.isr_nodes), p.error_code)
                for p in t.partitions
            }
        self._updated_at = time.monotonic()
        self._stale = False

    async def partitions_for(self, topic: str, *, wait_ms: int | None = None) -> dict[int, PartitionInfo]:
        """The partitions of ``topic``, refreshing metadata until it is known or ``wait_ms``
        (default ``request.timeout.ms``) passes; UNKNOWN_TOPIC_OR_PARTITION then."""
        self.want([topic])
        deadline = time.monotonic() + (self.request_timeout_ms if wait_ms is None else wait_ms) / 1000
        while True:
            parts = self.topics.get(topic)
            if parts and not self._stale:
                return parts
            if parts and not self.needs_refresh:
                return parts
            await self.refresh()
            parts = self.topics.get(topic)
            if parts:
                return parts
            code = self.topic_errors.get(topic, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
            err = error_for(code, f"topic {topic!r}")
            if not err.retriable or time.monotonic() >= deadline:
                raise err
            self._stale = True
            await anyio.sleep(self.retry_backoff_ms / 1000)

    def leader_for(self, topic: str, partition: int) -> int:
        info = self.topics.get(topic, {}).get(partition)
        return -1 if info is None else info.leader

    def leader_epoch(self, topic: str, partition: int) -> int:
        info = self.topics.get(topic, {}).get(partition)
        return -1 if info is None else info.leader_epoch

    async def coordinator(self, key: str, key_type: int = 0) -> int:
        """The node id coordinating group (key_type 0) or transactional id (1) ``key``."""
        from kafkito.protocol.messages.find_coordinator import FindCoordinatorRequest

        deadline = time.monotonic() + self.request_timeout_ms / 1000
        while True:
            def body(version):
                if version >= 4:
                    return FindCoordinatorRequest(key_type=key_type, coordinator_keys=[key])
                return FindCoordinatorRequest(key=key, key_type=key_type)

            resp = await self.send(None, ApiKey.FIND_COORDINATOR, body, 4)
            if resp.coordinators:
                c = resp.coordinators[0]
                code, node_id, host, port, msg = c.error_code, c.node_id, c.host, c.port, c.error_message
            else:
                code, node_id, host, port, msg = resp.error_code, resp.node_id, resp.host, resp.port, resp.error_message
            if not code:
                if node_id not in self.brokers:
                    self.brokers[node_id] = Node(node_id, host, port)
                return node_id
            err = error_for(code, msg or f"coordinator for {key!r}")
            if not err.retriable or time.monotonic() >= deadline:
                raise err
            await anyio.sleep(self.retry_backoff_ms / 1000)


def retry_deadline(timeout_ms: int) -> float:
    return time.monotonic() + timeout_ms / 1000


_RETRY_ERRORS = (KafkaConnectionError, KafkaTimeoutError)


def is_retriable(exc: BaseException) -> bool:
    return isinstance(exc, KafkaError) and exc.retriable

"""Classic consumer-group membership: join, sync, heartbeat, rebalance, leave.

Theory of operation
-------------------
``GroupMember`` is the consumer's side of the classic group protocol (KIP-62 threading, as
Kafka's ``ConsumerCoordinator``):

* ``ensure_active`` runs in the caller's ``poll``: while the member is not in a stable
  generation it finds the coordinator (FindCoordinator), joins (JoinGroup; a first join
  answered MEMBER_ID_REQUIRED is repeated with the id the broker gave), computes the
  assignment if it is the leader (assignors.py, over every member's subscription and the
  partition counts from metadata) and syncs (SyncGroup). Partitions are committed and
  revoked before the member rejoins: all of them with an eager protocol (range,
  roundrobin), only those that move away with cooperative-sticky, whose assignment then
  asks for the follow-up rebalance that hands them to their new owner.
* ``heartbeat_loop`` runs in the background every ``heartbeat.interval.ms`` while the member
  is stable. REBALANCE_IN_PROGRESS asks the next poll to rejoin; UNKNOWN_MEMBER_ID,
  ILLEGAL_GENERATION and FENCED_INSTANCE_ID mean the partitions are already lost (the
  group moved on without this member): they are dropped without a commit and the member
  joins afresh. A coordinator that moved or went away (NOT_COORDINATOR, a broken
  connection) is looked up again; the membership itself survives if the session does.
* ``leave`` sends LeaveGroup so the group rebalances at once instead of after
  ``session.timeout.ms`` (static members with ``group.instance.id`` do not leave: that is
  their point).

The protocol the broker picks is the first of the consumer's ``partition.assignment.strategy``
that every member supports.
"""

from __future__ import annotations

import inspect
import logging
import time

import anyio

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.heartbeat import HeartbeatRequest
from kafkito.protocol.messages.join_group import JoinGroupRequest, JoinGroupRequestProtocol
from kafkito.protocol.messages.leave_group import LeaveGroupRequest, MemberIdentity
from kafkito.protocol.messages.sync_group import SyncGroupRequest, SyncGroupRequestAssignment
from kafkito.protocol.records.consumer_protocol import (
    CONSUMER_PROTOCOL_ASSIGNMENT,
    CONSUMER_PROTOCOL_SUBSCRIPTION,
    ConsumerProtocolAssignment,
    ConsumerProtocolSubscription,
)
from kafkito.protocol.records.consumer_protocol import TopicPartition as ProtoTopicPartition

from .assignors import ASSIGNORS, COOPERATIVE, MemberSubscription
from .errors import KafkaError, KafkaTimeoutError, error_for
from .types import TopicPartition

__all__ = ["GroupMember"]

log = logging.getLogger("kafkito.client")

JOIN_GROUP_MAX_VERSION = 7
SYNC_GROUP_MAX_VERSION = 5
HEARTBEAT_MAX_VERSION = 4
LEAVE_GROUP_MAX_VERSION = 4
SUBSCRIPTION_VERSION = 1  # v1 carries owned partitions (cooperative rebalancing)
_LOST = {ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.ILLEGAL_GENERATION, ErrorCode.FENCED_INSTANCE_ID}
_COORDINATOR_GONE = {ErrorCode.NOT_COORDINATOR, ErrorCode.COORDINATOR_NOT_AVAILABLE,
                     ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, ErrorCode.NETWORK_EXCEPTION,
                     ErrorCode.REQUEST_TIMED_OUT}


def _group_tps(assigned: dict) -> list[ProtoTopicPartition]:
    return [ProtoTopicPartition(topic=t, partitions=sorted(ps)) for t, ps in sorted(assigned.items()) if ps]


async def revoke(consumer, listener, partitions: set, *, commit: bool = True) -> None:
    """Give partitions up: commit their positions first (with auto commit on), tell the
    listener, drop them. Both group protocols revoke this way."""
    if commit and consumer.enable_auto_commit:
        offsets = {tp: om for tp, om in consumer._positions().items() if tp in partitions}
        if offsets:
            try:
                await consumer.commit(offsets)
            except KafkaError as exc:
                log.warning("group %s: commit before revoking failed: %s", consumer.group_id, exc)
    await _call(listener, "on_partitions_revoked", partitions)
    consumer._remove_partitions(partitions)


async def _call(listener, name: str, partitions: set) -> None:
    fn = getattr(listener, name, None) if listener is not None else None
    if fn is None:
        return
    try:
        result = fn(set(partitions))
        if inspect.isawaitable(result):
            await result
    except Exception:  # a listener's failure must not wedge the membership
        log.exception("rebalance listener %s failed", name)


class GroupMember:
    def __init__(self, consumer, group_id: str, *, session_timeout_ms: int, rebalance_timeout_ms: int,
                 heartbeat_interval_ms: int, assignors: list[str], group_instance_id: str | None) -> None:
        for a in assignors:
            if a not in ASSIGNORS:
                raise ValueError(f"unknown partition assignment strategy {a!r}; known: {sorted(ASSIGNORS)}")
        self.consumer = consumer
        self.cluster = consumer.cluster
        self.group_id = group_id
        self.session_timeout_ms = session_timeout_ms
        self.rebalance_timeout_ms = rebalance_timeout_ms
        self.heartbeat_interval_s = heartbeat_interval_ms / 1000
        self.assignors = assignors
        self.group_instance_id = group_instance_id
        self.member_id = ""
        self.generation_id = -1
        self.protocol: str | None = None
        self.subscription: list[str] | None = None  # None: not subscribed (assign() or nothing)
        self.pattern = None
        self.listener = None
        self.stable = False
        self.rejoin_needed = True
        self._coordinator: int | None = None
        self._joined_topics: set[str] = set()

    # -- subscription ------------------------------------------------------------------------
    def set_subscription(self, topics, pattern, listener) -> None:
        if not topics and pattern is None:
            self.subscription = None
            self.pattern = None
            self.stable = False
            return
        self.subscription = sorted(set(topics or ()))
        self.pattern = pattern
        self.listener = listener
        self.rejoin_needed = True

    def request_rejoin(self) -> None:
        self.rejoin_needed = True
        self.consumer._data.set()

    async def _subscribed_topics(self) -> list[str]:
        if self.pattern is None:
            return self.subscription
        await self.cluster.refresh(all_topics=True)
        return sorted(t for t in self.cluster.topics
                      if self.pattern.fullmatch(t) and t not in self.cluster.internal_topics)

    # -- the join loop -----------------------------------------------------------------------
    async def ensure_active(self, deadline: float) -> None:
        if self.pattern is not None and self.stable and self.cluster.needs_refresh:
            topics = set(await self._subscribed_topics())
            if topics != self._joined_topics:
                self.rejoin_needed = True
        while self.rejoin_needed or not self.stable:
            if self.subscription is None:
                return
            try:
                await self._join_and_sync()
            except KafkaError as exc:
                if not exc.retriable and exc.code not in _LOST and exc.code != ErrorCode.REBALANCE_IN_PROGRESS:
                    raise
                log.debug("group %s: rejoining after %s", self.group_id, exc)
                if exc.code in _COORDINATOR_GONE or isinstance(exc, KafkaTimeoutError):
                    self._coordinator = None
                await anyio.sleep(self.cluster.retry_backoff_ms / 1000)
            if time.monotonic() > deadline + self.rebalance_timeout_ms / 1000:
                raise KafkaTimeoutError(f"group {self.group_id}: no stable generation")

    async def _coordinator_node(self) -> int:
        if self._coordinator is None:
            self._coordinator = await self.cluster.coordinator(self.group_id)
        return self._coordinator

    def _owned(self) -> set[TopicPartition]:
        return set(self.consumer._states)

    async def _revoke(self, partitions: set[TopicPartition]) -> None:
        if partitions:
            await revoke(self.consumer, self.listener, partitions, commit=self.generation_id >= 0)

    async def _lose(self) -> None:
        owned = self._owned()
        if owned:
            await _call(self.listener, "on_partitions_lost" if hasattr(self.listener, "on_partitions_lost")
                        else "on_partitions_revoked", owned)
            self.consumer._remove_partitions(owned)

    async def _join_and_sync(self) -> None:
        cooperative = self.assignors[0] in COOPERATIVE and all(a in COOPERATIVE for a in self.assignors)
        if not cooperative:
            await self._revoke(self._owned())
        topics = await self._subscribed_topics()
        self._joined_topics = set(topics)
        owned = self._owned()
        by_topic: dict[str, list[int]] = {}
        for tp in owned:
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        sub = ConsumerProtocolSubscription(topics=topics, user_data=None, owned_partitions=_group_tps(by_topic))
        metadata = CONSUMER_PROTOCOL_SUBSCRIPTION.encode(sub, SUBSCRIPTION_VERSION)
        self.stable = False
        node = await self._coordinator_node()
        while True:
            body = JoinGroupRequest(
                group_id=self.group_id, session_timeout_ms=self.session_timeout_ms,
                rebalance_timeout_ms=self.rebalance_timeout_ms, member_id=self.member_id,
                group_instance_id=self.group_instance_id, protocol_type="consumer",
                protocols=[JoinGroupRequestProtocol(name=a, metadata=metadata) for a in self.assignors])
            resp = await self.cluster.send(node, ApiKey.JOIN_GROUP, body, JOIN_GROUP_MAX_VERSION,
                                           timeout_ms=self.rebalance_timeout_ms + 5000)
            if resp.error_code == ErrorCode.MEMBER_ID_REQUIRED:
                self.member_id = resp.member_id
                continue
            if resp.error_code in _LOST:
                self.member_id, self.generation_id = "", -1
                await self._lose()
            if resp.error_code:
                raise error_for(resp.error_code, f"JoinGroup {self.group_id}")
            break
        self.member_id = resp.member_id
        self.generation_id = resp.generation_id
        self.protocol = resp.protocol_name
        assignments = []
        if resp.leader == resp.member_id:
            assignments = await self._assign(resp.protocol_name, resp.members)
        sync = SyncGroupRequest(group_id=self.group_id, generation_id=self.generation_id, member_id=self.member_id,
                                group_instance_id=self.group_instance_id, protocol_type="consumer",
                                protocol_name=self.protocol, assignments=assignments)
        sresp = await self.cluster.send(node, ApiKey.SYNC_GROUP, sync, SYNC_GROUP_MAX_VERSION)
        if sresp.error_code in _LOST:
            self.member_id, self.generation_id = "", -1
            await self._lose()
        if sresp.error_code:
            raise error_for(sresp.error_code, f"SyncGroup {self.group_id}")
        new: set[TopicPartition] = set()
        if sresp.assignment:
            _, assignment = CONSUMER_PROTOCOL_ASSIGNMENT.decode(sresp.assignment, exact=False)
            for t in assignment.assigned_partitions:
                for p in t.partitions:
                    new.add(TopicPartition(t.topic, p))
        owned = self._owned()
        revoked = owned - new
        added = new - owned
        self.rejoin_needed = False
        if revoked:
            await self._revoke(revoked)
            if self.protocol in COOPERATIVE:
                self.rejoin_needed = True  # the follow-up rebalance hands them to their new owner
        self.consumer._add_partitions(added)
        self.stable = True
        log.debug("group %s gen %s member %s: assigned %s", self.group_id, self.generation_id,
                  self.member_id, sorted(new))
        await _call(self.listener, "on_partitions_assigned", added)

    async def _assign(self, protocol: str, members) -> list[SyncGroupRequestAssignment]:
        subs: dict[str, MemberSubscription] = {}
        all_topics: set[str] = set()
        for m in members:
            _, sub = CONSUMER_PROTOCOL_SUBSCRIPTION.decode(m.metadata, exact=False)
            owned = [(tp.topic, p) for tp in (sub.owned_partitions or []) for p in tp.partitions]
            subs[m.member_id] = MemberSubscription(list(sub.topics), owned, getattr(sub, "generation_id", -1))
            all_topics |= set(sub.topics)
        counts: dict[str, int] = {}
        if all_topics:
            await self.cluster.refresh(sorted(all_topics))
        for t in all_topics:
            parts = self.cluster.topics.get(t)
            if parts:
                counts[t] = len(parts)
        plan = ASSIGNORS[protocol](subs, counts)
        out = []
        for member_id, assigned in plan.items():
            a = ConsumerProtocolAssignment(assigned_partitions=_group_tps(assigned), user_data=None)
            out.append(SyncGroupRequestAssignment(member_id=member_id,
                                                  assignment=CONSUMER_PROTOCOL_ASSIGNMENT.encode(a, 1)))
        return out

    # -- heartbeats --------------------------------------------------------------------------
    async def heartbeat_loop(self) -> None:
        while True:
            await anyio.sleep(self.heartbeat_interval_s)
            if not self.stable or self.generation_id < 0 or self.subscription is None:
                continue
            try:
                node = await self._coordinator_node()
                body = HeartbeatRequest(group_id=self.group_id, generation_id=self.generation_id,
                                        member_id=self.member_id, group_instance_id=self.group_instance_id)
                resp = await self.cluster.send(node, ApiKey.HEARTBEAT, body, HEARTBEAT_MAX_VERSION)
                code = resp.error_code
            except KafkaError as exc:
                code = exc.code if exc.code in _COORDINATOR_GONE else ErrorCode.COORDINATOR_NOT_AVAILABLE
            except Exception:  # never let the heartbeat take the consumer down
                log.exception("heartbeat failed")
                continue
            if not code:
                continue
            if code == ErrorCode.REBALANCE_IN_PROGRESS:
                self.request_rejoin()
            elif code in _LOST:
                self.member_id, self.generation_id = "", -1
                self.stable = False
                await self._lose()
                self.request_rejoin()
            elif code in _COORDINATOR_GONE:
                self._coordinator = None
                self.cluster.invalidate()
            else:
                log.warning("group %s heartbeat: %s", self.group_id, error_for(code))

    async def leave(self) -> None:
        if self.group_instance_id is not None or not self.member_id or self.subscription is None:
            return
        try:
            node = await self._coordinator_node()

            def body(version):
                if version >= 3:
                    return LeaveGroupRequest(group_id=self.group_id,
                                             members=[MemberIdentity(member_id=self.member_id)])
                return LeaveGroupRequest(group_id=self.group_id, member_id=self.member_id)

            await self.cluster.send(node, ApiKey.LEAVE_GROUP, body, LEAVE_GROUP_MAX_VERSION)
        except KafkaError as exc:
            log.debug("leave group failed: %s", exc)
        finally:
            self.member_id, self.generation_id, self.stable = "", -1, False

"""KIP-848 consumer-group membership (``group_protocol="consumer"``), when the broker offers it.

Theory of operation
-------------------
The broker computes the assignment; the member only heartbeats (ConsumerGroupHeartbeat)
and reconciles. ``GroupConsumerMember`` has the same face as group.py's classic member
(``set_subscription``, ``ensure_active``, ``heartbeat_loop``, ``leave``), so the
consumer does not care which protocol runs:

* the heartbeat task joins (member epoch 0, the subscription, no partitions), then
  heartbeats every ``heartbeat_interval_ms`` the broker asks for. A response carrying an
  assignment sets the member's *target*; the next ``poll`` reconciles towards it in the
  caller's task: partitions leaving are committed (with auto commit) and revoked, new ones
  taken, and the heartbeat that follows reports what the member owns now, which is what
  lets the broker hand the released partitions to their next owner;
* FENCED_MEMBER_EPOCH or UNKNOWN_MEMBER_ID: the group went on without this member; its
  partitions are dropped without a commit and it joins again at epoch 0; a coordinator that
  moved is found again;
* leaving sends epoch -1 (-2 for a static member, which keeps its assignment for a while).

Assignments name topics by id, so the cluster's metadata (v10+) maps ids to names.
Offsets are committed with OffsetCommit v9+, whose generation field carries the member epoch.
"""

from __future__ import annotations

import logging
import time
import uuid

import anyio

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.consumer_group_heartbeat import ConsumerGroupHeartbeatRequest, TopicPartitions

from .errors import KafkaError, KafkaTimeoutError, error_for
from .group import _call, revoke
from .types import TopicPartition

__all__ = ["GroupConsumerMember"]

log = logging.getLogger("kafkito.client")

HEARTBEAT_MAX_VERSION = 1
_LOST = {ErrorCode.FENCED_MEMBER_EPOCH, ErrorCode.UNKNOWN_MEMBER_ID}
_COORDINATOR_GONE = {ErrorCode.NOT_COORDINATOR, ErrorCode.COORDINATOR_NOT_AVAILABLE,
                     ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, ErrorCode.NETWORK_EXCEPTION,
                     ErrorCode.REQUEST_TIMED_OUT}


class GroupConsumerMember:
    commit_version = 9  # OffsetCommit's generation field is the member epoch from v9

    def __init__(self, consumer, group_id: str, *, rebalance_timeout_ms: int, group_instance_id: str | None,
                 server_assignor: str | None = None) -> None:
        self.consumer = consumer
        self.cluster = consumer.cluster
        self.group_id = group_id
        self.rebalance_timeout_ms = rebalance_timeout_ms
        self.group_instance_id = group_instance_id
        self.server_assignor = server_assignor
        self.member_id = str(uuid.uuid4())  # v1: the member names itself (KIP-1082)
        self.member_epoch = 0
        self.subscription: list[str] | None = None
        self.pattern = None
        self.listener = None
        self.target: set[TopicPartition] | None = None
        self.heartbeat_interval_s = 0.5
        self._coordinator: int | None = None
        self._wake = anyio.Event()
        self._report_owned = True
        self._lost = False

    # the classic member's names, for the consumer
    @property
    def generation_id(self) -> int:
        return self.member_epoch

    @property
    def stable(self) -> bool:
        return self.member_epoch > 0 and self.target is not None and self.target == self._owned()

    def _owned(self) -> set[TopicPartition]:
        return set(self.consumer._states)

    def set_subscription(self, topics, pattern, listener) -> None:
        if not topics and pattern is None:
            self.subscription = None
            self.pattern = None
            return
        self.subscription = sorted(set(topics or ()))
        self.pattern = pattern
        self.listener = listener
        self._report_owned = True
        self._wake.set()

    def request_rejoin(self) -> None:
        self._wake.set()

    # -- the caller's side: reconcile in poll ------------------------------------------------
    async def ensure_active(self, deadline: float) -> None:
        if self.subscription is None:
            return
        if self._lost:
            self._lost = False
            owned = self._owned()
            if owned:
                await _call(self.listener, "on_partitions_lost" if hasattr(self.listener, "on_partitions_lost")
                            else "on_partitions_revoked", owned)
                self.consumer._remove_partitions(owned)
        limit = deadline + self.rebalance_timeout_ms / 1000
        while self.target is None:
            if time.monotonic() > limit:
                raise KafkaTimeoutError(f"group {self.group_id}: no assignment")
            with anyio.move_on_after(max(0.0, min(0.1, deadline - time.monotonic()) or 0.05)):
                await self.consumer._data.wait()
            if time.monotonic() > deadline:
                return
        target = set(self.target)
        owned = self._owned()
        revoked, added = owned - target, target - owned
        if revoked:
            await revoke(self.consumer, self.listener, revoked)
        if added:
            self.consumer._add_partitions(added)
            await _call(self.listener, "on_partitions_assigned", added)
        if revoked or added:
            self._report_owned = True
            self._wake.set()

    # -- the heartbeat task ------------------------------------------------------------------
    async def heartbeat_loop(self) -> None:
        while True:
            if self.subscription is None:
                await self._sleep(0.2)
                continue
            try:
                await self._heartbeat()
            except Exception:  # never let the heartbeat take the consumer down
                log.exception("group %s: heartbeat failed", self.group_id)
            await self._sleep(self.heartbeat_interval_s)

    async def _sleep(self, seconds: float) -> None:
        with anyio.move_on_after(seconds):
            await self._wake.wait()
        if self._wake.is_set():
            self._wake = anyio.Event()

    async def _names(self, assignment) -> set[TopicPartition] | None:
        ids = {v: k for k, v in self.cluster.topic_ids.items()}
        if any(t.topic_id not in ids for t in assignment.topic_partitions):
            await self.cluster.refresh(self.subscription or None)
            ids = {v: k for k, v in self.cluster.topic_ids.items()}
        out = set()
        for t in assignment.topic_partitions:
            name = ids.get(t.topic_id)
            if name is None:
                return None  # not in our metadata yet: take it on a later heartbeat
            out.update(TopicPartition(name, p) for p in t.partitions)
        return out

    async def _heartbeat(self) -> None:
        if self._coordinator is None:
            try:
                self._coordinator = await self.cluster.coordinator(self.group_id)
            except KafkaError as exc:
                log.debug("group %s: no coordinator yet: %s", self.group_id, exc)
                return
        owned = None
        if self._report_owned or self.member_epoch == 0:
            if self.member_epoch > 0:
                ids = self.cluster.topic_ids
                by_topic: dict[str, list[int]] = {}
                for tp in self._owned():
                    by_topic.setdefault(tp.topic, []).append(tp.partition)
                owned = [TopicPartitions(topic_id=ids[t], partitions=sorted(ps)) for t, ps in by_topic.items()
                         if t in ids]
            else:
                owned = []
        joining = self.member_epoch == 0

        def body(version):
            return ConsumerGroupHeartbeatRequest(
                group_id=self.group_id, member_id=self.member_id, member_epoch=self.member_epoch,
                instance_id=self.group_instance_id, rack_id=None,
                rebalance_timeout_ms=self.rebalance_timeout_ms if joining else -1,
                subscribed_topic_names=(self.subscription if self.pattern is None else None)
                if joining or self._report_owned else None,
                subscribed_topic_regex=(self.pattern.pattern if self.pattern is not None else None)
                if version >= 1 and (joining or self._report_owned) else None,
                server_assignor=self.server_assignor if joining else None,
                topic_partitions=owned)

        try:
            resp = await self.cluster.send(self._coordinator, ApiKey.CONSUMER_GROUP_HEARTBEAT, body,
                                           HEARTBEAT_MAX_VERSION)
            code = resp.error_code
        except KafkaError as exc:
            code, resp = (exc.code if exc.code in _COORDINATOR_GONE else ErrorCode.COORDINATOR_NOT_AVAILABLE), None
        if code in _LOST:
            self.member_epoch, self.target, self._lost = 0, None, True
            self.consumer._data.set()
            return
        if code in _COORDINATOR_GONE:
            self._coordinator = None
            return
        if code:
            err = error_for(code, resp.error_message if resp is not None else None)
            log.warning("group %s heartbeat: %s", self.group_id, err)
            self.consumer._fetch_error = err
            self.consumer._data.set()
            return
        self._report_owned = False
        if resp.member_id:
            self.member_id = resp.member_id
        self.member_epoch = resp.member_epoch
        if resp.heartbeat_interval_ms > 0:
            self.heartbeat_interval_s = resp.heartbeat_interval_ms / 1000
        if resp.assignment is not None:
            target = await self._names(resp.assignment)
            if target is not None:
                self.target = target
                self.consumer._data.set()
            else:
                self._report_owned = True

    async def leave(self) -> None:
        if self.subscription is None or self.member_epoch <= 0 or self._coordinator is None:
            return
        epoch = -2 if self.group_instance_id is not None else -1
        body = ConsumerGroupHeartbeatRequest(group_id=self.group_id, member_id=self.member_id, member_epoch=epoch,
                                             instance_id=self.group_instance_id)
        try:
            await self.cluster.send(self._coordinator, ApiKey.CONSUMER_GROUP_HEARTBEAT, body, HEARTBEAT_MAX_VERSION)
        except KafkaError as exc:
            log.debug("leave group failed: %s", exc)
        finally:
            self.member_epoch = 0

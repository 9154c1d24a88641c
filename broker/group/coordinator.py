"""The classic group coordinator as a pure state machine: requests in, responses out.

Theory of operation
-------------------
``GroupCoordinator`` owns every classic group and every committed offset of this broker.
It follows Kafka's group coordinator (``GroupMetadataManager`` / ``OffsetMetadataManager``
for classic groups) decision for decision, so real clients see the behaviour they were
written against, but it does no I/O and reads no clock:

* **Time is a parameter.** Every public call takes ``now_ms`` and first fires the timers
  that are due (session expiry, join-phase and sync-phase timeouts, the initial rebalance
  delay, the offset-retention sweep), so "what happens at time T" is deterministic. The
  owner asks ``next_deadline_ms()`` and calls ``poll(now_ms)`` when it comes.
* **Parked requests are waiters.** JoinGroup and SyncGroup may have to wait for other
  members; they return a ``Waiter`` that the coordinator completes exactly once, maybe
  immediately, maybe during a later call. Requests that only wait for a write (offset
  commits, group deletion) return one too.
* **Writes go through an outbox.** Durable facts (committed offsets, group metadata after a
  rebalance, tombstones) are queued as ``Write`` objects, in order, per
  ``__consumer_offsets`` partition. The owner appends them to the log in that order and
  reports each outcome with ``write_done(write, error)``. Only then are offsets applied to
  the in-memory table (by replaying the written facts, exactly as loading does at
  startup), and only then does a SyncGroup leader's assignment take effect, as in Kafka:
  a commit's answer never promises something a crash could take back (``Write.durable``
  tells the owner which writes need an fsync first). Group membership itself lives in
  memory; its records only let a restarted broker resume the last generation.
* **Loading is replay.** ``replay(key, value)`` for every record of ``__consumer_offsets``
  in log order, then ``finish_load(now_ms)``; the owner answers
  COORDINATOR_LOAD_IN_PROGRESS meanwhile.

KIP-848 consumer groups (ConsumerGroupHeartbeat) are decided by ``consumer_group.py``;
this coordinator owns the boundary: a group id is either classic or consumer, consumer
groups share its timer and its committed offsets, and OffsetCommit, ListGroups,
DeleteGroups and OffsetDelete treat them as Kafka does.

Version-dependent behaviour is passed in as plain flags (``require_known_member_id`` for
JoinGroup v4+, ``supports_skip_assignment`` for v9+, ``api_version`` for OffsetCommit's
GROUP_ID_NOT_FOUND from v9); the handlers translate wire structs to these calls.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from kafkito.protocol import ErrorCode

from .consumer_group import ConsumerGroup, ConsumerGroupConfig, ConsumerGroupCoordinator, HeartbeatResult
from .records import (
    GroupMetadataKey,
    GroupMetadataValue,
    MemberMetadata,
    OffsetCommitKey,
    OffsetCommitValue,
    RecordFormatError,
    decode_record,
    encode_group_metadata,
    encode_group_tombstone,
    encode_offset_commit,
    encode_offset_tombstone,
)
from .state import CONSUMER_PROTOCOL_TYPE, ClassicGroup, GroupMember, GroupState, Waiter
from .timers import DeadlineTimer

log = logging.getLogger("kafkito.broker.group")

__all__ = [
    "DescribedGroup",
    "DescribedMember",
    "FetchedOffset",
    "GroupConfig",
    "GroupCoordinator",
    "JoinResult",
    "JoinedMember",
    "LeaveResult",
    "ListedGroup",
    "OffsetCommitEntry",
    "SyncResult",
    "Write",
    "partition_for",
]

E = ErrorCode
S = GroupState
Fact = tuple[OffsetCommitKey | GroupMetadataKey, OffsetCommitValue | GroupMetadataValue | None]
# Authorized operations of a group when nothing is denied (no ACLs): READ, DELETE, DESCRIBE.
GROUP_AUTHORIZED_OPERATIONS = (1 << 3) | (1 << 6) | (1 << 8)


@dataclass(frozen=True)
class GroupConfig:
    """The broker settings the coordinator honours (Kafka names in snake_case)."""

    group_initial_rebalance_delay_ms: int = 0
    group_min_session_timeout_ms: int = 6000
    group_max_session_timeout_ms: int = 1_800_000
    group_max_size: int = 2**31 - 1
    # Kafka's internal limit on how long a new member's first JoinGroup may stay parked.
    group_new_member_join_timeout_ms: int = 300_000
    offsets_retention_ms: int = 7 * 24 * 3600 * 1000
    offsets_retention_check_interval_ms: int = 600_000
    offset_metadata_max_bytes: int = 4096
    offsets_topic_num_partitions: int = 1
    # KIP-848 consumer groups (consumer_group.py); kafkito's defaults, see there.
    group_consumer_session_timeout_ms: int = ConsumerGroupConfig.group_consumer_session_timeout_ms
    group_consumer_heartbeat_interval_ms: int = ConsumerGroupConfig.group_consumer_heartbeat_interval_ms

    @classmethod
    def from_broker_config(cls, cfg) -> GroupConfig:
        """Read the group settings from a BrokerConfig (attributes in snake_case)."""
        return cls(
            group_initial_rebalance_delay_ms=cfg.group_initial_rebalance_delay_ms,
            group_min_session_timeout_ms=cfg.group_min_session_timeout_ms,
            group_max_session_timeout_ms=cfg.group_max_session_timeout_ms,
            group_max_size=cfg.group_max_size,
            offsets_retention_ms=cfg.offsets_retention_minutes * 60_000,
            offsets_retention_check_interval_ms=cfg.offsets_retention_check_interval_ms,
            offset_metadata_max_bytes=cfg.offset_metadata_max_bytes,
            offsets_topic_num_partitions=cfg.offsets_topic_num_partitions,
            group_consumer_session_timeout_ms=cfg.group_consumer_session_timeout_ms,
            group_consumer_heartbeat_interval_ms=cfg.group_consumer_heartbeat_interval_ms,
        )


# ------------------------------------------------------------------------ results
@dataclass(frozen=True, slots=True)
class JoinedMember:
    member_id: str
    group_instance_id: str | None
    metadata: bytes


@dataclass(frozen=True, slots=True)
class JoinResult:
    error: ErrorCode
    member_id: str = ""
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    members: tuple[JoinedMember, ...] = ()
    skip_assignment: bool = False


@dataclass(frozen=True, slots=True)
class SyncResult:
    error: ErrorCode
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignment: bytes = b""


@dataclass(frozen=True, slots=True)
class LeaveResult:
    error: ErrorCode
    members: tuple[tuple[str, str | None, ErrorCode], ...] = ()  # (member id, instance id, error)


@dataclass(frozen=True, slots=True)
class OffsetCommitEntry:
    partition: int
    offset: int
    leader_epoch: int = -1
    metadata: str | None = None
    commit_timestamp_ms: int = -1  # OffsetCommit v1 only; -1: now


@dataclass(frozen=True, slots=True)
class FetchedOffset:
    partition: int
    offset: int = -1
    leader_epoch: int = -1
    metadata: str = ""
    error: ErrorCode = E.NONE


@dataclass(frozen=True, slots=True)
class DescribedMember:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True)
class DescribedGroup:
    group_id: str
    error: ErrorCode = E.NONE
    state: str = "Dead"
    protocol_type: str = ""
    protocol_data: str = ""
    members: tuple[DescribedMember, ...] = ()


@dataclass(frozen=True, slots=True)
class ListedGroup:
    group_id: str
    protocol_type: str
    state: str
    group_type: str = "classic"


# ------------------------------------------------------------------------ writes
@dataclass(eq=False)
class Write:
    """Facts to append to one ``__consumer_offsets`` partition, in order."""

    partition: int
    facts: list[Fact]
    on_done: Callable[[ErrorCode], None] | None = None

    @property
    def durable(self) -> bool:
        """Must the write be fsynced before it counts? Offsets and tombstones: yes, their
        answers promise them. A group's membership record: no; losing it in a crash only
        means a rebalance from the previous generation, and members wait on it in
        SyncGroup (some clients mishandle a slow SyncGroup)."""
        return any(not isinstance(k, GroupMetadataKey) or v is None for k, v in self.facts)

    def records(self) -> list[tuple[bytes, bytes | None]]:
        """(key, value) byte pairs; a None value is a tombstone."""
        out: list[tuple[bytes, bytes | None]] = []
        for key, value in self.facts:
            if isinstance(key, OffsetCommitKey):
                out.append(encode_offset_tombstone(key) if value is None
                           else encode_offset_commit(key, value))  # type: ignore[arg-type]
            else:
                out.append(encode_group_tombstone(key) if value is None
                           else encode_group_metadata(key, value))  # type: ignore[arg-type]
        return out


def partition_for(group_id: str, num_partitions: int) -> int:
    """Kafka's placement of a group: ``Utils.abs(groupId.hashCode()) % partitions``.

    Java's ``String.hashCode`` runs over UTF-16 code units with int32 overflow; matching it
    keeps a data directory's group-to-partition layout identical to Kafka's."""
    h = 0
    units = group_id.encode("utf-16-be")
    for i in range(0, len(units), 2):
        h = (31 * h + ((units[i] << 8) | units[i + 1])) & 0xFFFFFFFF
    if h >= 0x80000000:
        h -= 1 << 32
    h = 0 if h == -(1 << 31) else abs(h)
    return h % num_partitions


def _write_error_to_response(error: ErrorCode) -> ErrorCode:
    """How a failed append reads to a group client (Kafka's mapping for group writes)."""
    if error in (E.UNKNOWN_TOPIC_OR_PARTITION, E.NOT_ENOUGH_REPLICAS, E.REQUEST_TIMED_OUT):
        return E.COORDINATOR_NOT_AVAILABLE
    if error in (E.NOT_LEADER_OR_FOLLOWER, E.KAFKA_STORAGE_ERROR):
        return E.NOT_COORDINATOR
    if error in (E.MESSAGE_TOO_LARGE, E.RECORD_LIST_TOO_LARGE):
        return E.UNKNOWN_SERVER_ERROR
    return error


def _commit_error_to_response(error: ErrorCode) -> ErrorCode:
    if error in (E.MESSAGE_TOO_LARGE, E.RECORD_LIST_TOO_LARGE):
        return E.INVALID_COMMIT_OFFSET_SIZE
    return _write_error_to_response(error)


def _timed(op):
    """Run due timers before the operation and again after it, so after any call every
    deadline <= now_ms has fired (an operation may arm a zero-delay timer, e.g. the
    initial rebalance with group.initial.rebalance.delay.ms=0)."""

    @functools.wraps(op)
    def wrapper(self, *args, now_ms: int, **kwargs):
        self.poll(now_ms)
        try:
            return op(self, *args, now_ms=now_ms, **kwargs)
        finally:
            self.poll(now_ms)

    return wrapper


class _ValidationError(Exception):
    def __init__(self, error: ErrorCode) -> None:
        self.error = error


# ------------------------------------------------------------------------ coordinator
class GroupCoordinator:
    def __init__(self, config: GroupConfig | None = None, *,
                 new_member_suffix: Callable[[], str] = lambda: str(uuid.uuid4())) -> None:
        self.config = config or GroupConfig()
        self._new_member_suffix = new_member_suffix
        self.groups: dict[str, ClassicGroup] = {}
        # group -> (topic, partition) -> committed offset: exactly the written facts.
        self.offsets: dict[str, dict[tuple[str, int], OffsetCommitValue]] = {}
        # Offsets queued for writing but not written yet: deleting a group or an offset must
        # tombstone these too, or a commit racing the delete would outlive it.
        self._pending_offsets: dict[str, dict[tuple[str, int], int]] = {}
        self.timer = DeadlineTimer()
        self.outbox: list[Write] = []
        self.now_ms = 0
        self._loaded_metadata: dict[str, GroupMetadataValue | None] = {}
        # KIP-848 groups share the timer and the offsets; a group id is in one or the other.
        self.consumer = ConsumerGroupCoordinator(
            ConsumerGroupConfig(self.config.group_consumer_session_timeout_ms,
                                self.config.group_consumer_heartbeat_interval_ms,
                                self.config.group_max_size),
            self.timer, new_member_id=new_member_suffix, on_group_empty=self._consumer_group_emptied)

    # ============================================================ time and writes
    def poll(self, now_ms: int) -> None:
        """Fire every timer due at ``now_ms``, in deadline order."""
        self.now_ms = max(self.now_ms, now_ms)
        while (action := self.timer.pop_due(self.now_ms)) is not None:
            action()

    def next_deadline_ms(self) -> int | None:
        return self.timer.next_deadline_ms()

    def take_writes(self) -> list[Write]:
        out, self.outbox = self.outbox, []
        return out

    def write_done(self, write: Write, error: ErrorCode = E.NONE) -> None:
        """The owner appended ``write`` (error NONE) or failed to."""
        for key, value in write.facts:
            if isinstance(key, OffsetCommitKey):
                if value is not None:
                    self._pending_offset(key, -1)
                if error == E.NONE:
                    self._apply_offset(key, value)  # type: ignore[arg-type]
        if write.on_done is not None:
            write.on_done(error)

    def _write(self, facts_by_group: list[tuple[str, Fact]],
               on_done: Callable[[ErrorCode], None] | None = None) -> None:
        """Queue facts (split per partition); ``on_done`` once all are written, with the
        first error seen."""
        n = self.config.offsets_topic_num_partitions
        per_partition: dict[int, list[Fact]] = {}
        for group_id, fact in facts_by_group:
            per_partition.setdefault(partition_for(group_id, n), []).append(fact)
        if not per_partition:
            if on_done is not None:
                on_done(E.NONE)
            return
        remaining = [len(per_partition)]
        first_error = [E.NONE]

        def one_done(error: ErrorCode) -> None:
            if error != E.NONE and first_error[0] == E.NONE:
                first_error[0] = error
            remaining[0] -= 1
            if remaining[0] == 0 and on_done is not None:
                on_done(first_error[0])

        for partition, facts in per_partition.items():
            for key, value in facts:
                if isinstance(key, OffsetCommitKey) and value is not None:
                    self._pending_offset(key, +1)
            self.outbox.append(Write(partition, facts, one_done))

    def _pending_offset(self, key: OffsetCommitKey, delta: int) -> None:
        tps = self._pending_offsets.setdefault(key.group, {})
        tp = (key.topic, key.partition)
        n = tps.get(tp, 0) + delta
        if n > 0:
            tps[tp] = n
        else:
            tps.pop(tp, None)
            if not tps:
                del self._pending_offsets[key.group]

    def _has_offset(self, group_id: str, topic: str, partition: int) -> bool:
        """Committed, or queued to be."""
        tp = (topic, partition)
        return tp in self.offsets.get(group_id, {}) or tp in self._pending_offsets.get(group_id, {})

    def _apply_offset(self, key: OffsetCommitKey, value: OffsetCommitValue | None) -> None:
        tps = self.offsets.get(key.group)
        if value is None:
            if tps is not None:
                tps.pop((key.topic, key.partition), None)
                if not tps:
                    del self.offsets[key.group]
        else:
            if tps is None:
                tps = self.offsets[key.group] = {}
            tps[(key.topic, key.partition)] = value

    # ============================================================ loading
    def replay(self, raw_key: bytes | memoryview | None, raw_value: bytes | memoryview | None) -> None:
        """Apply one ``__consumer_offsets`` record, in log order (startup only)."""
        try:
            decoded = decode_record(raw_key, raw_value)
        except RecordFormatError as exc:
            log.warning("skipping an undecodable __consumer_offsets record: %s", exc)
            return
        if decoded is None:
            return
        key, value = decoded
        if isinstance(key, OffsetCommitKey):
            self._apply_offset(key, value)  # type: ignore[arg-type]
        else:
            self._loaded_metadata[key.group] = value  # type: ignore[assignment]

    def finish_load(self, now_ms: int) -> None:
        """Build groups from the replayed records and arm their timers."""
        self.now_ms = max(self.now_ms, now_ms)
        for group_id, value in self._loaded_metadata.items():
            if value is None:
                self.groups.pop(group_id, None)
                continue
            group = ClassicGroup(
                group_id, now_ms=now_ms,
                state=S.STABLE if value.members else S.EMPTY,
                generation_id=value.generation,
                protocol_type=value.protocol_type or None,
                protocol_name=value.protocol,
                leader_id=value.leader if value.members else None,
                state_timestamp_ms=(value.current_state_timestamp_ms
                                    if value.current_state_timestamp_ms >= 0 else None),
            )
            for m in value.members:
                member = GroupMember(
                    m.member_id, m.group_instance_id, m.client_id, m.client_host,
                    m.rebalance_timeout_ms, m.session_timeout_ms, value.protocol_type,
                    [(value.protocol or "", m.subscription)], m.assignment,
                )
                group.add(member)
            if group.members and group.leader_id not in group.members:
                group.leader_id = next(iter(group.members))
            group.subscribed_topics = group.compute_subscribed_topics()
            self.groups[group_id] = group
            for member in group.members.values():
                self._reschedule_heartbeat(group, member)
        self._loaded_metadata.clear()
        for group_id in self.offsets:
            if group_id not in self.groups:
                # Offsets without group metadata: a "simple" group (commits only).
                self.groups[group_id] = ClassicGroup(group_id, now_ms=now_ms)
        self._schedule_retention_sweep()

    # ============================================================ JoinGroup
    @_timed
    def join_group(
        self,
        *,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        protocol_type: str,
        protocols: list[tuple[str, bytes]],
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        client_id: str,
        client_host: str,
        require_known_member_id: bool,
        supports_skip_assignment: bool = False,
        now_ms: int,
    ) -> Waiter[JoinResult]:
        waiter: Waiter[JoinResult] = Waiter()
        cfg = self.config
        if not group_id:
            waiter.complete(JoinResult(E.INVALID_GROUP_ID, member_id))
            return waiter
        if not cfg.group_min_session_timeout_ms <= session_timeout_ms <= cfg.group_max_session_timeout_ms:
            waiter.complete(JoinResult(E.INVALID_SESSION_TIMEOUT, member_id))
            return waiter
        if rebalance_timeout_ms < 0:  # JoinGroup v0 has none: the session timeout serves
            rebalance_timeout_ms = session_timeout_ms
        protocols = [(name, bytes(meta)) for name, meta in protocols]
        req = _JoinRequest(member_id, group_instance_id, protocol_type, protocols,
                           session_timeout_ms, rebalance_timeout_ms, client_id, client_host,
                           require_known_member_id, supports_skip_assignment)
        if group_id in self.consumer.groups:
            # Kafka would migrate a classic member into it (KIP-848 online upgrade): not served.
            waiter.complete(JoinResult(E.INCONSISTENT_GROUP_PROTOCOL, member_id))
            return waiter
        unknown = member_id == ""
        group = self.groups.get(group_id)
        if group is None:
            if not unknown:
                waiter.complete(JoinResult(E.UNKNOWN_MEMBER_ID, member_id))
                return waiter
            group = self.groups[group_id] = ClassicGroup(group_id, now_ms=self.now_ms)
        if not self._accept_joining_member(group, member_id):
            if group.has_member(member_id):
                self._remove_member(group, group.member(member_id), E.GROUP_MAX_SIZE_REACHED)
            waiter.complete(JoinResult(E.GROUP_MAX_SIZE_REACHED, ""))
        elif unknown:
            self._join_new_member(group, req, waiter)
        else:
            self._join_existing_member(group, req, waiter)
        return waiter

    def _accept_joining_member(self, group: ClassicGroup, member_id: str) -> bool:
        max_size = self.config.group_max_size
        if group.is_in(S.EMPTY, S.DEAD):
            return True
        if group.is_in(S.PREPARING_REBALANCE):
            # Count who is parked, not who is a member: members that do not rejoin are
            # about to go, and an already-parked member must not be refused.
            return ((group.has_member(member_id) and group.member(member_id).is_awaiting_join)
                    or group.num_awaiting_join() < max_size)
        return group.has_member(member_id) or len(group.members) < max_size

    def _join_new_member(self, group: ClassicGroup, req: _JoinRequest, waiter: Waiter[JoinResult]) -> None:
        if group.is_in(S.DEAD):
            waiter.complete(JoinResult(E.COORDINATOR_NOT_AVAILABLE, ""))
            return
        if not group.supports_protocols(req.protocol_type, [n for n, _ in req.protocols]):
            waiter.complete(JoinResult(E.INCONSISTENT_GROUP_PROTOCOL, ""))
            return
        prefix = req.group_instance_id if req.group_instance_id is not None else req.client_id
        new_member_id = f"{prefix}-{self._new_member_suffix()}"
        if req.group_instance_id is not None:
            existing = group.static_member_id(req.group_instance_id)
            if existing is not None:
                self._update_static_member(group, req, existing, new_member_id, waiter)
            else:
                self._add_member_then_rebalance(group, req, new_member_id, waiter)
        elif req.require_known_member_id:
            # KIP-394: hand out the id first, so a client that times out and retries
            # rejoins under the same id instead of leaving a ghost member behind.
            group.pending_join_members.add(new_member_id)
            self.timer.schedule(("heartbeat", group.group_id, new_member_id),
                                self.now_ms + req.session_timeout_ms,
                                lambda: self._expire_heartbeat(group.group_id, new_member_id))
            waiter.complete(JoinResult(E.MEMBER_ID_REQUIRED, new_member_id))
        else:
            self._add_member_then_rebalance(group, req, new_member_id, waiter)

    def _join_existing_member(self, group: ClassicGroup, req: _JoinRequest,
                              waiter: Waiter[JoinResult]) -> None:
        member_id = req.member_id
        if group.is_in(S.DEAD):
            waiter.complete(JoinResult(E.COORDINATOR_NOT_AVAILABLE, member_id))
            return
        if not group.supports_protocols(req.protocol_type, [n for n, _ in req.protocols]):
            waiter.complete(JoinResult(E.INCONSISTENT_GROUP_PROTOCOL, member_id))
            return
        if member_id in group.pending_join_members:
            if req.group_instance_id is not None:
                # Pending ids are only handed to dynamic members; a static member never
                # owns one, so this is a confused client.
                waiter.complete(JoinResult(E.UNKNOWN_MEMBER_ID, member_id))
                return
            self._add_member_then_rebalance(group, req, member_id, waiter)
            return
        error = self._validate_member(group, member_id, req.group_instance_id)
        if error != E.NONE:
            waiter.complete(JoinResult(error, member_id))
            return
        member = group.member(member_id)
        if group.is_in(S.PREPARING_REBALANCE):
            self._update_member_then_rebalance(group, member, req, waiter)
        elif group.is_in(S.COMPLETING_REBALANCE):
            if member.matches(req.protocols):
                # Same metadata: the member probably lost our JoinGroup response; repeat it.
                waiter.complete(self._join_response(group, member_id, with_members=group.is_leader(member_id)))
            else:
                self._update_member_then_rebalance(group, member, req, waiter)
        elif group.is_in(S.STABLE):
            if group.is_leader(member_id) or not member.matches(req.protocols):
                # A leader rejoins to make us rebalance (e.g. topic metadata changed).
                self._update_member_then_rebalance(group, member, req, waiter)
            else:
                waiter.complete(self._join_response(group, member_id, with_members=False))
        else:
            waiter.complete(JoinResult(E.UNKNOWN_MEMBER_ID, member_id))

    def _join_response(self, group: ClassicGroup, member_id: str, *, with_members: bool,
                       leader: str | None = None, skip_assignment: bool = False) -> JoinResult:
        members: tuple[JoinedMember, ...] = ()
        if with_members:
            members = tuple(
                JoinedMember(m.member_id, m.group_instance_id, m.metadata(group.protocol_name))
                for m in group.members.values()
            )
        return JoinResult(
            E.NONE, member_id, group.generation_id, group.protocol_type, group.protocol_name,
            group.leader_id or "" if leader is None else leader, members, skip_assignment,
        )

    def _set_join_waiter(self, member: GroupMember, waiter: Waiter[JoinResult] | None) -> None:
        old = member.join_waiter
        if old is not None and old is not waiter:
            # A client retried JoinGroup while its first one was parked: the first one
            # gets an answer too, or its connection would wait for it forever.
            old.complete(JoinResult(E.REBALANCE_IN_PROGRESS, member.member_id))
        member.join_waiter = waiter

    def _update_member_then_rebalance(self, group: ClassicGroup, member: GroupMember,
                                      req: _JoinRequest, waiter: Waiter[JoinResult]) -> None:
        self._set_join_waiter(member, waiter)
        group.update_member(member, req.protocols, req.rebalance_timeout_ms,
                            req.session_timeout_ms, waiter)
        self._maybe_prepare_rebalance_or_complete_join(group, f"member {member.member_id} rejoins")

    def _add_member_then_rebalance(self, group: ClassicGroup, req: _JoinRequest, member_id: str,
                                   waiter: Waiter[JoinResult]) -> None:
        member = GroupMember(
            member_id, req.group_instance_id, req.client_id, req.client_host,
            req.rebalance_timeout_ms, req.session_timeout_ms, req.protocol_type,
            req.protocols, is_new=True,
        )
        if group.is_in(S.PREPARING_REBALANCE) and group.previous_state is S.EMPTY:
            group.new_member_added = True  # stretch the initial rebalance delay
        group.add(member, waiter)
        # A new member cannot heartbeat while parked and we cannot see it disconnect, so
        # its first JoinGroup gets a long but finite deadline; a live client retries.
        self._reschedule_heartbeat(group, member, self.config.group_new_member_join_timeout_ms)
        self._maybe_prepare_rebalance_or_complete_join(group, f"new member {member_id} joins")

    def _update_static_member(self, group: ClassicGroup, req: _JoinRequest, old_member_id: str,
                              new_member_id: str, waiter: Waiter[JoinResult]) -> None:
        """A known group.instance.id joins with no member id: a restarted static member."""
        instance_id = req.group_instance_id
        assert instance_id is not None
        current_leader = group.leader_id or ""
        self.timer.cancel(("heartbeat", group.group_id, old_member_id))
        new = group.replace_static_member(instance_id, old_member_id, new_member_id, self._fence)
        self._reschedule_heartbeat(group, new)
        old_protocols = list(new.protocols)
        old_rebalance_timeout_ms, old_session_timeout_ms = new.rebalance_timeout_ms, new.session_timeout_ms
        group.update_member(new, req.protocols, req.rebalance_timeout_ms, req.session_timeout_ms, waiter)

        if group.is_in(S.STABLE):
            if group.protocol_name == group.select_protocol():
                # KIP-345: the same instance is back and the group's protocol holds, so keep
                # the generation and its assignment; only persist the new member id.
                group_id, generation = group.group_id, group.generation_id

                def persisted(error: ErrorCode) -> None:
                    w = new.join_waiter
                    if (self.groups.get(group_id) is not group or not group.is_in(S.STABLE)
                            or group.generation_id != generation or w is None
                            or group.members.get(new_member_id) is not new):
                        # Superseded while the write was in flight (fenced again, left,
                        # expired, or a rebalance began and will answer the JoinGroup).
                        return
                    if error != E.NONE:
                        new.join_waiter = None
                        group.update_member(new, old_protocols, old_rebalance_timeout_ms,
                                            old_session_timeout_ms, None)
                        self.timer.cancel(("heartbeat", group_id, new_member_id))
                        back = group.replace_static_member(instance_id, new_member_id, old_member_id,
                                                           lambda _m: None)
                        self._reschedule_heartbeat(group, back)
                        w.complete(JoinResult(_write_error_to_response(error), "", generation,
                                              group.protocol_type, group.protocol_name, current_leader))
                        return
                    new.join_waiter = None
                    if req.supports_skip_assignment:
                        is_leader = group.is_leader(new_member_id)
                        w.complete(self._join_response(group, new_member_id, with_members=is_leader,
                                                       skip_assignment=is_leader))
                    else:
                        # Report the old leader id: a rejoined leader then acts as a
                        # follower and fetches its assignment instead of recomputing it.
                        w.complete(self._join_response(group, new_member_id, with_members=False,
                                                       leader=current_leader))

                self._write([(group.group_id, self._group_metadata_fact(group, group.assignments()))],
                            persisted)
            else:
                self._maybe_prepare_rebalance_or_complete_join(
                    group, f"static member {instance_id} rejoins with a protocol change")
        elif group.is_in(S.COMPLETING_REBALANCE):
            # The leader may already be computing an assignment naming the old member id.
            self._prepare_rebalance(group, f"static member {instance_id} rejoins during sync")
        elif group.is_in(S.PREPARING_REBALANCE):
            self._maybe_complete_join_phase(group)
        else:  # pragma: no cover - a static member exists, so the group is not Empty/Dead
            raise AssertionError(f"static member in group {group.group_id} in state {group.state}")

    def _fence(self, old: GroupMember) -> None:
        """Answer whatever a replaced static member had parked (KIP-345 fencing)."""
        if old.join_waiter is not None:
            w, old.join_waiter = old.join_waiter, None
            w.complete(JoinResult(E.FENCED_INSTANCE_ID, old.member_id))
        if old.sync_waiter is not None:
            w2, old.sync_waiter = old.sync_waiter, None
            w2.complete(SyncResult(E.FENCED_INSTANCE_ID))

    # ============================================================ rebalance mechanics
    def _maybe_prepare_rebalance_or_complete_join(self, group: ClassicGroup, reason: str) -> None:
        if group.can_rebalance():
            self._prepare_rebalance(group, reason)
        else:
            self._maybe_complete_join_phase(group)

    def _maybe_complete_join_phase(self, group: ClassicGroup) -> None:
        if not group.is_in(S.PREPARING_REBALANCE):
            return
        if group.previous_state is S.EMPTY:
            return  # the initial rebalance completes on its delay timer
        if group.has_all_members_joined():
            self._complete_join(group)

    def _prepare_rebalance(self, group: ClassicGroup, reason: str) -> None:
        if group.is_in(S.COMPLETING_REBALANCE):
            self._reset_and_propagate(group, E.REBALANCE_IN_PROGRESS)
        self._remove_sync_expiration(group)
        initial = group.is_in(S.EMPTY)
        if initial:
            delay_ms = self.config.group_initial_rebalance_delay_ms
            remaining_ms = max(group.rebalance_timeout_ms() - delay_ms, 0)
            group_id = group.group_id
            self.timer.schedule(("join", group_id), self.now_ms + delay_ms,
                                lambda: self._try_complete_initial_rebalance(group_id, delay_ms, remaining_ms))
        group.transition_to(S.PREPARING_REBALANCE, self.now_ms)
        log.info("group %s: preparing to rebalance (generation %d): %s",
                 group.group_id, group.generation_id, reason)
        if not initial:
            self._maybe_complete_join_else_schedule(group)

    def _maybe_complete_join_else_schedule(self, group: ClassicGroup) -> None:
        if group.has_all_members_joined():
            self._complete_join(group)
        else:
            group_id = group.group_id
            self.timer.schedule(("join", group_id), self.now_ms + group.rebalance_timeout_ms(),
                                lambda: self._complete_join_by_id(group_id))

    def _try_complete_initial_rebalance(self, group_id: str, delay_ms: int, remaining_ms: int) -> None:
        group = self.groups.get(group_id)
        if group is None:
            return
        if group.new_member_added and remaining_ms != 0:
            group.new_member_added = False
            new_delay_ms = min(self.config.group_initial_rebalance_delay_ms, remaining_ms)
            new_remaining_ms = max(remaining_ms - delay_ms, 0)
            self.timer.schedule(("join", group_id), self.now_ms + new_delay_ms,
                                lambda: self._try_complete_initial_rebalance(group_id, new_delay_ms,
                                                                             new_remaining_ms))
        else:
            self._complete_join(group)

    def _complete_join_by_id(self, group_id: str) -> None:
        group = self.groups.get(group_id)
        if group is not None:
            self._complete_join(group)

    def _complete_join(self, group: ClassicGroup) -> None:
        """End the join phase: drop dynamic members that did not rejoin, bump the
        generation, answer every parked JoinGroup and start waiting for SyncGroups."""
        self.timer.cancel(("join", group.group_id))
        if not group.is_in(S.PREPARING_REBALANCE):
            return
        for m in [m for m in group.not_yet_rejoined() if not m.is_static]:
            self.timer.cancel(("heartbeat", group.group_id, m.member_id))
            self._remove_member(group, m, E.UNKNOWN_MEMBER_ID)
        if group.members and not group.maybe_elect_new_joined_leader():
            # Nobody rejoined (only static members are left): wait another rebalance
            # timeout; their sessions expiring will empty the group meanwhile.
            group_id = group.group_id
            self.timer.schedule(("join", group_id), self.now_ms + group.rebalance_timeout_ms(),
                                lambda: self._complete_join_by_id(group_id))
            return
        group.init_next_generation(self.now_ms)
        if group.is_in(S.EMPTY):
            log.info("group %s: generation %d is empty", group.group_id, group.generation_id)
            self._write([(group.group_id, self._group_metadata_fact(group, {}))])
            return
        log.info("group %s: generation %d with %d members, protocol %s, leader %s",
                 group.group_id, group.generation_id, len(group.members), group.protocol_name,
                 group.leader_id)
        for m in group.members.values():
            w, m.join_waiter = m.join_waiter, None
            if w is not None:
                w.complete(self._join_response(group, m.member_id, with_members=group.is_leader(m.member_id)))
            self._reschedule_heartbeat(group, m)
            m.is_new = False
            group.pending_sync_members.add(m.member_id)
        group_id, generation = group.group_id, group.generation_id
        self.timer.schedule(("sync", group_id), self.now_ms + group.rebalance_timeout_ms(),
                            lambda: self._expire_pending_sync(group_id, generation))

    def _expire_pending_sync(self, group_id: str, generation: int) -> None:
        group = self.groups.get(group_id)
        if group is None or group.generation_id != generation:
            return
        if group.is_in(S.COMPLETING_REBALANCE, S.STABLE) and group.pending_sync_members:
            laggards = list(group.pending_sync_members)
            for member_id in laggards:
                self.timer.cancel(("heartbeat", group_id, member_id))
                if group.has_member(member_id):
                    self._remove_member(group, group.member(member_id), E.UNKNOWN_MEMBER_ID)
            self._prepare_rebalance(group, f"members {laggards} did not sync in time")

    def _remove_sync_expiration(self, group: ClassicGroup) -> None:
        group.pending_sync_members.clear()
        self.timer.cancel(("sync", group.group_id))

    def _remove_pending_sync_member(self, group: ClassicGroup, member_id: str) -> None:
        group.pending_sync_members.discard(member_id)
        if not group.is_in(S.COMPLETING_REBALANCE, S.STABLE) or not group.pending_sync_members:
            self.timer.cancel(("sync", group.group_id))

    def _reset_and_propagate(self, group: ClassicGroup, error: ErrorCode) -> None:
        assert group.is_in(S.COMPLETING_REBALANCE)
        for m in group.members.values():
            m.assignment = b""
        self._propagate_assignment(group, error)

    def _set_and_propagate(self, group: ClassicGroup, assignment: dict[str, bytes]) -> None:
        assert group.is_in(S.COMPLETING_REBALANCE)
        for mid, m in group.members.items():
            m.assignment = assignment.get(mid, b"")
        self._propagate_assignment(group, E.NONE)

    def _propagate_assignment(self, group: ClassicGroup, error: ErrorCode) -> None:
        ok = error == E.NONE
        for m in group.members.values():
            if m.sync_waiter is not None:
                w, m.sync_waiter = m.sync_waiter, None
                w.complete(SyncResult(
                    error,
                    group.protocol_type if ok else None,
                    group.protocol_name if ok else None,
                    m.assignment,
                ))
                # Its session was on hold while parked: start it afresh.
                self._reschedule_heartbeat(group, m)

    # ============================================================ membership expiry
    def _reschedule_heartbeat(self, group: ClassicGroup, member: GroupMember,
                              timeout_ms: int | None = None) -> None:
        group_id, member_id = group.group_id, member.member_id
        delay = member.session_timeout_ms if timeout_ms is None else timeout_ms
        self.timer.schedule(("heartbeat", group_id, member_id), self.now_ms + delay,
                            lambda: self._expire_heartbeat(group_id, member_id))

    def _expire_heartbeat(self, group_id: str, member_id: str) -> None:
        group = self.groups.get(group_id)
        if group is None or group.is_in(S.DEAD):
            return
        if member_id in group.pending_join_members:
            log.info("group %s: pending member %s never came back", group_id, member_id)
            group.pending_join_members.discard(member_id)
            if group.is_in(S.PREPARING_REBALANCE) and group.has_all_members_joined():
                self._complete_join(group)
            return
        member = group.members.get(member_id)
        if member is None or member.has_satisfied_heartbeat():
            return
        log.info("group %s: member %s session expired", group_id, member_id)
        self._remove_member(group, member, E.UNKNOWN_MEMBER_ID)
        if group.is_in(S.STABLE, S.COMPLETING_REBALANCE):
            self._maybe_prepare_rebalance_or_complete_join(group, f"member {member_id} expired")
        elif group.is_in(S.PREPARING_REBALANCE) and group.has_all_members_joined():
            self._complete_join(group)

    def _remove_member(self, group: ClassicGroup, member: GroupMember, error: ErrorCode) -> None:
        """Drop a member, answering whatever it had parked (so no request is left hanging)."""
        if member.join_waiter is not None:
            w, member.join_waiter = member.join_waiter, None
            w.complete(JoinResult(error, ""))
        if member.sync_waiter is not None:
            w2, member.sync_waiter = member.sync_waiter, None
            w2.complete(SyncResult(error))
        group.remove(member.member_id)

    def _validate_member(self, group: ClassicGroup, member_id: str, instance_id: str | None) -> ErrorCode:
        if instance_id is not None:
            existing = group.static_member_id(instance_id)
            if existing is None:
                return E.UNKNOWN_MEMBER_ID
            if existing != member_id:
                return E.FENCED_INSTANCE_ID
        if not group.has_member(member_id):
            return E.UNKNOWN_MEMBER_ID
        return E.NONE

    # ============================================================ SyncGroup
    @_timed
    def sync_group(
        self,
        *,
        group_id: str,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
        protocol_type: str | None = None,
        protocol_name: str | None = None,
        assignments: Iterable[tuple[str, bytes]] = (),
        now_ms: int,
    ) -> Waiter[SyncResult]:
        waiter: Waiter[SyncResult] = Waiter()
        if not group_id:
            waiter.complete(SyncResult(E.INVALID_GROUP_ID))
            return waiter
        group = self.groups.get(group_id)
        if group is None or group.is_empty:
            waiter.complete(SyncResult(E.UNKNOWN_MEMBER_ID))
            return waiter
        error = E.NONE
        if group.is_in(S.DEAD):
            error = E.COORDINATOR_NOT_AVAILABLE
        else:
            error = self._validate_member(group, member_id, group_instance_id)
            if error == E.NONE:
                if generation_id != group.generation_id:
                    error = E.ILLEGAL_GENERATION
                elif (_inconsistent(protocol_type, group.protocol_type)
                      or _inconsistent(protocol_name, group.protocol_name)):
                    error = E.INCONSISTENT_GROUP_PROTOCOL
        if error != E.NONE:
            waiter.complete(SyncResult(error))
        elif group.is_in(S.PREPARING_REBALANCE):
            waiter.complete(SyncResult(E.REBALANCE_IN_PROGRESS))
        elif group.is_in(S.COMPLETING_REBALANCE):
            member = group.member(member_id)
            if member.sync_waiter is not None:
                old, member.sync_waiter = member.sync_waiter, None
                old.complete(SyncResult(E.REBALANCE_IN_PROGRESS))
            member.sync_waiter = waiter
            self._remove_pending_sync_member(group, member_id)
            if group.is_leader(member_id):
                given = {mid: bytes(a) for mid, a in assignments}
                assignment = {mid: given.get(mid, b"") for mid in group.members}
                generation = group.generation_id

                def persisted(err: ErrorCode) -> None:
                    # Members may have come or gone while the write was in flight; act only
                    # if this is still the generation the leader assigned.
                    if (self.groups.get(group_id) is group and group.is_in(S.COMPLETING_REBALANCE)
                            and group.generation_id == generation):
                        if err != E.NONE:
                            self._reset_and_propagate(group, _write_error_to_response(err))
                            self._maybe_prepare_rebalance_or_complete_join(
                                group, f"storing the assignment failed: {err.name}")
                        else:
                            self._set_and_propagate(group, assignment)
                            group.transition_to(S.STABLE, self.now_ms)

                self._write([(group_id, self._group_metadata_fact(group, assignment))], persisted)
        else:  # Stable: hand out the assignment in force
            self._remove_pending_sync_member(group, member_id)
            member = group.member(member_id)
            waiter.complete(SyncResult(E.NONE, group.protocol_type, group.protocol_name, member.assignment))
        return waiter

    # ============================================================ Heartbeat
    @_timed
    def heartbeat(self, *, group_id: str, member_id: str, group_instance_id: str | None,
                  generation_id: int, now_ms: int) -> ErrorCode:
        if not group_id:
            return E.INVALID_GROUP_ID
        group = self.groups.get(group_id)
        if group is None:
            return E.UNKNOWN_MEMBER_ID
        if group.is_in(S.DEAD):
            return E.COORDINATOR_NOT_AVAILABLE
        error = self._validate_member(group, member_id, group_instance_id)
        if error != E.NONE:
            return error
        if generation_id != group.generation_id:
            return E.ILLEGAL_GENERATION
        if group.is_in(S.EMPTY):
            return E.UNKNOWN_MEMBER_ID
        self._reschedule_heartbeat(group, group.member(member_id))
        if group.is_in(S.PREPARING_REBALANCE):
            return E.REBALANCE_IN_PROGRESS
        return E.NONE

    # ============================================================ LeaveGroup
    @_timed
    def leave_group(self, *, group_id: str, members: Iterable[tuple[str, str | None]],
                    now_ms: int) -> LeaveResult:
        """``members``: (member id, group instance id) pairs; an empty member id with an
        instance id removes that static member administratively."""
        if not group_id:
            return LeaveResult(E.INVALID_GROUP_ID)
        group = self.groups.get(group_id)
        if group is None:
            return LeaveResult(E.UNKNOWN_MEMBER_ID)
        if group.is_in(S.DEAD):
            return LeaveResult(E.COORDINATOR_NOT_AVAILABLE)
        out: list[tuple[str, str | None, ErrorCode]] = []
        left = False
        for member_id, instance_id in members:
            if member_id == "":
                target = group.static_member_id(instance_id) if instance_id is not None else None
                if target is None:
                    out.append((member_id, instance_id, E.UNKNOWN_MEMBER_ID))
                    continue
            elif member_id in group.pending_join_members:
                group.pending_join_members.discard(member_id)
                self.timer.cancel(("heartbeat", group_id, member_id))
                out.append((member_id, instance_id, E.NONE))
                left = True
                continue
            else:
                error = self._validate_member(group, member_id, instance_id)
                if error != E.NONE:
                    out.append((member_id, instance_id, error))
                    continue
                target = member_id
            self.timer.cancel(("heartbeat", group_id, target))
            log.info("group %s: member %s leaves", group_id, target)
            self._remove_member(group, group.member(target), E.UNKNOWN_MEMBER_ID)
            out.append((member_id, instance_id, E.NONE))
            left = True
        if left:
            if group.is_in(S.STABLE, S.COMPLETING_REBALANCE):
                self._maybe_prepare_rebalance_or_complete_join(group, "members left")
            elif group.is_in(S.PREPARING_REBALANCE):
                self._maybe_complete_join_phase(group)
        return LeaveResult(E.NONE, tuple(out))

    # ============================================================ offsets
    @_timed
    def commit_offsets(
        self,
        *,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        generation_id: int,
        topics: Iterable[tuple[str, Iterable[OffsetCommitEntry]]],
        retention_time_ms: int = -1,
        api_version: int,
        now_ms: int,
    ) -> Waiter[list[tuple[str, list[tuple[int, ErrorCode]]]]]:
        """OffsetCommit: per (topic, [(partition, error)]) once the commit is durable."""
        waiter: Waiter[list[tuple[str, list[tuple[int, ErrorCode]]]]] = Waiter()
        topics = [(t, list(parts)) for t, parts in topics]

        def all_failed(error: ErrorCode) -> list[tuple[str, list[tuple[int, ErrorCode]]]]:
            return [(t, [(p.partition, error) for p in parts]) for t, parts in topics]

        group: ClassicGroup | None = None
        if group_id in self.consumer.groups:
            # OffsetCommit v9+ carries the member epoch in the generation field.
            error = self.consumer.validate_offset_commit(group_id, member_id, generation_id, api_version)
            if error != E.NONE:
                waiter.complete(all_failed(error))
                return waiter
        else:
            try:
                group = self._validate_offset_commit(group_id, member_id, group_instance_id,
                                                     generation_id, api_version)
            except _ValidationError as exc:
                waiter.complete(all_failed(exc.error))
                return waiter
        if group is not None and group.is_in(S.STABLE, S.PREPARING_REBALANCE) and group.has_member(member_id):
            # A commit proves the member alive, as a heartbeat would.
            self._reschedule_heartbeat(group, group.member(member_id))
        expire_ms = -1 if retention_time_ms == -1 else self.now_ms + retention_time_ms
        max_meta = self.config.offset_metadata_max_bytes
        results: list[tuple[str, list[tuple[int, ErrorCode]]]] = []
        facts: list[tuple[str, Fact]] = []
        written: list[tuple[int, int]] = []  # (topic index, partition index) of accepted entries
        for ti, (topic, parts) in enumerate(topics):
            row: list[tuple[int, ErrorCode]] = []
            for p in parts:
                meta = p.metadata if p.metadata is not None else ""
                if len(meta) > max_meta:
                    row.append((p.partition, E.OFFSET_METADATA_TOO_LARGE))
                    continue
                written.append((ti, len(row)))
                row.append((p.partition, E.NONE))
                ts = p.commit_timestamp_ms if p.commit_timestamp_ms != -1 else self.now_ms
                facts.append((group_id, (OffsetCommitKey(group_id, topic, p.partition),
                                         OffsetCommitValue(p.offset, meta, ts, p.leader_epoch, expire_ms))))
            results.append((topic, row))

        def persisted(error: ErrorCode) -> None:
            if error != E.NONE:
                mapped = _commit_error_to_response(error)
                for ti, pi in written:
                    part, _ = results[ti][1][pi]
                    results[ti][1][pi] = (part, mapped)
            waiter.complete(results)

        self._write(facts, persisted)
        return waiter

    def _validate_offset_commit(self, group_id: str, member_id: str, instance_id: str | None,
                                generation_id: int, api_version: int) -> ClassicGroup:
        if not group_id:
            raise _ValidationError(E.INVALID_GROUP_ID)
        group = self.groups.get(group_id)
        if group is None:
            if generation_id < 0:
                # A consumer without group management (or an admin client) commits: a
                # "simple" group springs into existence to hold the offsets.
                group = self.groups[group_id] = ClassicGroup(group_id, now_ms=self.now_ms)
                return group
            raise _ValidationError(E.GROUP_ID_NOT_FOUND if api_version >= 9 else E.ILLEGAL_GENERATION)
        if group.is_in(S.DEAD):
            raise _ValidationError(E.COORDINATOR_NOT_AVAILABLE)
        if generation_id < 0 and group.is_in(S.EMPTY):
            return group
        if generation_id >= 0 or member_id or instance_id is not None:
            error = self._validate_member(group, member_id, instance_id)
            if error != E.NONE:
                raise _ValidationError(error)
            if generation_id != group.generation_id:
                raise _ValidationError(E.ILLEGAL_GENERATION)
        elif not group.is_in(S.EMPTY):
            # No member id and no generation (OffsetCommit v0 style): only for a group
            # nobody is consuming with.
            raise _ValidationError(E.UNKNOWN_MEMBER_ID)
        if group.is_in(S.COMPLETING_REBALANCE):
            raise _ValidationError(E.REBALANCE_IN_PROGRESS)
        return group

    @_timed
    def fetch_offsets(self, *, group_id: str, topics: Iterable[tuple[str, Iterable[int]]] | None,
                      require_stable: bool = False, now_ms: int) -> list[tuple[str, list[FetchedOffset]]]:
        """OffsetFetch for one group: the listed partitions, or every committed one when
        ``topics`` is None. Unknown groups and partitions read as offset -1."""
        committed = self.offsets.get(group_id, {})
        if topics is None:
            by_topic: dict[str, list[FetchedOffset]] = {}
            for (topic, partition), v in sorted(committed.items()):
                by_topic.setdefault(topic, []).append(
                    FetchedOffset(partition, v.offset, v.leader_epoch, v.metadata))
            return list(by_topic.items())
        out = []
        for topic, partitions in topics:
            row = []
            for partition in partitions:
                v = committed.get((topic, partition))
                row.append(FetchedOffset(partition) if v is None
                           else FetchedOffset(partition, v.offset, v.leader_epoch, v.metadata))
            out.append((topic, row))
        return out

    @_timed
    def delete_offsets(self, *, group_id: str, topics: Iterable[tuple[str, Iterable[int]]],
                       now_ms: int) -> Waiter[tuple[ErrorCode, list[tuple[str, list[tuple[int, ErrorCode]]]]]]:
        """OffsetDelete: (group error, per topic [(partition, error)]) once durable."""
        waiter: Waiter[tuple[ErrorCode, list[tuple[str, list[tuple[int, ErrorCode]]]]]] = Waiter()
        topics = [(t, list(ps)) for t, ps in topics]
        group = self.groups.get(group_id) if group_id else None
        if not group_id:
            waiter.complete((E.INVALID_GROUP_ID, []))
            return waiter
        consumer_group = self.consumer.groups.get(group_id)
        if consumer_group is not None:
            group = ClassicGroup(group_id, now_ms=self.now_ms)  # stands in: the checks below
        if group is None or group.is_in(S.DEAD):
            waiter.complete((E.GROUP_ID_NOT_FOUND, []))
            return waiter
        if not group.is_in(S.EMPTY) and group.protocol_type != CONSUMER_PROTOCOL_TYPE:
            # Without a consumer subscription we cannot tell what the members read.
            waiter.complete((E.NON_EMPTY_GROUP, []))
            return waiter
        results: list[tuple[str, list[tuple[int, ErrorCode]]]] = []
        facts: list[tuple[str, Fact]] = []
        for topic, partitions in topics:
            if consumer_group is not None and consumer_group.is_subscribed_to(topic) \
                    or not group.is_empty and group.is_subscribed_to(topic):
                results.append((topic, [(p, E.GROUP_SUBSCRIBED_TO_TOPIC) for p in partitions]))
                continue
            results.append((topic, [(p, E.NONE) for p in partitions]))
            for p in partitions:
                if self._has_offset(group_id, topic, p):
                    facts.append((group_id, (OffsetCommitKey(group_id, topic, p), None)))

        def persisted(error: ErrorCode) -> None:
            waiter.complete((_write_error_to_response(error), results if error == E.NONE else []))

        self._write(facts, persisted)
        return waiter

    # ============================================================ admin
    @_timed
    def list_groups(self, *, states: Iterable[str] = (), types: Iterable[str] = (),
                    now_ms: int) -> list[ListedGroup]:
        states_lc = {s.strip().lower() for s in states}
        types_lc = {t.strip().lower() for t in types}
        out = [] if types_lc and "classic" not in types_lc else [
            ListedGroup(g.group_id, g.protocol_type or "", str(g.state))
            for g in self.groups.values()
            if not states_lc or str(g.state).lower() in states_lc
        ]
        if not types_lc or "consumer" in types_lc:
            out.extend(ListedGroup(g.group_id, CONSUMER_PROTOCOL_TYPE, g.state, "consumer")
                       for g in self.consumer.groups.values()
                       if not states_lc or g.state.lower() in states_lc)
        return out

    @_timed
    def describe_group(self, group_id: str, *, now_ms: int) -> DescribedGroup:
        group = self.groups.get(group_id)
        if group is None:
            return DescribedGroup(group_id)
        stable = group.is_in(S.STABLE)
        members = tuple(
            DescribedMember(
                m.member_id, m.group_instance_id, m.client_id, m.client_host,
                m.metadata(group.protocol_name) if stable else b"",
                m.assignment if stable else b"",
            )
            for m in group.members.values()
        )
        return DescribedGroup(group_id, E.NONE, str(group.state), group.protocol_type or "",
                              group.protocol_name or "" if stable else "", members)

    @_timed
    def delete_groups(self, group_ids: Iterable[str], *, now_ms: int) -> Waiter[list[tuple[str, ErrorCode]]]:
        """DeleteGroups: only groups without members; their offsets go with them."""
        waiter: Waiter[list[tuple[str, ErrorCode]]] = Waiter()
        results: list[tuple[str, ErrorCode]] = []
        facts: list[tuple[str, Fact]] = []
        deleted: list[int] = []
        for group_id in group_ids:
            group = self.groups.get(group_id) if group_id else None
            if not group_id:
                results.append((group_id, E.INVALID_GROUP_ID))
            elif group_id in self.consumer.groups:
                results.append((group_id, E.NON_EMPTY_GROUP))  # a consumer group here has members
            elif group is None or group.is_in(S.DEAD):
                results.append((group_id, E.GROUP_ID_NOT_FOUND))
            elif not group.is_empty:
                results.append((group_id, E.NON_EMPTY_GROUP))
            else:
                facts.extend(self._remove_group(group))
                deleted.append(len(results))
                results.append((group_id, E.NONE))

        def persisted(error: ErrorCode) -> None:
            if error != E.NONE:
                for i in deleted:
                    results[i] = (results[i][0], _write_error_to_response(error))
            waiter.complete(results)

        self._write(facts, persisted)
        return waiter

    def _remove_group(self, group: ClassicGroup) -> list[tuple[str, Fact]]:
        """Mark an Empty group Dead, forget it, and return the tombstones that delete its
        offsets and metadata (offsets first, as Kafka writes them)."""
        group_id = group.group_id
        facts: list[tuple[str, Fact]] = [
            (group_id, (OffsetCommitKey(group_id, topic, partition), None))
            for topic, partition in {**self.offsets.get(group_id, {}),
                                     **self._pending_offsets.get(group_id, {})}
        ]
        facts.append((group_id, (GroupMetadataKey(group_id), None)))
        group.transition_to(S.DEAD, self.now_ms)
        del self.groups[group_id]
        self.timer.cancel(("join", group_id))
        self.timer.cancel(("sync", group_id))
        return facts

    # ============================================================ KIP-848 consumer groups
    @_timed
    def consumer_group_heartbeat(self, *, group_id: str, member_epoch: int, now_ms: int,
                                 **request) -> HeartbeatResult:
        """ConsumerGroupHeartbeat (consumer_group.py decides); here only the boundary with
        classic groups: an Empty classic group (say, one holding only offsets) becomes a
        consumer group on a join, as in Kafka; a classic group with members is not one."""
        classic = self.groups.get(group_id) if group_id else None
        if classic is not None:
            if not classic.is_in(S.EMPTY):
                return HeartbeatResult(E.GROUP_ID_NOT_FOUND, f"Group {group_id} is not a consumer group")
            if member_epoch != 0:
                return HeartbeatResult(E.UNKNOWN_MEMBER_ID, f"Consumer group {group_id} not found.")
        result = self.consumer.heartbeat(group_id=group_id, member_epoch=member_epoch,
                                         now_ms=self.now_ms, **request)
        if classic is not None and group_id in self.consumer.groups:
            del self.groups[group_id]
        return result

    @_timed
    def consumer_group_describe(self, group_id: str, *, now_ms: int) -> ConsumerGroup | str:
        """The consumer group, or why there is none (GROUP_ID_NOT_FOUND's message)."""
        group = self.consumer.groups.get(group_id)
        if group is not None:
            return group
        if group_id in self.groups:
            return f"Group {group_id} is not a consumer group"
        return f"Group {group_id} not found"

    def _consumer_group_emptied(self, group_id: str) -> None:
        """The last member left: keep its offsets as a simple (classic, Empty) group, as a
        restart would (membership is not persisted), so retention and deletion apply."""
        if group_id not in self.groups and (group_id in self.offsets or group_id in self._pending_offsets):
            self.groups[group_id] = ClassicGroup(group_id, now_ms=self.now_ms)

    # ============================================================ offsets retention
    def _schedule_retention_sweep(self) -> None:
        self.timer.schedule(("offsets-retention",),
                            self.now_ms + self.config.offsets_retention_check_interval_ms,
                            self._retention_sweep)

    def start(self, now_ms: int) -> None:
        """Arm the periodic sweep (``finish_load`` does it too)."""
        self.now_ms = max(self.now_ms, now_ms)
        self._schedule_retention_sweep()

    def _retention_sweep(self) -> None:
        """``offsets.retention.minutes``: drop expired offsets; drop empty groups left
        with none (Kafka's cleanupGroupMetadata)."""
        now = self.now_ms
        retention_ms = self.config.offsets_retention_ms
        facts: list[tuple[str, Fact]] = []
        for group_id, group in list(self.groups.items()):
            all_expired = True
            committed = self.offsets.get(group_id, {})
            # Which offsets may expire, and from when they age (Kafka's
            # OffsetExpirationCondition): a simple group's from their commit; an empty
            # group's from when it emptied; a stable consumer group's, for topics it no
            # longer subscribes to, from their commit; any other group's never.
            if group.protocol_type is None:
                base = None
            elif group.is_empty:
                base = group.state_timestamp_ms
            elif group.is_in(S.STABLE) and group.protocol_type == CONSUMER_PROTOCOL_TYPE \
                    and group.subscribed_topics is not None:
                base = None
            else:
                continue
            for (topic, partition), v in committed.items():
                if not group.is_empty and group.is_subscribed_to(topic):
                    all_expired = False
                    continue
                if v.expire_timestamp_ms >= 0:
                    expired = now >= v.expire_timestamp_ms
                else:
                    expired = now - (v.commit_timestamp_ms if base is None else base) >= retention_ms
                if expired:
                    facts.append((group_id, (OffsetCommitKey(group_id, topic, partition), None)))
                else:
                    all_expired = False
            if all_expired and group.is_empty and group_id not in self._pending_offsets:
                facts.extend(f for f in self._remove_group(group) if isinstance(f[1][0], GroupMetadataKey))
        if facts:
            log.info("offsets retention: %d tombstones", len(facts))
            self._write(facts)
        self._schedule_retention_sweep()

    # ============================================================ helpers
    def _group_metadata_fact(self, group: ClassicGroup, assignment: dict[str, bytes]) -> Fact:
        members = tuple(
            MemberMetadata(
                m.member_id, m.group_instance_id, m.client_id, m.client_host,
                m.rebalance_timeout_ms, m.session_timeout_ms,
                m.metadata(group.protocol_name), assignment.get(m.member_id, b""),
            )
            for m in group.members.values()
        ) if group.protocol_name is not None else ()
        value = GroupMetadataValue(
            group.protocol_type or "", group.generation_id, group.protocol_name,
            group.leader_id if members else None, group.state_timestamp_ms, members,
        )
        return GroupMetadataKey(group.group_id), value


@dataclass(frozen=True, slots=True)
class _JoinRequest:
    member_id: str
    group_instance_id: str | None
    protocol_type: str
    protocols: list[tuple[str, bytes]] = field(default_factory=list)
    session_timeout_ms: int = 0
    rebalance_timeout_ms: int = 0
    client_id: str = ""
    client_host: str = ""
    require_known_member_id: bool = True
    supports_skip_assignment: bool = False


def _inconsistent(requested: str | None, current: str | None) -> bool:
    return requested is not None and current is not None and requested != current

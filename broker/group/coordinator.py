"""The group coordinator: one facade over classic groups, KIP-848 groups and offsets.

Theory of operation
-------------------
``GroupCoordinator`` is what the broker (through ``service.GroupService``) calls for every
group request. It decides little itself; it owns what the three parts share and routes
each request to the part that owns the concept:

* ``classic.ClassicGroupCoordinator``: classic groups (JoinGroup, SyncGroup, Heartbeat,
  LeaveGroup, DescribeGroups), Kafka's GroupMetadataManager for classic groups;
* ``consumer_group.ConsumerGroupCoordinator``: KIP-848 groups (ConsumerGroupHeartbeat);
* ``offsets.OffsetStore``: every committed offset (OffsetCommit once a group has said
  the member may, OffsetFetch, OffsetDelete, retention), Kafka's OffsetMetadataManager.

A group id is classic, consumer, or *simple* (it only holds offsets: a consumer that
commits without group management, or a KIP-848 group whose last member left); the facade
settles which, and does the cross-cutting requests (ListGroups, DeleteGroups,
OffsetDelete, the retention sweep) by asking each part.

What the parts share lives here, built from ``coordinator_runtime``:

* **Time is a parameter.** Every public call takes ``now_ms`` and first fires the timers
  that are due (one ``DeadlineTimer`` for sessions, join and sync phases, the initial
  rebalance delay, KIP-848 sessions and revocations, the offset-retention sweep), so "what
  happens at time T" is deterministic. The owner asks ``next_deadline_ms()`` and calls
  ``poll(now_ms)`` when it comes.
* **Writes go through one outbox**, per ``__consumer_offsets`` partition (Kafka's
  placement of the group id, ``partition_for``). The owner appends them in order and
  reports each with ``write_done(write, error)``; only then are offsets applied (the
  offset store replays the written facts, exactly as loading does) and a leader's
  assignment takes effect.
* **Loading is replay.** ``replay(key, value)`` for every record of ``__consumer_offsets``
  in log order, then ``finish_load(now_ms)``; the owner answers
  COORDINATOR_LOAD_IN_PROGRESS meanwhile.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kafkito.protocol import ErrorCode

from ..coordinator_runtime import CoordinatorBase, DeadlineTimer, Outbox, Waiter, Write
from .classic import (
    ClassicGroupCoordinator,
    DescribedGroup,
    DescribedMember,
    JoinedMember,
    JoinResult,
    LeaveResult,
    SyncResult,
    ValidationError,
)
from .consumer_group import ConsumerGroup, ConsumerGroupConfig, ConsumerGroupCoordinator, HeartbeatResult
from .offsets import (
    FetchedOffset,
    OffsetCommitEntry,
    OffsetExpiration,
    OffsetStore,
    TopicResults,
    write_error_to_response,
)
from .records import (
    GroupMetadataKey,
    OffsetCommitKey,
    RecordFormatError,
    decode_record,
    encode_group_metadata,
    encode_group_tombstone,
    encode_offset_commit,
    encode_offset_tombstone,
)
from .state import CONSUMER_PROTOCOL_TYPE, ClassicGroup, GroupState

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


@dataclass(frozen=True, slots=True)
class ListedGroup:
    group_id: str
    protocol_type: str
    state: str
    group_type: str = "classic"


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


class GroupFacts:
    """How the group coordinator's facts become ``__consumer_offsets`` records."""

    @staticmethod
    def encode(fact) -> tuple[bytes, bytes | None]:
        key, value = fact
        if isinstance(key, OffsetCommitKey):
            return encode_offset_tombstone(key) if value is None else encode_offset_commit(key, value)
        return encode_group_tombstone(key) if value is None else encode_group_metadata(key, value)

    @staticmethod
    def is_durable(fact) -> bool:
        """Must the write be fsynced before it counts? Offsets and tombstones: yes, their
        answers promise them. A group's membership record: no; losing it in a crash only
        means a rebalance from the previous generation, and members wait on it in
        SyncGroup (some clients mishandle a slow SyncGroup)."""
        key, value = fact
        return not isinstance(key, GroupMetadataKey) or value is None


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


class GroupCoordinator(CoordinatorBase):
    def __init__(self, config: GroupConfig | None = None, *,
                 new_member_suffix: Callable[[], str] = lambda: str(uuid.uuid4())) -> None:
        self.config = cfg = config or GroupConfig()
        self.now_ms = 0
        self.timer = DeadlineTimer()
        self.outbox = Outbox(GroupFacts(), lambda group_id: partition_for(group_id, cfg.offsets_topic_num_partitions),
                             on_queued=lambda facts: self.offset_store.queued(facts),
                             on_written=lambda facts, error, offset: self.offset_store.written(facts, error, offset))
        self.offset_store = OffsetStore(self.outbox, offset_metadata_max_bytes=cfg.offset_metadata_max_bytes,
                                        offsets_retention_ms=cfg.offsets_retention_ms)
        self.consumer = ConsumerGroupCoordinator(
            ConsumerGroupConfig(cfg.group_consumer_session_timeout_ms, cfg.group_consumer_heartbeat_interval_ms,
                                cfg.group_max_size),
            self.timer, new_member_id=new_member_suffix)
        self.classic = ClassicGroupCoordinator(
            cfg, timer=self.timer, outbox=self.outbox, now_ms=lambda: self.now_ms,
            new_member_suffix=new_member_suffix,
            is_consumer_group=lambda group_id: group_id in self.consumer.groups,
            is_simple_group=self._is_simple_group)

    # ============================================================ views
    @property
    def groups(self) -> dict[str, ClassicGroup]:
        """Every group as a classic one sees it: the classic groups, and each simple group
        as an Empty stand-in. A fresh dict, for looking at (tests, metrics): the classic
        state machine owns ``classic.groups``; a simple group is only its offsets."""
        out = dict(self.classic.groups)
        for group_id in self._simple_group_ids():
            out[group_id] = ClassicGroup(group_id, now_ms=self.now_ms)
        return out

    @property
    def offsets(self) -> dict:
        """group -> (topic, partition) -> committed OffsetCommitValue."""
        return self.offset_store.offsets

    def _is_simple_group(self, group_id: str) -> bool:
        return (group_id not in self.classic.groups and group_id not in self.consumer.groups
                and self.offset_store.has_group(group_id))

    def _simple_group_ids(self) -> list[str]:
        return [g for g in self.offset_store.group_ids() if self._is_simple_group(g)]

    # ============================================================ loading
    def replay(self, raw_key: bytes | memoryview | None, raw_value: bytes | memoryview | None,
               offset: int = -1) -> None:
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
            self.offset_store.replay(key, value, offset)  # type: ignore[arg-type]
        else:
            self.classic.replay(key, value)  # type: ignore[arg-type]

    def replay_transactional(self, partition: int, producer_id: int, raw_key, raw_value,
                             offset: int = -1) -> None:
        """A record of a transactional batch (TxnOffsetCommit's offsets), in log order."""
        try:
            decoded = decode_record(raw_key, raw_value)
        except RecordFormatError as exc:
            log.warning("skipping an undecodable __consumer_offsets record: %s", exc)
            return
        if decoded is not None and isinstance(decoded[0], OffsetCommitKey):
            self.offset_store.replay_transactional(producer_id, decoded[0], decoded[1],  # type: ignore[arg-type]
                                                   offset)

    def replay_marker(self, partition: int, producer_id: int, commit: bool) -> None:
        """A transaction marker, in log order."""
        self.complete_txn(partition, producer_id, commit)

    def finish_load(self, now_ms: int) -> None:
        """Build groups from the replayed records and arm the timers."""
        self.now_ms = max(self.now_ms, now_ms)
        self.classic.finish_load()
        self._schedule_retention_sweep()

    def start(self, now_ms: int) -> None:
        """Arm the periodic sweep (``finish_load`` does it too)."""
        self.now_ms = max(self.now_ms, now_ms)
        self._schedule_retention_sweep()

    # ============================================================ classic groups
    @_timed
    def join_group(self, *, now_ms: int, **request) -> Waiter[JoinResult]:
        """JoinGroup: see ``ClassicGroupCoordinator.join_group``."""
        return self.classic.join_group(**request)

    @_timed
    def sync_group(self, *, now_ms: int, **request) -> Waiter[SyncResult]:
        """SyncGroup: see ``ClassicGroupCoordinator.sync_group``."""
        return self.classic.sync_group(**request)

    @_timed
    def heartbeat(self, *, now_ms: int, **request) -> ErrorCode:
        """Heartbeat: see ``ClassicGroupCoordinator.heartbeat``."""
        return self.classic.heartbeat(**request)

    @_timed
    def leave_group(self, *, now_ms: int, **request) -> LeaveResult:
        """LeaveGroup: see ``ClassicGroupCoordinator.leave_group``."""
        return self.classic.leave_group(**request)

    @_timed
    def describe_group(self, group_id: str, *, now_ms: int) -> DescribedGroup:
        return self.classic.describe_group(group_id)

    # ============================================================ KIP-848 consumer groups
    @_timed
    def consumer_group_heartbeat(self, *, group_id: str, member_epoch: int, now_ms: int,
                                 **request) -> HeartbeatResult:
        """ConsumerGroupHeartbeat (consumer_group.py decides); here only the boundary with
        classic groups: an Empty classic group (say, one holding only offsets) becomes a
        consumer group on a join, as in Kafka; a classic group with members is not one."""
        classic = self.classic.group(group_id) if group_id else None
        if classic is not None:
            if not classic.is_in(S.EMPTY):
                return HeartbeatResult(E.GROUP_ID_NOT_FOUND, f"Group {group_id} is not a consumer group")
            if member_epoch != 0:
                return HeartbeatResult(E.UNKNOWN_MEMBER_ID, f"Consumer group {group_id} not found.")
        result = self.consumer.heartbeat(group_id=group_id, member_epoch=member_epoch,
                                         now_ms=self.now_ms, **request)
        if group_id in self.consumer.groups:
            self.classic.groups.pop(group_id, None)
        return result

    @_timed
    def consumer_group_describe(self, group_id: str, *, now_ms: int) -> ConsumerGroup | str:
        """The consumer group, or why there is none (GROUP_ID_NOT_FOUND's message)."""
        group = self.consumer.groups.get(group_id)
        if group is not None:
            return group
        if self.classic.group(group_id) is not None:
            return f"Group {group_id} is not a consumer group"
        return f"Group {group_id} not found"

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
    ) -> Waiter[TopicResults]:
        """OffsetCommit: the owning group says whether the member may commit, the offset
        store stores; per (topic, [(partition, error)]) once the commit is durable."""
        topics = [(t, list(parts)) for t, parts in topics]
        if group_id in self.consumer.groups:
            # OffsetCommit v9+ carries the member epoch in the generation field.
            error = self.consumer.validate_offset_commit(group_id, member_id, generation_id, api_version)
        else:
            try:
                self.classic.validate_offset_commit(group_id, member_id, group_instance_id,
                                                    generation_id, api_version)
                error = E.NONE
            except ValidationError as exc:
                error = exc.error
        if error != E.NONE:
            return Waiter.completed([(t, [(p.partition, error) for p in parts]) for t, parts in topics])
        return self.offset_store.commit(group_id, topics, retention_time_ms=retention_time_ms,
                                        now_ms=self.now_ms)

    @_timed
    def fetch_offsets(self, *, group_id: str, topics: Iterable[tuple[str, Iterable[int]]] | None,
                      require_stable: bool = False, now_ms: int) -> list[tuple[str, list[FetchedOffset]]]:
        """OffsetFetch for one group: the listed partitions, or every committed one when
        ``topics`` is None. Unknown groups and partitions read as offset -1."""
        return self.offset_store.fetch(group_id, topics, require_stable)

    @_timed
    def commit_txn_offsets(self, *, group_id: str, producer_id: int, producer_epoch: int, member_id: str,
                           group_instance_id: str | None, generation_id: int,
                           topics: Iterable[tuple[str, Iterable[OffsetCommitEntry]]],
                           now_ms: int) -> Waiter[TopicResults]:
        """TxnOffsetCommit (the transaction coordinator has checked the producer): the
        group checks the member (KIP-447), the offset store writes the offsets as the
        producer's transactional batch; they count once its COMMIT marker is written."""
        topics = [(t, list(parts)) for t, parts in topics]
        error = E.NONE
        if not group_id:
            error = E.INVALID_GROUP_ID
        elif group_id in self.consumer.groups:
            if member_id or generation_id >= 0:
                error = self.consumer.validate_offset_commit(group_id, member_id, generation_id, 9)
        elif generation_id >= 0 or member_id or group_instance_id is not None:
            # A producer without KIP-447's group metadata (TxnOffsetCommit v0-v2, or
            # send_offsets_to_transaction with a bare group id) is not checked, as in Kafka.
            try:
                self.classic.validate_offset_commit(group_id, member_id, group_instance_id, generation_id, 8)
            except ValidationError as exc:
                error = exc.error
        if error != E.NONE:
            return Waiter.completed([(t, [(p.partition, error) for p in parts]) for t, parts in topics])
        return self.offset_store.commit(group_id, topics, retention_time_ms=-1, now_ms=self.now_ms,
                                        producer=(producer_id, producer_epoch))

    def complete_txn(self, partition: int, producer_id: int, commit: bool) -> None:
        """A transaction marker of ``producer_id`` was written to ``__consumer_offsets``
        partition ``partition``: its offsets for groups placed there count (or go)."""
        n = self.config.offsets_topic_num_partitions
        self.offset_store.complete_txn(producer_id, commit, lambda group_id: partition_for(group_id, n) == partition)

    @_timed
    def delete_offsets(self, *, group_id: str, topics: Iterable[tuple[str, Iterable[int]]],
                       now_ms: int) -> Waiter[tuple[ErrorCode, TopicResults]]:
        """OffsetDelete: (group error, per topic [(partition, error)]) once durable."""
        if not group_id:
            return Waiter.completed((E.INVALID_GROUP_ID, []))
        consumer_group = self.consumer.groups.get(group_id)
        # A consumer group answers the checks below as an empty consumer-protocol group.
        group = ClassicGroup(group_id, now_ms=self.now_ms) if consumer_group is not None \
            else self.classic.group(group_id)
        if group is None or group.is_in(S.DEAD):
            return Waiter.completed((E.GROUP_ID_NOT_FOUND, []))
        if not group.is_in(S.EMPTY) and group.protocol_type != CONSUMER_PROTOCOL_TYPE:
            # Without a consumer subscription we cannot tell what the members read.
            return Waiter.completed((E.NON_EMPTY_GROUP, []))

        def is_subscribed(topic: str) -> bool:
            return (consumer_group is not None and consumer_group.is_subscribed_to(topic)
                    or not group.is_empty and group.is_subscribed_to(topic))

        return self.offset_store.delete(group_id, [(t, list(ps)) for t, ps in topics], is_subscribed)

    # ============================================================ admin
    @_timed
    def list_groups(self, *, states: Iterable[str] = (), types: Iterable[str] = (),
                    now_ms: int) -> list[ListedGroup]:
        states_lc = {s.strip().lower() for s in states}
        types_lc = {t.strip().lower() for t in types}
        out: list[ListedGroup] = []
        if not types_lc or "classic" in types_lc:
            out.extend(ListedGroup(*g) for g in self.classic.list_groups(states_lc))
            if not states_lc or "empty" in states_lc:
                # A simple group reads as an Empty classic group with no protocol type.
                out.extend(ListedGroup(g, "", str(S.EMPTY)) for g in self._simple_group_ids())
        if not types_lc or "consumer" in types_lc:
            out.extend(ListedGroup(g.group_id, CONSUMER_PROTOCOL_TYPE, g.state, "consumer")
                       for g in self.consumer.groups.values()
                       if not states_lc or g.state.lower() in states_lc)
        return out

    @_timed
    def delete_groups(self, group_ids: Iterable[str], *, now_ms: int) -> Waiter[list[tuple[str, ErrorCode]]]:
        """DeleteGroups: only groups without members; their offsets go with them."""
        waiter: Waiter[list[tuple[str, ErrorCode]]] = Waiter()
        results: list[tuple[str, ErrorCode]] = []
        facts: list[tuple[str, tuple]] = []
        deleted: list[int] = []
        for group_id in group_ids:
            group = self.classic.group(group_id) if group_id else None
            if not group_id:
                results.append((group_id, E.INVALID_GROUP_ID))
            elif group_id in self.consumer.groups:
                results.append((group_id, E.NON_EMPTY_GROUP))  # a consumer group here has members
            elif group is None or group.is_in(S.DEAD):
                results.append((group_id, E.GROUP_ID_NOT_FOUND))
            elif not group.is_empty:
                results.append((group_id, E.NON_EMPTY_GROUP))
            else:
                # Offsets first, then the group's metadata, as Kafka writes them.
                facts.extend(self.offset_store.tombstones(group_id))
                facts.extend(self.classic.remove_group(group))
                deleted.append(len(results))
                results.append((group_id, E.NONE))

        def persisted(error: ErrorCode) -> None:
            if error != E.NONE:
                for i in deleted:
                    results[i] = (results[i][0], write_error_to_response(error))
            waiter.complete(results)

        self.outbox.write(facts, persisted)
        return waiter

    # ============================================================ offsets retention
    def _schedule_retention_sweep(self) -> None:
        self.timer.schedule(("offsets-retention",),
                            self.now_ms + self.config.offsets_retention_check_interval_ms,
                            self._retention_sweep)

    def _retention_sweep(self) -> None:
        """``offsets.retention.minutes``: drop expired offsets; drop empty groups left
        with none (Kafka's cleanupGroupMetadata). A simple group's offsets age from their
        commit; its metadata tombstone (it may never have had any) goes with the last."""
        now = self.now_ms
        store = self.offset_store
        facts: list[tuple[str, tuple]] = []
        for group_id, group in list(self.classic.groups.items()):
            condition = self.classic.offset_expiration(group)
            if condition is None:
                continue
            expired, all_expired = store.expire(group_id, condition, now)
            facts.extend(expired)
            if all_expired and group.is_empty and not store.has_pending(group_id):
                facts.extend(self.classic.remove_group(group))
        for group_id in self._simple_group_ids():
            expired, all_expired = store.expire(group_id, OffsetExpiration(), now)
            facts.extend(expired)
            if all_expired and not store.has_pending(group_id):
                facts.append((group_id, (GroupMetadataKey(group_id), None)))
        if facts:
            log.info("offsets retention: %d tombstones", len(facts))
            self.outbox.write(facts)
        self._schedule_retention_sweep()

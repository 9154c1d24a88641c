"""KIP-848 consumer groups (the "consumer" group protocol) as a pure state machine.

Theory of operation
-------------------
A member drives everything with ConsumerGroupHeartbeat; there is no join/sync barrier and
no leader. Three epochs tell the story (Kafka's vocabulary):

* the **group epoch** goes up whenever what the assignment depends on changes: a member
  joins or leaves, a subscription or the preferred server assignor changes, a subscribed
  topic gains partitions or appears;
* the **target assignment** is what the group's server assignor ("uniform" by default, or
  "range") computes for that epoch; here it is recomputed at once, so the assignment epoch
  always equals the group epoch after any call;
* each **member epoch** says which target assignment the member has reached.

A member is reconciled towards its target only when it heartbeats (Kafka's
CurrentAssignmentBuilder): partitions it must give up are first put *pending revocation*
(its epoch stays; the response lists only what it keeps) and only once a later heartbeat's
owned partitions no longer include them does it move to the new epoch. A partition it
should get is handed over only when no other member still owns it (assigned or pending
revocation); until then the member is "unreleased" and picks them up on a later heartbeat.
So no partition is ever owned by two members, which ``owned_partitions`` lets tests check.

Timers (on the coordinator's shared ``DeadlineTimer``): each heartbeat pushes the member's
session deadline (``group.consumer.session.timeout.ms``); a member that does not revoke
within its rebalance timeout is fenced. A removed member's partitions go back to the
assignor; a group without members is dropped. Its committed offsets are not this
module's: they stay in the offset store, and the id reads as a simple group.

Static members (``group.instance.id``): epoch -2 leaves temporarily: the member keeps its
assignment until its session expires, and a new member id with the same instance id takes
its place (and its partitions) without disturbing anyone; joining while the old member is
still active gets UNRELEASED_INSTANCE_ID.

Membership is kept in memory only: it is not written to ``__consumer_offsets``. After a
restart the group is gone; a member heartbeating with its old epoch gets UNKNOWN_MEMBER_ID
and rejoins with epoch 0 (committed offsets, which are persisted, carry over).

Topics are named here; the handler translates topic ids. ``topics`` passed to a heartbeat
is the broker's current view: topic name -> partition count.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from kafkito.protocol import ErrorCode

from ..coordinator_runtime import DeadlineTimer
from .assignors import ASSIGNORS, DEFAULT_ASSIGNOR, AssignmentMember, assign

__all__ = [
    "ConsumerGroup",
    "ConsumerGroupConfig",
    "ConsumerGroupCoordinator",
    "ConsumerMember",
    "HeartbeatResult",
    "JOIN_EPOCH",
    "LEAVE_EPOCH",
    "STATIC_LEAVE_EPOCH",
]

E = ErrorCode
JOIN_EPOCH = 0
LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2

TopicPartitions = dict[str, set[int]]


@dataclass(frozen=True)
class ConsumerGroupConfig:
    """Kafka's group.consumer.* settings (snake_case); GroupConfig reads them from the
    broker's settings (the size limit is group.max.size, shared with classic groups)."""

    # Kafka: 45 s and 5 s. The interval is how fast a member hears of a new assignment;
    # kafkito answers 1 s so rebalances on a dev broker settle quickly.
    group_consumer_session_timeout_ms: int = 45_000
    group_consumer_heartbeat_interval_ms: int = 1_000
    group_consumer_max_size: int = 2**31 - 1


class MemberState(Enum):
    STABLE = "stable"
    UNREVOKED_PARTITIONS = "unrevoked_partitions"
    UNRELEASED_PARTITIONS = "unreleased_partitions"


@dataclass(eq=False)
class ConsumerMember:
    member_id: str
    instance_id: str | None = None
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    subscribed_topic_names: tuple[str, ...] = ()
    subscribed_topic_regex: str | None = None
    server_assignor: str | None = None
    rebalance_timeout_ms: int = 300_000
    member_epoch: int = 0
    previous_member_epoch: int = -1
    state: MemberState = MemberState.STABLE
    assigned: TopicPartitions = field(default_factory=dict)
    pending_revocation: TopicPartitions = field(default_factory=dict)

    def subscribes(self, topic: str) -> bool:
        if topic in self.subscribed_topic_names:
            return True
        if self.subscribed_topic_regex is not None and not topic.startswith("__"):
            # Internal topics (__consumer_offsets, ...) never match a pattern.
            try:
                return re.fullmatch(self.subscribed_topic_regex, topic) is not None
            except re.error:
                return False
        return False


class ConsumerGroup:
    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.group_epoch = 0
        self.assignment_epoch = 0
        self.members: dict[str, ConsumerMember] = {}
        self.static_members: dict[str, str] = {}  # instance id -> member id
        self.target: dict[str, TopicPartitions] = {}
        self.partition_counts: dict[str, int] = {}  # subscribed topics that exist

    @property
    def state(self) -> str:
        """Kafka's ConsumerGroupState names."""
        if not self.members:
            return "Empty"
        if self.group_epoch != self.assignment_epoch:
            return "Assigning"
        for m in self.members.values():
            if m.member_epoch != self.assignment_epoch or m.state != MemberState.STABLE:
                return "Reconciling"
        return "Stable"

    def assignor_name(self) -> str:
        counts: dict[str, int] = {}
        for m in self.members.values():
            if m.server_assignor is not None:
                counts[m.server_assignor] = counts.get(m.server_assignor, 0) + 1
        if not counts:
            return DEFAULT_ASSIGNOR
        return min(counts, key=lambda name: (-counts[name], name))

    def subscribed_topics(self, topics: Mapping[str, int]) -> dict[str, int]:
        return {t: n for t, n in topics.items()
                if any(m.subscribes(t) for m in self.members.values())}

    def is_subscribed_to(self, topic: str) -> bool:
        return any(m.subscribes(topic) for m in self.members.values())

    def owned_partitions(self, exclude: str | None = None) -> dict[tuple[str, int], str]:
        """(topic, partition) -> member id, over assigned and pending revocation."""
        out: dict[tuple[str, int], str] = {}
        for m in self.members.values():
            if m.member_id == exclude:
                continue
            for tps in (m.assigned, m.pending_revocation):
                for topic, parts in tps.items():
                    for p in parts:
                        out[(topic, p)] = m.member_id
        return out


@dataclass(frozen=True, slots=True)
class HeartbeatResult:
    error: ErrorCode
    error_message: str | None = None
    member_id: str | None = None
    member_epoch: int = 0
    heartbeat_interval_ms: int = 0
    assignment: TopicPartitions | None = None  # None: unchanged, not sent


class _Fail(Exception):
    def __init__(self, error: ErrorCode, message: str | None = None) -> None:
        self.error = error
        self.message = message


def _copy(tps: Mapping[str, set[int]]) -> TopicPartitions:
    return {t: set(ps) for t, ps in tps.items() if ps}


def _is_subset(small: Mapping[str, set[int]], big: Mapping[str, set[int]]) -> bool:
    return all(ps <= big.get(t, set()) for t, ps in small.items())


def _intersects(a: Mapping[str, set[int]], b: Mapping[str, set[int]]) -> bool:
    return any(ps & b.get(t, set()) for t, ps in a.items())


class ConsumerGroupCoordinator:
    """Every consumer group of this broker. Driven by ``heartbeat``; timers live on the
    shared ``timer`` and fire when the owner polls it."""

    def __init__(self, config: ConsumerGroupConfig, timer: DeadlineTimer, *,
                 new_member_id: Callable[[], str]) -> None:
        self.config = config
        self.timer = timer
        self.new_member_id = new_member_id
        self.groups: dict[str, ConsumerGroup] = {}
        self.now_ms = 0

    # ------------------------------------------------------------ heartbeat
    def heartbeat(
        self,
        *,
        group_id: str,
        member_id: str,
        member_epoch: int,
        instance_id: str | None,
        rack_id: str | None,
        rebalance_timeout_ms: int,
        subscribed_topic_names: list[str] | None,
        subscribed_topic_regex: str | None,
        server_assignor: str | None,
        owned: TopicPartitions | None,
        topics: Mapping[str, int],
        client_id: str = "",
        client_host: str = "",
        now_ms: int,
    ) -> HeartbeatResult:
        """ConsumerGroupHeartbeat. ``group_exists_as_classic`` cases are the caller's."""
        self.now_ms = max(self.now_ms, now_ms)
        try:
            self._validate(group_id, member_id, member_epoch, instance_id, rack_id,
                           rebalance_timeout_ms, subscribed_topic_names, subscribed_topic_regex,
                           server_assignor, owned)
            if member_epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
                return self._leave(group_id, member_id, member_epoch, instance_id)
            return self._heartbeat(group_id, member_id, member_epoch, instance_id, rack_id,
                                   rebalance_timeout_ms, subscribed_topic_names,
                                   subscribed_topic_regex, server_assignor, owned, topics,
                                   client_id, client_host)
        except _Fail as exc:
            return HeartbeatResult(exc.error, exc.message)

    def _validate(self, group_id, member_id, member_epoch, instance_id, rack_id,
                  rebalance_timeout_ms, names, regex, server_assignor, owned) -> None:
        if not group_id:
            raise _Fail(E.INVALID_REQUEST, "GroupId can't be empty.")
        if instance_id == "":
            raise _Fail(E.INVALID_REQUEST, "InstanceId can't be empty.")
        if rack_id == "":
            raise _Fail(E.INVALID_REQUEST, "RackId can't be empty.")
        if member_epoch > 0 or member_epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
            if not member_id:
                raise _Fail(E.INVALID_REQUEST, "MemberId can't be empty.")
            if member_epoch == STATIC_LEAVE_EPOCH and instance_id is None:
                raise _Fail(E.INVALID_REQUEST, "InstanceId can't be null.")
        elif member_epoch == JOIN_EPOCH:
            if rebalance_timeout_ms == -1:
                raise _Fail(E.INVALID_REQUEST, "RebalanceTimeoutMs must be provided in first request.")
            if owned is None or any(owned.values()):
                raise _Fail(E.INVALID_REQUEST, "TopicPartitions must be empty when (re-)joining.")
            if not names and regex is None:
                raise _Fail(E.INVALID_REQUEST, "SubscribedTopicNames must be set in first request.")
        else:
            raise _Fail(E.INVALID_REQUEST, "MemberEpoch is invalid.")
        if regex is not None:
            try:
                re.compile(regex)
            except re.error as exc:
                raise _Fail(E.INVALID_REQUEST, f"SubscribedTopicRegex is invalid: {exc}") from None
        if server_assignor is not None and server_assignor not in ASSIGNORS:
            raise _Fail(E.UNSUPPORTED_ASSIGNOR,
                        f"ServerAssignor {server_assignor} is not supported. "
                        f"Supported assignors: {', '.join(sorted(ASSIGNORS))}.")

    def _heartbeat(self, group_id, member_id, member_epoch, instance_id, rack_id,
                   rebalance_timeout_ms, names, regex, server_assignor, owned, topics,
                   client_id, client_host) -> HeartbeatResult:
        group = self.groups.get(group_id)
        joining = member_epoch == JOIN_EPOCH
        if group is None:
            if not joining:
                # Kafka would say GROUP_ID_NOT_FOUND, but here a group is only ever lost
                # by a restart (membership is not persisted): the member should rejoin.
                raise _Fail(E.UNKNOWN_MEMBER_ID, f"Consumer group {group_id} not found.")
            group = ConsumerGroup(group_id)
        member, changed = self._member_for(group, member_id, member_epoch, instance_id, owned)
        if member.member_id not in group.members and len(group.members) >= self.config.group_consumer_max_size:
            raise _Fail(E.GROUP_MAX_SIZE_REACHED,
                        f"The consumer group has reached its maximum capacity of "
                        f"{self.config.group_consumer_max_size} members.")
        if group_id not in self.groups:
            self.groups[group_id] = group
        # What the member tells us about itself.
        if rack_id is not None and rack_id != member.rack_id:
            member.rack_id = rack_id
        if rebalance_timeout_ms != -1:
            member.rebalance_timeout_ms = rebalance_timeout_ms
        if names is not None and tuple(names) != member.subscribed_topic_names:
            member.subscribed_topic_names = tuple(names)
            changed = True
        if regex is not None and regex != member.subscribed_topic_regex:
            member.subscribed_topic_regex = regex or None
            changed = True
        if server_assignor is not None and server_assignor != member.server_assignor:
            member.server_assignor = server_assignor
            changed = True
        member.client_id = client_id or member.client_id
        member.client_host = client_host or member.client_host
        if member.member_id not in group.members:
            self._add(group, member)
            changed = True
        counts = group.subscribed_topics(topics)
        if counts != group.partition_counts:
            group.partition_counts = counts
            changed = True
        if changed:
            self._bump(group)
        self._schedule_session(group, member)
        before = (_copy(member.assigned), member.member_epoch)
        self._reconcile(group, member, owned)
        after = (member.assigned, member.member_epoch)
        full = joining or (rebalance_timeout_ms != -1 and names is not None and owned is not None)
        send = full or before[0] != _copy(after[0]) or before[1] != after[1]
        return HeartbeatResult(
            E.NONE, None, member.member_id, member.member_epoch,
            self.config.group_consumer_heartbeat_interval_ms,
            _copy(member.assigned) if send else None)

    def _member_for(self, group: ConsumerGroup, member_id: str, member_epoch: int,
                    instance_id: str | None, owned) -> tuple[ConsumerMember, bool]:
        """The member this request is from (maybe new) and whether the group changed."""
        if member_epoch == JOIN_EPOCH:
            if instance_id is not None:
                old_id = group.static_members.get(instance_id)
                if old_id is not None:
                    old = group.members[old_id]
                    if old.member_epoch != STATIC_LEAVE_EPOCH and old_id != member_id:
                        raise _Fail(E.UNRELEASED_INSTANCE_ID,
                                    f"Static member {old_id} with instance id {instance_id} "
                                    f"is not released yet.")
                    return self._replace_static(group, old, member_id or self.new_member_id()), False
            existing = group.members.get(member_id) if member_id else None
            if existing is not None:
                # A full rejoin (e.g. the answer to its first join was lost): the client
                # owns nothing now, so nothing needs revoking.
                self._release_all(group, existing)
                existing.member_epoch = JOIN_EPOCH
                existing.previous_member_epoch = -1
                return existing, False
            return ConsumerMember(member_id or self.new_member_id(), instance_id), True
        member = group.members.get(member_id)
        if member is None:
            raise _Fail(E.UNKNOWN_MEMBER_ID, f"Member {member_id} is not a member of group {group.group_id}.")
        if instance_id is not None and group.static_members.get(instance_id) != member_id:
            raise _Fail(E.FENCED_INSTANCE_ID,
                        f"Static member {member_id} with instance id {instance_id} was fenced.")
        if member_epoch > member.member_epoch:
            raise _Fail(E.FENCED_MEMBER_EPOCH,
                        f"The consumer group member has a greater epoch ({member_epoch}) "
                        f"than the one known by the group coordinator ({member.member_epoch}).")
        if member_epoch < member.member_epoch:
            # The answer that bumped its epoch may have been lost: accept the previous
            # epoch if what it owns is part of what it has.
            if member_epoch != member.previous_member_epoch or owned is None \
                    or not _is_subset(owned, member.assigned):
                raise _Fail(E.FENCED_MEMBER_EPOCH,
                            f"The consumer group member has a smaller epoch ({member_epoch}) "
                            f"than the one known by the group coordinator ({member.member_epoch}).")
        return member, False

    def _replace_static(self, group: ConsumerGroup, old: ConsumerMember, new_id: str) -> ConsumerMember:
        """A static member comes back under a new member id: it takes the old one's place,
        epoch and partitions, so the others are not disturbed."""
        self._cancel_timers(group, old.member_id)
        del group.members[old.member_id]
        new = ConsumerMember(
            new_id, old.instance_id, old.rack_id, old.client_id, old.client_host,
            old.subscribed_topic_names, old.subscribed_topic_regex, old.server_assignor,
            old.rebalance_timeout_ms, 0, -1, MemberState.STABLE,
            _copy(old.assigned), _copy(old.pending_revocation))
        if old.pending_revocation:
            new.state = MemberState.UNREVOKED_PARTITIONS
        group.members[new_id] = new
        group.static_members[old.instance_id] = new_id  # type: ignore[index]
        group.target[new_id] = group.target.pop(old.member_id, {})
        return new

    def _add(self, group: ConsumerGroup, member: ConsumerMember) -> None:
        group.members[member.member_id] = member
        if member.instance_id is not None:
            group.static_members[member.instance_id] = member.member_id

    def _leave(self, group_id: str, member_id: str, member_epoch: int,
               instance_id: str | None) -> HeartbeatResult:
        group = self.groups.get(group_id)
        member = group.members.get(member_id) if group is not None else None
        if group is None or member is None:
            raise _Fail(E.UNKNOWN_MEMBER_ID, f"Member {member_id} is not a member of group {group_id}.")
        if instance_id is not None and group.static_members.get(instance_id) != member_id:
            raise _Fail(E.FENCED_INSTANCE_ID,
                        f"Static member {member_id} with instance id {instance_id} was fenced.")
        if member_epoch == STATIC_LEAVE_EPOCH:
            # Keeps its partitions until its session expires or it comes back; those it
            # was revoking it no longer holds (it stopped), as in Kafka.
            member.member_epoch = STATIC_LEAVE_EPOCH
            member.pending_revocation = {}
            member.state = MemberState.STABLE
            self.timer.cancel(("consumer-revocation", group.group_id, member.member_id))
            self._schedule_session(group, member)
        else:
            self._remove(group, member)
        return HeartbeatResult(E.NONE, None, member_id, member_epoch,
                               self.config.group_consumer_heartbeat_interval_ms)

    # ------------------------------------------------------------ membership
    def _remove(self, group: ConsumerGroup, member: ConsumerMember) -> None:
        self._cancel_timers(group, member.member_id)
        del group.members[member.member_id]
        group.target.pop(member.member_id, None)
        if member.instance_id is not None and group.static_members.get(member.instance_id) == member.member_id:
            del group.static_members[member.instance_id]
        if not group.members:
            del self.groups[group.group_id]
            return
        self._bump(group)

    def _release_all(self, group: ConsumerGroup, member: ConsumerMember) -> None:
        member.assigned = {}
        member.pending_revocation = {}
        member.state = MemberState.STABLE
        self.timer.cancel(("consumer-revocation", group.group_id, member.member_id))

    def _cancel_timers(self, group: ConsumerGroup, member_id: str) -> None:
        self.timer.cancel(("consumer-session", group.group_id, member_id))
        self.timer.cancel(("consumer-revocation", group.group_id, member_id))

    def _schedule_session(self, group: ConsumerGroup, member: ConsumerMember) -> None:
        group_id, member_id = group.group_id, member.member_id
        self.timer.schedule(("consumer-session", group_id, member_id),
                            self.now_ms + self.config.group_consumer_session_timeout_ms,
                            lambda: self._expire(group_id, member_id))

    def _expire(self, group_id: str, member_id: str) -> None:
        group = self.groups.get(group_id)
        member = group.members.get(member_id) if group is not None else None
        if member is not None:
            self._remove(group, member)  # type: ignore[arg-type]

    # ------------------------------------------------------------ assignment
    def _bump(self, group: ConsumerGroup) -> None:
        """A new group epoch, and its target assignment."""
        group.group_epoch += 1
        members = [AssignmentMember(m.member_id, m.instance_id,
                                    frozenset(t for t in group.partition_counts if m.subscribes(t)))
                   for m in group.members.values()]
        group.target = assign(group.assignor_name(), members, group.partition_counts, group.target)
        group.assignment_epoch = group.group_epoch

    def _reconcile(self, group: ConsumerGroup, member: ConsumerMember,
                   owned: TopicPartitions | None) -> None:
        target_epoch = group.assignment_epoch
        if member.state == MemberState.UNREVOKED_PARTITIONS:
            if owned is None or _intersects(owned, member.pending_revocation):
                return
            member.pending_revocation = {}
            self.timer.cancel(("consumer-revocation", group.group_id, member.member_id))
            self._next_assignment(group, member, owned,
                                  min(member.member_epoch + 1, target_epoch) if member.member_epoch > 0
                                  else target_epoch)
        elif member.state == MemberState.UNRELEASED_PARTITIONS or member.member_epoch != target_epoch:
            self._next_assignment(group, member, owned, member.member_epoch)

    def _next_assignment(self, group: ConsumerGroup, member: ConsumerMember,
                         owned: TopicPartitions | None, epoch_if_revoking: int) -> None:
        target = group.target.get(member.member_id, {})
        others = group.owned_partitions(exclude=member.member_id)
        keep: TopicPartitions = {}
        revoke: TopicPartitions = {}
        unreleased = False
        for topic in set(member.assigned) | set(target):
            current = member.assigned.get(topic, set())
            wanted = target.get(topic, set())
            if current & wanted:
                keep[topic] = current & wanted
            if current - wanted:
                revoke[topic] = current - wanted
            for p in wanted - current:
                if (topic, p) in others:
                    unreleased = True
                else:
                    keep.setdefault(topic, set()).add(p)
        still_owned = owned is None or _intersects(owned, revoke)
        if revoke and still_owned:
            member.assigned = {t: ps & target.get(t, set()) for t, ps in member.assigned.items()
                               if ps & target.get(t, set())}
            member.pending_revocation = revoke
            member.state = MemberState.UNREVOKED_PARTITIONS
            if member.member_epoch != epoch_if_revoking:
                member.previous_member_epoch, member.member_epoch = member.member_epoch, epoch_if_revoking
            group_id, member_id = group.group_id, member.member_id
            self.timer.schedule(("consumer-revocation", group_id, member_id),
                                self.now_ms + member.rebalance_timeout_ms,
                                lambda: self._revocation_timeout(group_id, member_id))
            return
        member.assigned = keep
        member.pending_revocation = {}
        member.state = MemberState.UNRELEASED_PARTITIONS if unreleased else MemberState.STABLE
        if member.member_epoch != group.assignment_epoch:
            member.previous_member_epoch, member.member_epoch = member.member_epoch, group.assignment_epoch

    def _revocation_timeout(self, group_id: str, member_id: str) -> None:
        group = self.groups.get(group_id)
        member = group.members.get(member_id) if group is not None else None
        if member is not None and member.state == MemberState.UNREVOKED_PARTITIONS:
            self._remove(group, member)  # type: ignore[arg-type]

    # ------------------------------------------------------------ offsets and admin
    def validate_offset_commit(self, group_id: str, member_id: str, member_epoch: int,
                               api_version: int) -> ErrorCode:
        """Kafka's ConsumerGroup.validateOffsetCommit: a member of the group at its epoch."""
        group = self.groups[group_id]
        member = group.members.get(member_id)
        if member is None:
            return E.UNKNOWN_MEMBER_ID
        if api_version < 9:
            return E.UNSUPPORTED_VERSION  # a KIP-848 member commits with v9+
        if member_epoch > member.member_epoch:
            return E.FENCED_MEMBER_EPOCH
        if member_epoch < member.member_epoch:
            return E.STALE_MEMBER_EPOCH
        return E.NONE

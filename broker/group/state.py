"""A classic consumer group as data: its members, its generation, its state.

Theory of operation
-------------------
A classic group moves through five states (Kafka's ``ClassicGroupState``):

* ``Empty``: no members. The group lingers for its committed offsets (it may never have
  had members: "simple" consumers commit offsets without joining).
* ``PreparingRebalance``: a rebalance has started; JoinGroup requests are parked until
  every known member has rejoined (or the rebalance timeout removes the laggards).
* ``CompletingRebalance``: the join phase is over, the generation was bumped, the leader
  got every member's subscription; SyncGroup requests are parked until the leader sends
  the assignment.
* ``Stable``: the leader's assignment is in force; heartbeats keep members alive.
* ``Dead``: the group is being removed.

The legal transitions are ``TRANSITIONS`` (a state may only be entered from the listed
ones); ``ClassicGroup.transition_to`` asserts them, so a coordinator bug fails loudly.

This module holds the group's invariants (who is a member, which instance id maps to
which member id, who leads, which protocol the members can agree on, who still owes a
JoinGroup or SyncGroup) and nothing of timing or I/O: the coordinator decides *when*
things happen. A parked request is a ``Waiter`` (``broker/coordinator_runtime.py``): a plain
object the coordinator completes with the response exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum

from kafkito.protocol.errors import ProtocolError
from kafkito.protocol.records.consumer_protocol import read_subscribed_topics

from ..coordinator_runtime import Waiter  # noqa: F401  (a member's parked requests)

__all__ = [
    "CONSUMER_PROTOCOL_TYPE",
    "ClassicGroup",
    "GroupMember",
    "GroupState",
    "TRANSITIONS",
    "Waiter",
    "subscribed_topics_of",
]

CONSUMER_PROTOCOL_TYPE = "consumer"


class GroupState(Enum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"

    def __str__(self) -> str:
        return self.value


S = GroupState
TRANSITIONS: dict[GroupState, frozenset[GroupState]] = {
    S.EMPTY: frozenset({S.PREPARING_REBALANCE}),
    S.PREPARING_REBALANCE: frozenset({S.STABLE, S.COMPLETING_REBALANCE, S.EMPTY}),
    S.COMPLETING_REBALANCE: frozenset({S.PREPARING_REBALANCE}),
    S.STABLE: frozenset({S.COMPLETING_REBALANCE}),
    S.DEAD: frozenset({S.STABLE, S.PREPARING_REBALANCE, S.COMPLETING_REBALANCE, S.EMPTY, S.DEAD}),
}


@dataclass(eq=False)
class GroupMember:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    protocol_type: str
    protocols: list[tuple[str, bytes]]  # (name, metadata) in the member's preference order
    assignment: bytes = b""
    join_waiter: Waiter | None = None
    sync_waiter: Waiter | None = None
    # A member that has not yet completed a join is "new": its session timer is the (long)
    # new-member join timeout and being parked in JoinGroup does not keep it alive.
    is_new: bool = False

    @property
    def is_static(self) -> bool:
        return self.group_instance_id is not None

    @property
    def is_awaiting_join(self) -> bool:
        return self.join_waiter is not None

    @property
    def is_awaiting_sync(self) -> bool:
        return self.sync_waiter is not None

    def has_satisfied_heartbeat(self) -> bool:
        # A member parked in JoinGroup/SyncGroup cannot heartbeat (its client is waiting
        # for us), so being parked counts as alive, except for new members.
        if self.is_new:
            return False
        return self.is_awaiting_join or self.is_awaiting_sync

    def protocol_names(self) -> list[str]:
        return [name for name, _ in self.protocols]

    def metadata(self, protocol_name: str | None) -> bytes:
        for name, meta in self.protocols:
            if name == protocol_name:
                return meta
        raise ValueError(f"member {self.member_id} does not support protocol {protocol_name!r}")

    def matches(self, protocols: list[tuple[str, bytes]]) -> bool:
        return [(n, bytes(m)) for n, m in protocols] == [(n, bytes(m)) for n, m in self.protocols]

    def vote(self, candidates: set[str]) -> str:
        """The member's most preferred protocol among ``candidates``."""
        for name, _ in self.protocols:
            if name in candidates:
                return name
        raise ValueError(f"member {self.member_id} supports none of {sorted(candidates)}")


class ClassicGroup:
    def __init__(
        self,
        group_id: str,
        *,
        now_ms: int,
        state: GroupState = GroupState.EMPTY,
        generation_id: int = 0,
        protocol_type: str | None = None,
        protocol_name: str | None = None,
        leader_id: str | None = None,
        state_timestamp_ms: int | None = None,
    ) -> None:
        self.group_id = group_id
        self.state = state
        self.previous_state = state
        self.state_timestamp_ms = now_ms if state_timestamp_ms is None else state_timestamp_ms
        self.generation_id = generation_id
        self.protocol_type = protocol_type
        self.protocol_name = protocol_name
        self.leader_id = leader_id
        self.members: dict[str, GroupMember] = {}  # insertion order elects the next leader
        self.static_members: dict[str, str] = {}  # group.instance.id -> member id
        # Members told MEMBER_ID_REQUIRED who have not come back with their id yet; a
        # rebalance waits for them as for members (KIP-394).
        self.pending_join_members: set[str] = set()
        # Members of the new generation that have not sent SyncGroup yet.
        self.pending_sync_members: set[str] = set()
        # During the initial rebalance: did a member arrive since the delay was armed?
        self.new_member_added = False
        self.subscribed_topics: frozenset[str] | None = None

    def __repr__(self) -> str:
        return (f"ClassicGroup({self.group_id!r}, {self.state}, gen={self.generation_id}, "
                f"members={list(self.members)}, leader={self.leader_id!r})")

    # -- state ------------------------------------------------------------------------
    def is_in(self, *states: GroupState) -> bool:
        return self.state in states

    def can_rebalance(self) -> bool:
        return self.state in TRANSITIONS[GroupState.PREPARING_REBALANCE]

    def transition_to(self, state: GroupState, now_ms: int) -> None:
        if self.state not in TRANSITIONS[state]:
            raise AssertionError(f"group {self.group_id}: illegal transition {self.state} -> {state}")
        self.previous_state = self.state
        self.state = state
        self.state_timestamp_ms = now_ms

    @property
    def is_empty(self) -> bool:
        return self.state is GroupState.EMPTY

    # -- membership -------------------------------------------------------------------
    def has_member(self, member_id: str) -> bool:
        return member_id in self.members

    def member(self, member_id: str) -> GroupMember:
        return self.members[member_id]

    def is_leader(self, member_id: str) -> bool:
        return self.leader_id == member_id

    def add(self, member: GroupMember, join_waiter: Waiter | None = None) -> None:
        if member.group_instance_id is not None:
            assert member.group_instance_id not in self.static_members, "static member added twice"
            self.static_members[member.group_instance_id] = member.member_id
        if not self.members:
            self.protocol_type = member.protocol_type
        assert self.protocol_type == member.protocol_type, "member and group protocol types differ"
        assert self.supports_protocols(member.protocol_type, member.protocol_names())
        if self.leader_id is None:
            self.leader_id = member.member_id
        self.members[member.member_id] = member
        member.join_waiter = join_waiter
        self.pending_join_members.discard(member.member_id)

    def remove(self, member_id: str) -> None:
        removed = self.members.pop(member_id, None)
        if removed is not None and removed.group_instance_id is not None:
            self.static_members.pop(removed.group_instance_id, None)
        if self.leader_id == member_id:
            self.leader_id = next(iter(self.members), None)
        self.pending_join_members.discard(member_id)
        self.pending_sync_members.discard(member_id)

    def replace_static_member(self, instance_id: str, old_member_id: str, new_member_id: str,
                              fenced: Callable[[GroupMember], None]) -> GroupMember:
        """Give a static member a new member id (KIP-345): the old id is fenced.

        ``fenced`` answers whatever the old incarnation had parked (with
        FENCED_INSTANCE_ID); the new member keeps the old one's place, assignment and
        leadership, so a restarted static member resumes without a rebalance."""
        old = self.members.pop(old_member_id)
        fenced(old)
        new = GroupMember(
            new_member_id, old.group_instance_id, old.client_id, old.client_host,
            old.rebalance_timeout_ms, old.session_timeout_ms, old.protocol_type,
            list(old.protocols), old.assignment,
        )
        self.members[new_member_id] = new
        if self.leader_id == old_member_id:
            self.leader_id = new_member_id
        self.static_members[instance_id] = new_member_id
        # Carry over what the old incarnation still owed, under its new name.
        if old_member_id in self.pending_sync_members:
            self.pending_sync_members.discard(old_member_id)
            self.pending_sync_members.add(new_member_id)
        return new

    def update_member(self, member: GroupMember, protocols: list[tuple[str, bytes]],
                      rebalance_timeout_ms: int, session_timeout_ms: int,
                      join_waiter: Waiter | None) -> None:
        member.protocols = list(protocols)
        member.rebalance_timeout_ms = rebalance_timeout_ms
        member.session_timeout_ms = session_timeout_ms
        member.join_waiter = join_waiter

    def static_member_id(self, instance_id: str) -> str | None:
        return self.static_members.get(instance_id)

    def not_yet_rejoined(self) -> list[GroupMember]:
        return [m for m in self.members.values() if not m.is_awaiting_join]

    def num_awaiting_join(self) -> int:
        return sum(1 for m in self.members.values() if m.is_awaiting_join)

    def has_all_members_joined(self) -> bool:
        return self.num_awaiting_join() == len(self.members) and not self.pending_join_members

    def rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def maybe_elect_new_joined_leader(self) -> bool:
        """Make sure the leader is a member that rejoined; False if nobody did."""
        if self.leader_id is None:
            return False
        if self.members[self.leader_id].is_awaiting_join:
            return True
        for m in self.members.values():
            if m.is_awaiting_join:
                self.leader_id = m.member_id
                return True
        return False

    # -- protocols --------------------------------------------------------------------
    def _candidate_protocols(self) -> set[str]:
        """Protocols every member supports."""
        members = list(self.members.values())
        if not members:
            return set()
        common = set(members[0].protocol_names())
        for m in members[1:]:
            common &= set(m.protocol_names())
        return common

    def supports_protocols(self, protocol_type: str, names: Iterable[str]) -> bool:
        names = list(names)
        if self.state is GroupState.EMPTY:
            return bool(protocol_type) and bool(names)
        if self.protocol_type != protocol_type:
            return False
        if not self.members:
            return bool(names)
        common = self._candidate_protocols()
        return any(n in common for n in names)

    def select_protocol(self) -> str:
        """The common protocol with most first-choice votes (ties: first voted)."""
        candidates = self._candidate_protocols()
        votes: dict[str, int] = {}
        for m in self.members.values():
            choice = m.vote(candidates)
            votes[choice] = votes.get(choice, 0) + 1
        return max(votes, key=lambda name: votes[name])

    def init_next_generation(self, now_ms: int) -> None:
        self.generation_id += 1
        if self.members:
            self.protocol_name = self.select_protocol()
            self.subscribed_topics = self.compute_subscribed_topics()
            self.transition_to(GroupState.COMPLETING_REBALANCE, now_ms)
        else:
            self.protocol_name = None
            self.subscribed_topics = self.compute_subscribed_topics()
            self.transition_to(GroupState.EMPTY, now_ms)
        self.pending_sync_members.clear()

    # -- consumer protocol ------------------------------------------------------------
    def compute_subscribed_topics(self) -> frozenset[str] | None:
        """Topics the members subscribe to, or None if the broker cannot tell."""
        if self.protocol_type != CONSUMER_PROTOCOL_TYPE:
            return None
        if not self.members:
            return frozenset()
        if self.protocol_name is None:
            return None
        topics: set[str] = set()
        for m in self.members.values():
            parsed = subscribed_topics_of(m.metadata(self.protocol_name))
            if parsed is None:
                return None
            topics |= parsed
        return frozenset(topics)

    def is_subscribed_to(self, topic: str) -> bool:
        if self.subscribed_topics is None:
            # Unknown subscription: a consumer group may be reading the topic, so say yes.
            return self.protocol_type == CONSUMER_PROTOCOL_TYPE
        return topic in self.subscribed_topics

    def assignments(self) -> dict[str, bytes]:
        return {mid: m.assignment for mid, m in self.members.items()}


def subscribed_topics_of(metadata: bytes) -> set[str] | None:
    """Topics of a ConsumerProtocolSubscription, or None if it does not parse.

    Every version starts with the version-0 layout (int16 version, then an array of
    topic names), so that prefix is all we read (as Kafka's own reader does)."""
    try:
        return set(read_subscribed_topics(metadata))
    except ProtocolError:
        return None

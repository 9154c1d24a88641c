"""Classic consumer groups (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) as a pure state machine.

Theory of operation
-------------------
``ClassicGroupCoordinator`` owns every classic group of this broker and follows Kafka's
``GroupMetadataManager`` for classic groups decision for decision, so real clients see
the behaviour they were written against; ``state.py`` holds one group's invariants, this
module decides *when* things happen. It does no I/O and reads no clock: ``now_ms`` is the
owning ``GroupCoordinator``'s time, and that facade fires the shared timer before and
after every call.

* **Parked requests are waiters.** JoinGroup and SyncGroup may have to wait for other
  members; they return a ``Waiter`` completed exactly once, maybe immediately, maybe
  during a later call.
* **Membership records go through the outbox.** After a rebalance (and when a static
  member comes back under a new member id) the group's ``GroupMetadataValue`` is queued on
  the coordinator's outbox; a SyncGroup leader's assignment takes effect, and a returning
  static member is answered, only once that write is done. Membership itself lives in
  memory; the record only lets a restarted broker resume the last generation
  (``load_group``).
* **Offsets are not here.** Committed offsets belong to the ``OffsetStore``; this module
  only says whether a member may commit (``validate_offset_commit``) and how its groups'
  offsets expire (``offset_expiration``). An id that holds offsets but has no classic
  group is a *simple* group (a consumer committing without group management, or a KIP-848
  group whose members all left): classic requests treat it as an Empty group
  (``is_simple_group`` is the owner's answer), and a JoinGroup makes it a real one, as
  Kafka does.

Version-dependent behaviour is passed in as plain flags (``require_known_member_id`` for
JoinGroup v4+, ``supports_skip_assignment`` for v9+, ``api_version`` for OffsetCommit's
GROUP_ID_NOT_FOUND from v9); the handlers translate wire structs to these calls.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from kafkito.protocol import ErrorCode

from ..coordinator_runtime import DeadlineTimer, Outbox, Waiter
from .offsets import OffsetExpiration, write_error_to_response
from .records import GroupMetadataKey, GroupMetadataValue, MemberMetadata
from .state import CONSUMER_PROTOCOL_TYPE, ClassicGroup, GroupMember, GroupState

log = logging.getLogger("kafkito.broker.group")

__all__ = [
    "ClassicGroupCoordinator",
    "DescribedGroup",
    "DescribedMember",
    "JoinResult",
    "JoinedMember",
    "LeaveResult",
    "SyncResult",
    "ValidationError",
]

E = ErrorCode
S = GroupState
Fact = tuple


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


class ValidationError(Exception):
    """A request refused before it changes anything; ``error`` is the answer."""

    def __init__(self, error: ErrorCode) -> None:
        self.error = error


class ClassicGroupCoordinator:
    """Every classic group. ``config`` is the facade's GroupConfig; ``timer`` and
    ``outbox`` are shared with the other parts; ``now_ms`` reads the facade's time;
    ``is_consumer_group`` and ``is_simple_group`` say what an id without a classic group
    is (the facade knows)."""

    def __init__(self, config, *, timer: DeadlineTimer, outbox: Outbox, now_ms: Callable[[], int],
                 new_member_suffix: Callable[[], str],
                 is_consumer_group: Callable[[str], bool] = lambda group_id: False,
                 is_simple_group: Callable[[str], bool] = lambda group_id: False) -> None:
        self.config = config
        self.timer = timer
        self.outbox = outbox
        self._now_ms = now_ms
        self._new_member_suffix = new_member_suffix
        self._is_consumer_group = is_consumer_group
        self._is_simple_group = is_simple_group
        self.groups: dict[str, ClassicGroup] = {}
        self._loaded_metadata: dict[str, GroupMetadataValue | None] = {}

    @property
    def now_ms(self) -> int:
        return self._now_ms()

    def group(self, group_id: str) -> ClassicGroup | None:
        """The classic group, or a stand-in Empty group for a simple one (not kept)."""
        group = self.groups.get(group_id)
        if group is None and group_id and self._is_simple_group(group_id):
            group = ClassicGroup(group_id, now_ms=self.now_ms)
        return group

    def _write(self, facts: list[tuple[str, Fact]], on_done: Callable[[ErrorCode], None] | None = None) -> None:
        self.outbox.write(facts, on_done)

    # ============================================================ JoinGroup
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
        if self._is_consumer_group(group_id):
            # Kafka would migrate a classic member into it (KIP-848 online upgrade): not served.
            waiter.complete(JoinResult(E.INCONSISTENT_GROUP_PROTOCOL, member_id))
            return waiter
        unknown = member_id == ""
        group = self.group(group_id)
        if group is None:
            if not unknown:
                waiter.complete(JoinResult(E.UNKNOWN_MEMBER_ID, member_id))
                return waiter
            group = ClassicGroup(group_id, now_ms=self.now_ms)
        # A JoinGroup makes a group of its own of a new id, or of a simple group.
        self.groups.setdefault(group_id, group)
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
                        w.complete(JoinResult(write_error_to_response(error), "", generation,
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
    ) -> Waiter[SyncResult]:
        waiter: Waiter[SyncResult] = Waiter()
        if not group_id:
            waiter.complete(SyncResult(E.INVALID_GROUP_ID))
            return waiter
        group = self.group(group_id)
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
                            self._reset_and_propagate(group, write_error_to_response(err))
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
    def heartbeat(self, *, group_id: str, member_id: str, group_instance_id: str | None,
                  generation_id: int) -> ErrorCode:
        if not group_id:
            return E.INVALID_GROUP_ID
        group = self.group(group_id)
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
    def leave_group(self, *, group_id: str, members: Iterable[tuple[str, str | None]]) -> LeaveResult:
        """``members``: (member id, group instance id) pairs; an empty member id with an
        instance id removes that static member administratively."""
        if not group_id:
            return LeaveResult(E.INVALID_GROUP_ID)
        group = self.group(group_id)
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
    def validate_offset_commit(self, group_id: str, member_id: str, instance_id: str | None,
                               generation_id: int, api_version: int) -> ClassicGroup | None:
        """May this member commit? Raises ValidationError if not; returns the group, or
        None for a new simple group (a consumer without group management, or an admin
        client, committing with generation -1: the offsets alone make the group)."""
        if not group_id:
            raise ValidationError(E.INVALID_GROUP_ID)
        group = self.group(group_id)
        if group is None:
            if generation_id < 0:
                return None
            raise ValidationError(E.GROUP_ID_NOT_FOUND if api_version >= 9 else E.ILLEGAL_GENERATION)
        if group.is_in(S.DEAD):
            raise ValidationError(E.COORDINATOR_NOT_AVAILABLE)
        if generation_id < 0 and group.is_in(S.EMPTY):
            return group
        if generation_id >= 0 or member_id or instance_id is not None:
            error = self._validate_member(group, member_id, instance_id)
            if error != E.NONE:
                raise ValidationError(error)
            if generation_id != group.generation_id:
                raise ValidationError(E.ILLEGAL_GENERATION)
        elif not group.is_in(S.EMPTY):
            # No member id and no generation (OffsetCommit v0 style): only for a group
            # nobody is consuming with.
            raise ValidationError(E.UNKNOWN_MEMBER_ID)
        if group.is_in(S.COMPLETING_REBALANCE):
            raise ValidationError(E.REBALANCE_IN_PROGRESS)
        if group.is_in(S.STABLE, S.PREPARING_REBALANCE) and group.has_member(member_id):
            # A commit proves the member alive, as a heartbeat would.
            self._reschedule_heartbeat(group, group.member(member_id))
        return group

    def offset_expiration(self, group: ClassicGroup) -> OffsetExpiration | None:
        """How the group's offsets expire (Kafka's OffsetExpirationCondition), or None
        while none may: a simple group's age from their commit; an empty group's from when
        it emptied; a stable consumer group's, for topics it no longer subscribes to, from
        their commit; any other group's never."""
        if group.protocol_type is None:
            return OffsetExpiration()
        if group.is_empty:
            return OffsetExpiration(base_timestamp_ms=group.state_timestamp_ms)
        if group.is_in(S.STABLE) and group.protocol_type == CONSUMER_PROTOCOL_TYPE \
                and group.subscribed_topics is not None:
            return OffsetExpiration(is_subscribed=group.is_subscribed_to)
        return None

    # ============================================================ admin
    def list_groups(self, states: set[str]) -> list[tuple[str, str, str]]:
        """(group id, protocol type, state) of the classic groups in ``states`` (all if
        empty; lower case)."""
        return [(g.group_id, g.protocol_type or "", str(g.state)) for g in self.groups.values()
                if not states or str(g.state).lower() in states]

    def remove_group(self, group: ClassicGroup) -> list[tuple[str, Fact]]:
        """Mark an Empty group Dead, forget it, and return the tombstone of its metadata
        (its offsets are the offset store's to delete)."""
        group_id = group.group_id
        group.transition_to(S.DEAD, self.now_ms)
        self.groups.pop(group_id, None)
        self.timer.cancel(("join", group_id))
        self.timer.cancel(("sync", group_id))
        return [(group_id, (GroupMetadataKey(group_id), None))]

    # ============================================================ loading
    def replay(self, key: GroupMetadataKey, value: GroupMetadataValue | None) -> None:
        """A group's membership record, in log order (the last one counts)."""
        self._loaded_metadata[key.group] = value

    def finish_load(self) -> None:
        """Build groups from the replayed records and arm their members' sessions."""
        now_ms = self.now_ms
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

    def describe_group(self, group_id: str) -> DescribedGroup:
        group = self.group(group_id)
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

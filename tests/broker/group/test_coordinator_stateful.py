"""Stateful test: simulated consumers drive the coordinator in random order.

Hypothesis interleaves joins (v3 and v4+ style, dynamic and static members, a second
incarnation of one static instance), syncs, heartbeats, leaves, offset commits, client
crashes, clock advances, successful and failed writes of ``__consumer_offsets`` and broker
restarts (replaying exactly what was written). The clients behave like real consumers: they
remember the member id and generation they were given, the leader computes a range-style
assignment over the members its JoinGroup response lists, and errors reset what a client
would reset.

What must hold after every step:
- no two current members own the same partition in the current generation (ownership is
  what a member's last successful SyncGroup gave it);
- every successful SyncGroup of generation G hands out what G's leader assigned to that
  member (or, for a static member that restarted without a rebalance, to its instance), and
  a Stable group's stored assignment is the leader's;
- the group's shape is coherent (Empty iff no members, leader is a member, instance map
  matches the members, parked requests only where the state allows them);
- an acknowledged commit is exactly what the coordinator serves, also after a restart;
- liveness: once clients fall silent and writes complete, every parked request is answered
  within the timeouts.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from group_harness import Harness, subscription
from kafkito.broker.group.coordinator import GroupConfig, OffsetCommitEntry
from kafkito.broker.group.state import GroupState, Waiter
from kafkito.protocol import ErrorCode

E = ErrorCode
S = GroupState
PARTITIONS = 6
SUB = subscription(["t"])
# Slots 3 and 4 are two incarnations of the same static instance (a zombie and its restart).
INSTANCES = [None, None, "static-a", "static-b", "static-b"]
PROTOCOL_CHOICES = [
    [("range", SUB)],
    [("range", SUB), ("roundrobin", SUB)],
    [("roundrobin", SUB), ("range", SUB)],
    [("roundrobin", SUB)],  # may be inconsistent with a range-only group
]


@dataclass
class Client:
    instance: str | None
    protocols: list
    session_ms: int
    rebalance_ms: int
    member_id: str = ""
    generation: int = -1
    is_leader: bool = False
    members: tuple = ()
    skip_assignment: bool = False
    join: Waiter | None = None
    sync: Waiter | None = None
    sync_generation: int = -1
    owned: tuple[int, bytes] | None = None  # (generation, assignment bytes)
    rejoin: bool = True  # told to (re)join: REBALANCE_IN_PROGRESS, or never joined


def encode_parts(parts: list[int]) -> bytes:
    return ",".join(map(str, sorted(parts))).encode()


def decode_parts(raw: bytes) -> set[int]:
    return {int(x) for x in raw.decode().split(",")} if raw else set()


class GroupMachine(RuleBasedStateMachine):
    @initialize(delay=st.sampled_from([0, 0, 3000]),
                protocols=st.lists(st.sampled_from(range(len(PROTOCOL_CHOICES))),
                                   min_size=len(INSTANCES), max_size=len(INSTANCES)),
                sessions=st.lists(st.integers(6000, 12000), min_size=len(INSTANCES), max_size=len(INSTANCES)),
                rebalances=st.lists(st.integers(6000, 20000), min_size=len(INSTANCES), max_size=len(INSTANCES)))
    def setup(self, delay, protocols, sessions, rebalances):
        # Retention far away: the model keeps every acknowledged commit.
        self.h = Harness(GroupConfig(group_initial_rebalance_delay_ms=delay,
                                     offsets_retention_ms=10**12))
        self.clients = [Client(inst, PROTOCOL_CHOICES[p], s, r)
                        for inst, p, s, r in zip(INSTANCES, protocols, sessions, rebalances)]
        self.assigned: dict[int, dict[str, bytes]] = {}  # generation -> member id -> bytes
        self.assigned_by_instance: dict[int, dict[str, bytes]] = {}
        self.committed: dict[tuple[str, int], int] = {}
        # Commits awaiting their answer (even if the client that sent them crashed).
        self.pending_commits: list[tuple[Waiter, dict]] = []
        self.outstanding: list[tuple[Waiter, int]] = []  # (waiter, issued at)
        self.max_generation = 0
        self.last_group = None

    # ------------------------------------------------------------------ plumbing
    @property
    def group(self):
        return self.h.c.groups.get("g")

    def track(self, w: Waiter) -> Waiter:
        self.outstanding.append((w, self.h.now))
        return w

    def absorb(self) -> None:
        """Let every client see the answers that have arrived."""
        if self.group is not self.last_group:
            # The group was deleted (DeleteGroups, or the retention sweep removing an empty
            # group without offsets) and maybe re-created: generations count from 0 again.
            self.forget_generations_above(self.group.generation_id if self.group else 0)
        for c in self.clients:
            if c.join is not None and c.join.done:
                r, c.join = c.join.result, None
                if r.error == E.MEMBER_ID_REQUIRED:
                    c.member_id = r.member_id
                elif r.error == E.NONE:
                    c.member_id, c.generation = r.member_id, r.generation_id
                    c.is_leader = r.leader == r.member_id
                    c.members, c.skip_assignment = r.members, r.skip_assignment
                    # The leader's list is the whole generation.
                    if c.is_leader and not r.skip_assignment:
                        ids = {m.member_id for m in r.members}
                        assert r.member_id in ids
                elif r.error in (E.UNKNOWN_MEMBER_ID, E.FENCED_INSTANCE_ID, E.ILLEGAL_GENERATION):
                    self.reset(c)
            if c.sync is not None and c.sync.done:
                r, c.sync = c.sync.result, None
                if r.error == E.NONE:
                    self.check_sync(c, c.sync_generation, r.assignment)
                    c.owned = (c.sync_generation, r.assignment)
                elif r.error == E.REBALANCE_IN_PROGRESS:
                    c.rejoin = True
                elif r.error in (E.UNKNOWN_MEMBER_ID, E.FENCED_INSTANCE_ID, E.ILLEGAL_GENERATION):
                    self.reset(c)
        still = []
        for w, offsets in self.pending_commits:
            if not w.done:
                still.append((w, offsets))
                continue
            for _topic, rows in w.result:
                for partition, error in rows:
                    if error == E.NONE:
                        self.committed[("t", partition)] = offsets[("t", partition)]
        self.pending_commits = still

    def reset(self, c: Client) -> None:
        c.member_id, c.generation, c.is_leader, c.owned = "", -1, False, None
        c.rejoin = True

    def expected_assignment(self, c: Client, generation: int) -> bytes:
        by_id = self.assigned.get(generation, {})
        if c.member_id in by_id:
            return by_id[c.member_id]
        if c.instance is not None:
            return self.assigned_by_instance.get(generation, {}).get(c.instance, b"")
        return b""

    def check_sync(self, c: Client, generation: int, got: bytes) -> None:
        assert generation in self.assigned, f"gen {generation} synced without a leader assignment"
        assert got == self.expected_assignment(c, generation), (c, generation, got)

    # ------------------------------------------------------------------ client rules
    @rule(i=st.integers(0, len(INSTANCES) - 1), v4=st.booleans(), v9=st.booleans())
    def join(self, i, v4, v9):
        c = self.clients[i]
        if c.join is not None and not c.join.done:
            return
        c.rejoin = False
        c.join = self.track(self.h.c.join_group(
            group_id="g", member_id=c.member_id, group_instance_id=c.instance,
            protocol_type="consumer", protocols=c.protocols, session_timeout_ms=c.session_ms,
            rebalance_timeout_ms=c.rebalance_ms, client_id=f"c{i}", client_host="/h",
            require_known_member_id=v4, supports_skip_assignment=v9, now_ms=self.h.now))
        self.absorb()

    @rule(i=st.integers(0, len(INSTANCES) - 1))
    def sync(self, i):
        c = self.clients[i]
        if c.generation < 0 or (c.sync is not None and not c.sync.done):
            return
        assignments = []
        if c.is_leader and not c.skip_assignment:
            ids = sorted(m.member_id for m in c.members)
            parts: dict[str, list[int]] = {mid: [] for mid in ids}
            for p in range(PARTITIONS):
                parts[ids[p % len(ids)]].append(p)
            assignments = [(mid, encode_parts(ps)) for mid, ps in parts.items()]
            mine = dict(assignments)
            prev = self.assigned.setdefault(c.generation, mine)
            assert prev == mine, "one generation, one member list"
            self.assigned_by_instance[c.generation] = {
                m.group_instance_id: mine[m.member_id] for m in c.members if m.group_instance_id}
        c.sync_generation = c.generation
        c.sync = self.track(self.h.c.sync_group(
            group_id="g", generation_id=c.generation, member_id=c.member_id,
            group_instance_id=c.instance, protocol_type="consumer",
            protocol_name=None, assignments=assignments, now_ms=self.h.now))
        self.absorb()

    @rule(i=st.integers(0, len(INSTANCES) - 1))
    def heartbeat(self, i):
        c = self.clients[i]
        if not c.member_id:
            return
        error = self.h.c.heartbeat(group_id="g", member_id=c.member_id, group_instance_id=c.instance,
                                   generation_id=c.generation, now_ms=self.h.now)
        if error in (E.UNKNOWN_MEMBER_ID, E.FENCED_INSTANCE_ID, E.ILLEGAL_GENERATION):
            self.reset(c)
        elif error == E.REBALANCE_IN_PROGRESS:
            c.rejoin = True
        self.absorb()

    def act(self, i: int, v9: bool, flush: bool) -> None:
        """What a well-behaved consumer does next: (re)join when told to, sync after a
        join, heartbeat otherwise; the broker then maybe writes what is queued."""
        c = self.clients[i]
        if c.join is None and c.sync is None:
            if c.rejoin or c.generation < 0:
                self.join(i, True, v9)
            elif c.owned is None or c.owned[0] != c.generation:
                self.sync(i)
            else:
                self.heartbeat(i)
        if flush:
            self.flush(False)

    def _round(self, alive, v9, ms):
        """Every live client takes its next step, the broker writes, time passes: a few
        rounds in a row let a group settle into a Stable generation."""
        for i in sorted(alive):
            self.act(i, v9, flush=False)
        self.flush(False)
        self.advance(ms)

    # Three copies: hypothesis picks rules uniformly, and orderly clients should dominate.
    @rule(alive=st.sets(st.integers(0, len(INSTANCES) - 1), min_size=1), v9=st.booleans(),
          ms=st.sampled_from([0, 100, 1000]))
    def round_1(self, alive, v9, ms):
        self._round(alive, v9, ms)

    @rule(alive=st.sets(st.integers(0, len(INSTANCES) - 1), min_size=1), v9=st.booleans(),
          ms=st.sampled_from([0, 100, 1000]))
    def round_2(self, alive, v9, ms):
        self._round(alive, v9, ms)

    @rule(alive=st.sets(st.integers(0, len(INSTANCES) - 1), min_size=1), v9=st.booleans(),
          ms=st.sampled_from([0, 100, 1000]))
    def round_3(self, alive, v9, ms):
        self._round(alive, v9, ms)

    @rule(i=st.integers(0, len(INSTANCES) - 1))
    def leave(self, i):
        c = self.clients[i]
        if not c.member_id:
            return
        self.h.c.leave_group(group_id="g", members=[(c.member_id, c.instance)], now_ms=self.h.now)
        self.reset(c)
        self.absorb()

    @rule(i=st.integers(0, len(INSTANCES) - 1), offset=st.integers(0, 1000))
    def commit(self, i, offset):
        c = self.clients[i]
        self.h.c.poll(self.h.now)
        g = self.group
        generation = c.generation if c.member_id else -1
        # What Kafka accepts: a generation-less commit while the group is Empty (or absent);
        # otherwise a current member of the current generation, outside the sync phase.
        if generation < 0:
            ok = g is None or g.state is S.EMPTY
        else:
            ok = (g is not None and c.member_id in g.members and generation == g.generation_id
                  and g.state in (S.STABLE, S.PREPARING_REBALANCE)
                  and (c.instance is None or g.static_members.get(c.instance) == c.member_id))
        parts = sorted(decode_parts(c.owned[1])) if c.owned else [0]
        offsets = {("t", p): offset for p in parts}
        w = self.track(self.h.c.commit_offsets(
            group_id="g", member_id=c.member_id, group_instance_id=c.instance,
            generation_id=generation,
            topics=[("t", [OffsetCommitEntry(p, offset) for p in parts])], api_version=8,
            now_ms=self.h.now))
        if not ok:
            assert w.done and all(e != E.NONE for _, rows in w.result for _, e in rows), w.result
        else:
            assert not w.done  # waits for its write
        self.pending_commits.append((w, offsets))
        self.absorb()

    @rule(i=st.integers(0, len(INSTANCES) - 1))
    def crash(self, i):
        """The client process dies: it forgets everything and stops sending."""
        c = self.clients[i]
        c.join = c.sync = None
        self.reset(c)
        self.absorb()

    # ------------------------------------------------------------------ broker rules
    @rule(ms=st.sampled_from([0, 1, 500, 1000, 1000, 2000, 3000, 6000, 10000]))
    def advance(self, ms):
        self.h.advance(ms)
        self.absorb()

    @rule(fail=st.booleans())
    def flush(self, fail):
        self.h.flush(E.KAFKA_STORAGE_ERROR if fail else E.NONE)
        self.absorb()

    @rule()
    def delete_group(self):
        w = self.track(self.h.c.delete_groups(["g"], now_ms=self.h.now))
        self.h.flush()
        self.absorb()  # commits written before the tombstones were acknowledged first
        if w.result == [("g", E.NONE)]:
            self.committed.clear()

    @rule()
    def restart(self):
        """Crash and restart the broker: unwritten facts are lost, parked requests die with
        their connections, clients carry on with what they know."""
        self.h.restart()
        self.outstanding = []
        self.pending_commits = []
        for c in self.clients:
            c.join = c.sync = None
        # A rebalance completes in memory (only the leader's assignment is written), so a
        # restart may resume an older generation and count the lost ones again.
        self.forget_generations_above(self.group.generation_id if self.group else 0)
        assert {tp: v.offset for tp, v in self.h.c.offsets.get("g", {}).items()} == self.committed

    def forget_generations_above(self, generation: int) -> None:
        self.max_generation = generation
        self.last_group = self.group
        for gen in [g for g in self.assigned if g > generation]:
            del self.assigned[gen]
            self.assigned_by_instance.pop(gen, None)
        for c in self.clients:
            # What a client learns from ILLEGAL_GENERATION on its next request (the model
            # does not let a client outrun that answer).
            if c.generation > generation or (c.owned and c.owned[0] > generation):
                self.reset(c)

    @precondition(lambda self: any(not w.done for w, _ in self.outstanding) or self.h.c.outbox)
    @rule()
    def settle(self):
        """Clients fall silent; within the timeouts every parked request is answered."""
        for _ in range(40):
            self.h.flush()
            self.h.advance(1000)
        self.h.flush()
        pending = [w for w, _ in self.outstanding if not w.done]
        assert not pending, f"{len(pending)} requests never answered; group {self.group!r}"
        self.absorb()

    # ------------------------------------------------------------------ invariants
    @invariant()
    def group_is_coherent(self):
        g = self.group
        if g is None:
            return
        if g.state is S.EMPTY:
            assert not g.members
        if g.state in (S.STABLE, S.COMPLETING_REBALANCE):
            assert g.members
        if g.members:
            assert g.leader_id in g.members
        assert g.static_members == {m.group_instance_id: mid for mid, m in g.members.items()
                                    if m.group_instance_id is not None}
        for m in g.members.values():
            if m.sync_waiter is not None:
                assert g.state is S.COMPLETING_REBALANCE
            if m.join_waiter is not None:
                assert g.state is S.PREPARING_REBALANCE or (g.state is S.STABLE and m.is_static)
        assert g.generation_id >= self.max_generation
        self.max_generation = g.generation_id

    @invariant()
    def no_partition_owned_twice(self):
        g = self.group
        if g is None:
            return
        owner: dict[int, int] = {}
        for i, c in enumerate(self.clients):
            if (c.owned is None or c.owned[0] != g.generation_id or c.member_id not in g.members):
                continue
            for p in decode_parts(c.owned[1]):
                assert p not in owner, f"partition {p} owned by clients {owner[p]} and {i}"
                owner[p] = i

    @invariant()
    def stable_group_holds_the_leaders_assignment(self):
        g = self.group
        if g is None or g.state is not S.STABLE:
            return
        gen = g.generation_id
        assert gen in self.assigned, "Stable without the leader's assignment"
        by_id, by_inst = self.assigned[gen], self.assigned_by_instance.get(gen, {})
        for mid, m in g.members.items():
            want = by_id.get(mid, by_inst.get(m.group_instance_id, b"") if m.is_static else b"")
            assert m.assignment == want, (mid, m.assignment, want)

    @invariant()
    def offsets_are_what_was_acknowledged(self):
        # Everything acknowledged is served; anything served was acknowledged or is a
        # commit whose write succeeded but whose answer the client has not read yet.
        served = self.h.c.offsets.get("g", {})
        for tp, off in self.committed.items():
            assert tp in served, (tp, off)
        pending_ok = {tp for w, o in self.pending_commits for tp in o}
        for tp, v in served.items():
            assert self.committed.get(tp) == v.offset or tp in pending_ok, (tp, v)


TestGroupCoordinatorModel = GroupMachine.TestCase
# Long enough runs for several generations of a few members (the suite profile's
# max_examples still applies).
TestGroupCoordinatorModel.settings = settings(
    settings(), stateful_step_count=100, max_examples=max(200, settings().max_examples))

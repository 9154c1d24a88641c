"""Stateful test: simulated KIP-848 consumers drive the coordinator in random order.

Hypothesis interleaves joins, heartbeats, leaves (dynamic and static), clients finishing
a revocation (it takes them a while), crashes (a client falls silent), clock advances past session and rebalance timeouts, partitions added to a
topic, and the two server assignors. The clients behave as real ones do (consumer_client.py).

What must hold after every step:
- safety: no partition is owned by two members on the coordinator's side (assigned or
  pending revocation), and what a live client believes it owns is part of what the
  coordinator records for it; so no two live clients ever own one partition;
- shape: the group's epochs and its member/instance maps are coherent;
- liveness: once every live client keeps heartbeating, each converges to its target
  assignment, the group is Stable, and every subscribed partition is owned.
"""

from __future__ import annotations

import itertools

from consumer_client import Client
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from kafkito.broker.group.consumer_group import MemberState
from kafkito.broker.group.coordinator import GroupConfig, GroupCoordinator
from kafkito.protocol import ErrorCode

E = ErrorCode

CFG = GroupConfig(group_consumer_session_timeout_ms=10_000)
SLOTS = 5
INSTANCES = [None, None, None, "static-a", "static-a"]  # 3 and 4: two incarnations of one instance
TOPIC_CHOICES = [["a"], ["a", "b"], ["b"]]


class ConsumerGroupMachine(RuleBasedStateMachine):
    @initialize(assignor=st.sampled_from([None, "uniform", "range"]))
    def setup(self, assignor):
        ids = itertools.count()
        self.coord = GroupCoordinator(CFG, new_member_suffix=lambda: f"m{next(ids)}")
        self.now = 1_000_000
        self.meta = {"a": 3, "b": 2}
        self.clients = [Client(self.coord, "g", TOPIC_CHOICES[i % 3], instance_id=INSTANCES[i],
                               assignor=assignor, rebalance_timeout_ms=4000, lazy=True)
                        for i in range(SLOTS)]
        self.alive = [False] * SLOTS  # the client process runs (it heartbeats when told to)

    def group(self):
        return self.coord.consumer.groups.get("g")

    @rule(i=st.integers(0, SLOTS - 1))
    def heartbeat(self, i):
        self.alive[i] = True
        self.clients[i].heartbeat(self.now, self.meta)

    @rule(i=st.integers(0, SLOTS - 1), static=st.booleans())
    def leave(self, i, static):
        c = self.clients[i]
        if c.joined and self.alive[i]:
            c.leave(self.now, static=static and c.instance_id is not None)
            self.alive[i] = False

    @rule(i=st.integers(0, SLOTS - 1))
    def crash(self, i):
        """The process dies: its member lingers until the session expires; a restart
        starts over with a fresh client (same instance id, if static)."""
        old = self.clients[i]
        self.alive[i] = False
        self.clients[i] = Client(self.coord, "g", old.topics, instance_id=old.instance_id,
                                 assignor=old.assignor, rebalance_timeout_ms=old.rebalance_timeout_ms,
                                 lazy=True)

    @rule(i=st.integers(0, SLOTS - 1))
    def finish_revocation(self, i):
        self.clients[i].finish_revocation()

    @rule(ms=st.sampled_from([100, 1000, 4000, 10_000]))
    def advance(self, ms):
        self.now += ms
        self.coord.poll(self.now)

    @rule(topic=st.sampled_from(["a", "b"]))
    def add_partition(self, topic):
        if self.meta[topic] < 6:
            self.meta[topic] += 1

    # ------------------------------------------------------------ invariants
    @invariant()
    def no_partition_has_two_owners(self):
        g = self.group()
        seen: dict[tuple[str, int], str] = {}
        if g is not None:
            for m in g.members.values():
                for tps in (m.assigned, m.pending_revocation):
                    for t, ps in tps.items():
                        for p in ps:
                            assert (t, p) not in seen, f"{(t, p)} owned by {seen[(t, p)]} and {m.member_id}"
                            seen[(t, p)] = m.member_id
        claimed: dict[tuple[str, int], int] = {}
        for i, c in enumerate(self.clients):
            if not c.joined:
                continue
            member = g.members.get(c.member_id) if g is not None else None
            if member is None or member.member_epoch < 0:
                continue  # a zombie: it learns on its next heartbeat and drops everything
            for tp in c.partitions():
                assert seen.get(tp) == c.member_id, f"client {i} owns {tp} the coordinator gave {seen.get(tp)}"
                assert tp not in claimed
                claimed[tp] = i

    @invariant()
    def group_is_coherent(self):
        g = self.group()
        if g is None:
            return
        assert g.members and g.assignment_epoch == g.group_epoch
        assert set(g.target) == set(g.members)
        for iid, mid in g.static_members.items():
            assert g.members[mid].instance_id == iid
        for m in g.members.values():
            assert m.member_epoch <= g.group_epoch
            assert (m.state == MemberState.UNREVOKED_PARTITIONS) == bool(m.pending_revocation)

    @rule()
    def converge(self):
        """Every live client heartbeats until nothing changes: all reach the target."""
        live = [c for i, c in enumerate(self.clients) if self.alive[i]]
        if not live:
            return
        for _ in range(4 * SLOTS + 4):
            for c in live:
                c.heartbeat(self.now, self.meta)
                c.finish_revocation()
        # Members whose clients died linger until their session ends: live clients keep
        # heartbeating past it.
        for _ in range(CFG.group_consumer_session_timeout_ms // 1000 + 1):
            self.now += 1000
            for c in live:
                c.heartbeat(self.now, self.meta)
                c.finish_revocation()
        for _ in range(4 * SLOTS + 4):
            for c in live:
                c.heartbeat(self.now, self.meta)
                c.finish_revocation()
        g = self.group()
        assert g is not None and g.state == "Stable", g and g.state
        held = {c.instance_id for c in live if c.joined}
        for c in live:
            if not c.joined:
                # Only a second incarnation of a static instance another one holds.
                assert c.instance_id in held and c.last.error == E.UNRELEASED_INSTANCE_ID
                continue
            m = g.members[c.member_id]
            target = {t: ps for t, ps in g.target[c.member_id].items() if ps}
            assert c.owned == target == m.assigned and not c.revoking
        live = [c for c in live if c.joined]
        owned = set().union(*(c.partitions() for c in live))
        subscribed = {t for c in live for t in c.topics}
        assert owned == {(t, p) for t in subscribed for p in range(self.meta[t])}


TestConsumerGroupMachine = ConsumerGroupMachine.TestCase

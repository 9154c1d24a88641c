"""Static membership (KIP-345) with real clients: a member that restarts under the same
``group.instance.id`` within its session timeout gets its partitions back without a
rebalance; the other member never notices."""

from __future__ import annotations

import time

import pytest
from e2e.test_groups_rebalance import PARTITIONS, Member, balanced, produce, wait_until

pytestmark = pytest.mark.e2e

SESSION_MS = 6000  # long enough for a member process to restart within it


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_static_member_restart_keeps_assignment_without_rebalance(gbroker, client):
    bootstrap = gbroker.bootstrap_servers
    topic, group = f"static-{client}", f"static-g-{client}"
    gbroker.create_topic(topic, PARTITIONS)
    members = []
    try:
        a = Member(client, bootstrap, group, topic, instance="node-a", session_ms=SESSION_MS)
        b = Member(client, bootstrap, group, topic, instance="node-b", session_ms=SESSION_MS)
        members += [a, b]
        wait_until(lambda: balanced([a, b]), 30, f"balanced: A={a.assigned} B={b.assigned}")
        time.sleep(0.5)  # let a late second rebalance (metadata refresh) settle
        a_events, b_had = len(a.events), list(b.assigned)
        produce(bootstrap, topic, "x", 2)
        wait_until(lambda: len(a.records) + len(b.records) >= 2 * PARTITIONS, 20, "consumed")
        b.commit()
        b.kill()  # a static member sends no LeaveGroup anyway; its session keeps its place
        b2 = Member(client, bootstrap, group, topic, instance="node-b", session_ms=SESSION_MS)
        members.append(b2)
        wait_until(lambda: b2.assigned, 20, "restarted static member assigned")
        assert b2.assigned == b_had, "the restarted instance gets its old partitions back"
        time.sleep(1.0)
        assert not [e for e in a.events[a_events:] if e["event"] == "assigned"], \
            "the other member saw a rebalance"
        # The restarted member reads on from the committed offsets.
        produce(bootstrap, topic, "y", 1)
        wait_until(lambda: len(b2.records) >= len(b_had), 20, "restarted member consumed")
        assert {(p, o) for p, o, _ in b2.records} == {(p, 2) for p in b_had}
    finally:
        for m in members:
            m.stop_quietly()

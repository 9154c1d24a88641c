"""Consumer groups with real clients: rebalances they trust, offsets they resume from.

Each member is a separate process (groups_member.py) so a test can kill one with SIGKILL:
the group must notice through the session timeout alone. The broker runs with a low
``group.min.session.timeout.ms`` so members may use 2 s sessions and the module stays fast.

For every client (confluent-kafka with the range and the cooperative-sticky assignor,
kafka-python, aiokafka), on a 4-partition topic:
1. two members get disjoint assignments covering every partition and read every record
   exactly once between them; they commit;
2. a third member joins: the partitions are redistributed over all three;
3. one member is killed without leaving: after its session timeout its partitions move to
   the survivors, who resume at the committed offsets (no committed record delivered
   again, none skipped);
4. a fresh member of the group, after the survivors commit and leave, starts exactly
   where they stopped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest
from e2e.clients import PRODUCERS, Msg


pytestmark = pytest.mark.e2e

SESSION_MS = 2000
PARTITIONS = 4
MEMBER_SCRIPT = os.path.join(os.path.dirname(__file__), "groups_member.py")


class Member:
    """A group member process and what it has reported."""

    def __init__(self, client: str, bootstrap: str, group: str, topic: str, strategy: str | None = None,
                 instance: str | None = None, session_ms: int | None = None):
        args = [sys.executable, MEMBER_SCRIPT, client, bootstrap, group, topic, str(session_ms or SESSION_MS),
                strategy or ""]
        if instance:
            args.append(instance)
        # stderr goes to a file: a pipe nobody reads would block a chatty client.
        self.stderr = tempfile.NamedTemporaryFile("w+", prefix="group-member-", suffix=".log", delete=not os.environ.get("GROUP_MEMBER_DEBUG"))
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True)
        self.assigned: list[int] = []
        self.records: list[tuple[int, int, str]] = []
        self.events: list[dict] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            event = json.loads(line)
            with self._lock:
                self.events.append(event)
                if event["event"] == "assigned":
                    self.assigned = event["partitions"]
                elif event["event"] == "record":
                    self.records.append((event["partition"], event["offset"], event["value"]))

    def send(self, command: str, wait_for: str, timeout_s: float = 20) -> dict:
        n = len(self.events)
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        got = wait_until(lambda: next((e for e in self.events[n:] if e["event"] == wait_for), None),
                         timeout_s, f"{command}: no {wait_for!r} event")
        return got

    def commit(self) -> dict[int, int]:
        return {int(p): o for p, o in self.send("commit", "committed")["offsets"].items()}

    def close(self) -> None:
        self.send("close", "closed")
        self.proc.wait(10)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop_quietly(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def seen_since(self, mark: int) -> list[tuple[int, int, str]]:
        with self._lock:
            return list(self.records[mark:])


def wait_until(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s: {what}")
        time.sleep(0.05)


def balanced(members: list[Member]) -> bool:
    """Every member owns something, nobody shares, every partition is owned."""
    owned = [set(m.assigned) for m in members]
    union = set().union(*owned)
    return (all(owned) and sum(len(o) for o in owned) == len(union)
            and union == set(range(PARTITIONS)))


def produce(bootstrap: str, topic: str, tag: str, per_partition: int) -> set[str]:
    msgs = [Msg(None, f"{tag}-{p}-{i}".encode(), partition=p)
            for i in range(per_partition) for p in range(PARTITIONS)]
    PRODUCERS["confluent"](bootstrap, topic, msgs, acks="all")
    return {m.value.decode() for m in msgs}


CASES = [("confluent", "range"), ("confluent", "cooperative-sticky"), ("kafka-python", None), ("aiokafka", None)]


@pytest.mark.parametrize("client, strategy", CASES, ids=[f"{c}-{s}" if s else c for c, s in CASES])
def test_rebalance_kill_and_resume(gbroker, client, strategy):
    bootstrap = gbroker.bootstrap_servers
    topic = f"grp-{client}-{strategy}"
    group = f"g-{client}-{strategy}"
    gbroker.create_topic(topic, PARTITIONS)
    members: list[Member] = []
    try:
        # 1. Two members: disjoint, covering; every record read once; commit.
        a = Member(client, bootstrap, group, topic, strategy)
        b = Member(client, bootstrap, group, topic, strategy)
        members += [a, b]
        wait_until(lambda: balanced([a, b]), 30, f"two balanced members: A={a.assigned} B={b.assigned}")
        phase1 = produce(bootstrap, topic, "one", 5)
        wait_until(lambda: len(a.records) + len(b.records) >= len(phase1), 20, "phase 1 consumed")
        seen = [r[2] for r in a.records + b.records]
        assert sorted(seen) == sorted(phase1), "each record exactly once"
        assert {r[0] for r in a.records} <= set(a.assigned) and {r[0] for r in b.records} <= set(b.assigned)
        committed = {**a.commit(), **b.commit()}
        assert committed == {p: 5 for p in range(PARTITIONS)}

        # 2. A third member: everybody gets a share.
        c = Member(client, bootstrap, group, topic, strategy)
        members.append(c)
        wait_until(lambda: balanced([a, b, c]), 30,
                   f"three balanced members: A={a.assigned} B={b.assigned} C={c.assigned}")

        # 3. Kill one without leaving: its partitions move after the session timeout.
        victim, survivors = b, [a, c]
        killed_at = time.monotonic()
        victim.kill()
        wait_until(lambda: balanced(survivors), 30,
                   f"survivors take over: A={a.assigned} C={c.assigned}")
        took = time.monotonic() - killed_at
        assert took >= SESSION_MS / 1000 * 0.9, f"rebalanced after {took:.1f} s, before the session expired"
        marks = [len(m.records) for m in survivors]
        phase2 = produce(bootstrap, topic, "two", 3)
        wait_until(lambda: sum(len(m.seen_since(k)) for m, k in zip(survivors, marks)) >= len(phase2),
                   20, "phase 2 consumed")
        time.sleep(0.3)  # a redelivery would show up now
        got = [r for m, k in zip(survivors, marks) for r in m.seen_since(k)]
        assert sorted(r[2] for r in got) == sorted(phase2), "resumed at the committed offsets, no gap"
        assert all(offset >= 5 for _, offset, _ in got), "a committed record was delivered again"

        # 4. Survivors commit and leave; a new member starts where they stopped.
        for m in survivors:
            m.commit()
            m.close()
        phase3 = produce(bootstrap, topic, "three", 1)
        d = Member(client, bootstrap, group, topic, strategy)
        members.append(d)
        wait_until(lambda: len(d.records) >= len(phase3), 30, "new member consumed phase 3")
        time.sleep(0.3)
        assert sorted(r[2] for r in d.records) == sorted(phase3)
        assert {(r[0], r[1]) for r in d.records} == {(p, 8) for p in range(PARTITIONS)}
    finally:
        for m in members:
            m.stop_quietly()

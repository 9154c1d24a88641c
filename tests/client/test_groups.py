"""A group of three kafkito consumers rebalancing through join, leave and crash: every
record is processed, no partition is owned by two live members at once, and the members
that survive never see a record twice."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from kafkito.client import Admin, Consumer, Producer

pytestmark = pytest.mark.anyio
PARTITIONS = 6
MEMBER = Path(__file__).with_name("group_member.py")


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["range", "roundrobin", "cooperative-sticky", "kip848"])
async def test_three_members_join_leave_and_crash_without_loss_or_double_ownership(kbroker, topic_name, strategy):
    bootstrap = kbroker.bootstrap_servers
    group = f"g-{topic_name}"
    async with Admin(bootstrap) as a:
        await a.create_topics({topic_name: {"num_partitions": PARTITIONS}})
    total = 0
    members: dict[str, Consumer] = {}
    seen: dict[str, list[tuple[int, int]]] = {"a": [], "b": []}
    overlap: list = []
    stop = anyio.Event()

    async def produce(n):
        nonlocal total
        async with Producer(bootstrap, linger_ms=2) as p:
            for i in range(n):
                await p.produce(topic_name, value=b"%d" % (total + i), key=b"%d" % (total + i))
            await p.flush()
        total += n

    async def member(name, leave_after: float | None):
        kip848 = strategy == "kip848"
        async with Consumer(bootstrap, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False,
                            session_timeout_ms=1000, heartbeat_interval_ms=100,
                            group_protocol="consumer" if kip848 else "classic",
                            partition_assignment_strategy="range" if kip848 else strategy) as c:
            c.subscribe([topic_name])
            members[name] = c
            end = None if leave_after is None else time.monotonic() + leave_after
            while not stop.is_set() and (end is None or time.monotonic() < end):
                recs = await c.poll(timeout=0.1)
                seen[name] += [(r.partition, r.offset) for r in recs]
                if recs:
                    await c.commit()
                # One event loop runs both members: this check sees one instant.
                live = [m.assignment() for m in members.values() if m is not c] + [c.assignment()]
                flat = [tp for s in live for tp in s]
                if len(flat) != len(set(flat)):
                    overlap.append(live)
            members.pop(name)

    crashed = subprocess.Popen([sys.executable, str(MEMBER), bootstrap, topic_name, group, strategy],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert crashed.stdout.readline().strip() == "ready"
        async with anyio.create_task_group() as tg:
            await produce(300)
            tg.start_soon(member, "a", None)          # joins the crasher
            await anyio.sleep(1.0)
            await produce(300)
            tg.start_soon(member, "b", 3.0)           # joins, then leaves cleanly after 3 s
            await anyio.sleep(1.0)
            await produce(300)
            crashed.kill()                            # crashes: its session expires
            crashed.wait()
            await produce(300)
            await anyio.sleep(3.0)
            await produce(300)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                await anyio.sleep(0.2)
                if len(set(seen["a"]) | set(seen["b"]) | _lines(crashed)) >= total:
                    break
            stop.set()
    finally:
        if crashed.poll() is None:
            crashed.kill()
    from_crashed = _lines(crashed)
    survivors = seen["a"] + seen["b"]
    everything = set(survivors) | from_crashed
    expected = total
    assert len(everything) == expected, f"lost {expected - len(everything)} records"
    assert len(survivors) == len(set(survivors)), "a surviving member saw a record twice"
    assert not overlap, f"a partition owned twice: {overlap[:2]}"
    assert seen["a"] and seen["b"] and from_crashed, "every member took part"


_cache: dict[int, set] = {}


def _lines(proc) -> set:
    if proc.poll() is None:
        return _cache.get(proc.pid, set())
    if proc.pid not in _cache:
        out = set()
        for line in proc.stdout.read().splitlines():
            parts = line.split()
            if len(parts) == 2:
                out.add((int(parts[0]), int(parts[1])))
        _cache[proc.pid] = out
    return _cache[proc.pid]

"""One consumer-group member in its own process, driven over stdin/stdout.

The group e2e tests need members they can kill without a LeaveGroup (SIGKILL: no client
library can be made to "crash" in-process, their heartbeat threads keep the session
alive), so each member is this script, run as

    python groups_member.py CLIENT BOOTSTRAP GROUP TOPIC SESSION_MS [STRATEGY [INSTANCE_ID]]

with CLIENT one of confluent, kafka-python, aiokafka (an empty STRATEGY means the client's
default; INSTANCE_ID makes it a static member, KIP-345). It subscribes, consumes, and
writes one JSON object per line to stdout:

    {"event": "assigned", "partitions": [..]}       whenever its assignment changes
    {"event": "record", "partition": p, "offset": o, "value": "..."}
    {"event": "committed", "offsets": {"p": o}}      after a "commit" command
    {"event": "closed"}                              after a "close" command (LeaveGroup)

Commands arrive on stdin, one per line: "commit" (commit the consumed positions,
synchronously) and "close".
"""

from __future__ import annotations

import asyncio
import inspect
import json
import queue
import sys
import threading


def emit(**event) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def commands() -> queue.Queue:
    q: queue.Queue = queue.Queue()

    def read() -> None:
        for line in sys.stdin:
            q.put(line.strip())
        q.put("close")  # the test went away

    threading.Thread(target=read, daemon=True).start()
    return q


class Tracker:
    """Reports assignment changes and records; remembers positions to commit."""

    def __init__(self) -> None:
        self.assigned: list[int] | None = None
        self.positions: dict[int, int] = {}

    def assignment(self, partitions) -> None:
        parts = sorted(partitions)
        if parts != self.assigned:
            self.assigned = parts
            emit(event="assigned", partitions=parts)

    def record(self, partition: int, offset: int, value: bytes | None) -> None:
        self.positions[partition] = offset + 1
        emit(event="record", partition=partition, offset=offset, value=(value or b"").decode())

    def to_commit(self) -> dict[int, int]:
        # Only partitions still owned: committing a revoked one would be rejected or wrong.
        return {p: o for p, o in self.positions.items() if p in (self.assigned or [])}


async def drive(poll, assignment, commit, close) -> None:
    """The member loop, whatever the client: ``poll()`` gives (partition, offset, value)
    records; each callable may return an awaitable (aiokafka) or a value."""
    cmds, t = commands(), Tracker()
    while True:
        for partition, offset, value in await _maybe(poll()):
            t.record(partition, offset, value)
        t.assignment(assignment())
        while not cmds.empty():
            cmd = cmds.get()
            if cmd == "commit":
                offsets = t.to_commit()
                if offsets:
                    await _maybe(commit(offsets))
                emit(event="committed", offsets=offsets)
            elif cmd == "close":
                await _maybe(close())
                emit(event="closed")
                return


async def _maybe(value):
    return await value if inspect.isawaitable(value) else value


def run_confluent(bootstrap, group, topic, session_ms, strategy, instance) -> None:
    from confluent_kafka import Consumer, TopicPartition

    conf = {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
            "enable.auto.commit": False, "session.timeout.ms": session_ms,
            "heartbeat.interval.ms": max(100, session_ms // 10),
            "partition.assignment.strategy": strategy or "range",
            "topic.metadata.refresh.interval.ms": 1000}
    if instance:
        conf["group.instance.id"] = instance
    c = Consumer(conf)
    c.subscribe([topic])

    def poll():
        m = c.poll(0.05)
        return [] if m is None or m.error() else [(m.partition(), m.offset(), m.value())]

    asyncio.run(drive(
        poll, lambda: [tp.partition for tp in c.assignment()],
        lambda offsets: c.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()],
                                 asynchronous=False),
        c.close))


def run_kafka_python(bootstrap, group, topic, session_ms, strategy, instance) -> None:
    from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition

    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                      enable_auto_commit=False, session_timeout_ms=session_ms,
                      heartbeat_interval_ms=max(100, session_ms // 10), metadata_max_age_ms=1000,
                      **({"group_instance_id": instance} if instance else {}))

    def poll():
        # A long poll: kafka-python 3.0.12 loses a rebalance whose SyncGroup is in flight
        # when poll() times out after the leader assigned (the join is never completed and
        # the member stops heartbeating); a long timeout makes that window rare.
        return [(tp.partition, r.offset, r.value) for tp, rs in c.poll(timeout_ms=1000).items() for r in rs]

    asyncio.run(drive(
        poll, lambda: [tp.partition for tp in c.assignment()],
        lambda offsets: c.commit({TopicPartition(topic, p): OffsetAndMetadata(o, "", -1)
                                  for p, o in offsets.items()}),
        c.close))


def run_aiokafka(bootstrap, group, topic, session_ms, strategy, instance) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.structs import OffsetAndMetadata

    async def main() -> None:
        c = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                             enable_auto_commit=False, session_timeout_ms=session_ms,
                             heartbeat_interval_ms=max(100, session_ms // 10), metadata_max_age_ms=1000)
        await c.start()

        async def poll():
            batches = await c.getmany(timeout_ms=50)
            return [(tp.partition, r.offset, r.value) for tp, rs in batches.items() for r in rs]

        await drive(
            poll, lambda: [tp.partition for tp in c.assignment()],
            lambda offsets: c.commit({TopicPartition(topic, p): OffsetAndMetadata(o, "")
                                      for p, o in offsets.items()}),
            c.stop)

    asyncio.run(main())


RUNNERS = {"confluent": run_confluent, "kafka-python": run_kafka_python, "aiokafka": run_aiokafka}

if __name__ == "__main__":
    import logging
    import os

    if os.environ.get("GROUP_MEMBER_DEBUG"):
        logging.basicConfig(level=logging.DEBUG)
    client, bootstrap, group, topic, session_ms = sys.argv[1:6]
    strategy = sys.argv[6] if len(sys.argv) > 6 and sys.argv[6] else None
    instance = sys.argv[7] if len(sys.argv) > 7 else None
    RUNNERS[client](bootstrap, group, topic, int(session_ms), strategy, instance)

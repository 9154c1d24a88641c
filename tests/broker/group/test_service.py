"""GroupService, the trio glue, under trio's MockClock: timers fire on their own, parked
requests wake, writes reach the real log and come back at the next load.

Storage is real (a LogManager in tmp_path); only the broker's partition manager is stood
in for, by one that appends and fsyncs inline instead of in worker threads, so virtual
time never jumps while a thread runs.
"""

from __future__ import annotations

from types import SimpleNamespace

import trio
import trio.testing

from group_harness import assignment, subscription
from kafkito.broker.config import load_config
from kafkito.broker.group.coordinator import OffsetCommitEntry
from kafkito.broker.group.service import OFFSETS_TOPIC, GroupService
from kafkito.broker.group.state import GroupState
from kafkito.protocol import ErrorCode
from kafkito.storage import KafkaStorageError, LogManager

E = ErrorCode


class InlinePartitions:
    """The broker's PartitionManager surface the service uses, without threads."""

    def __init__(self, logs: LogManager) -> None:
        self.logs = logs
        self.fail_flush = False
        self.appends = 0

    def ensure_internal_topic(self, name, num_partitions, configs):
        return self.logs.topic(name) or self.logs.create_topic(name, num_partitions, configs)

    def append_nowait(self, topic, partition, records, *, schedule_flush=True, origin="client"):
        plog = self.logs.log(topic, partition)
        self.appends += 1
        return plog, plog.append(records, 0, origin=origin)

    async def flush_to(self, plog, offset):
        await trio.sleep(0.005)  # an fsync takes a while, in virtual time
        if self.fail_flush:
            raise KafkaStorageError("disk gone")
        plog.flush()


def make_service(logs) -> tuple[GroupService, InlinePartitions]:
    manager, config = logs
    partitions = InlinePartitions(manager)
    state = SimpleNamespace(config=config, logs=manager, partitions=partitions, clock=None)
    service = GroupService(state, now_ms=lambda: int(trio.current_time() * 1000))
    return service, partitions


def run(test):
    """Run an async test body under MockClock (virtual time jumps when all tasks wait)."""
    trio.run(test, clock=trio.testing.MockClock(autojump_threshold=0))


async def join_and_sync(service, group="g", session_ms=10_000):
    first = service.join_group(group_id=group, member_id="", group_instance_id=None,
                               protocol_type="consumer", protocols=[("range", subscription(["t"]))],
                               session_timeout_ms=session_ms, rebalance_timeout_ms=20_000, client_id="c",
                               client_host="/h", require_known_member_id=True)
    member_id = first.result.member_id
    joined = await service.wait(service.join_group(
        group_id=group, member_id=member_id, group_instance_id=None,
        protocol_type="consumer", protocols=[("range", subscription(["t"]))],
        session_timeout_ms=session_ms, rebalance_timeout_ms=20_000, client_id="c",
        client_host="/h", require_known_member_id=True))
    synced = await service.wait(service.sync_group(
        group_id=group, generation_id=joined.generation_id, member_id=member_id,
        group_instance_id=None, assignments=[(member_id, assignment({"t": [0]}))]))
    assert synced.error == E.NONE
    return joined


def test_session_expires_on_the_timer_task_alone(logs):
    async def body():
        service, _ = make_service(logs)
        await service.load()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(service.run)
            await join_and_sync(service)
            group = service.coordinator.groups["g"]
            assert group.state is GroupState.STABLE
            await trio.sleep(9.9)
            assert group.state is GroupState.STABLE
            await trio.sleep(0.2)  # nobody calls the service: its timer notices the expiry
            assert group.state is GroupState.EMPTY
            nursery.cancel_scope.cancel()

    run(body)


def test_parked_join_wakes_when_the_rebalance_completes(logs):
    async def body():
        service, _ = make_service(logs)
        await service.load()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(service.run)
            a = await join_and_sync(service)
            results = {}

            async def second():
                results["b"] = await join_and_sync(service)

            nursery.start_soon(second)
            await trio.sleep(1)
            assert "b" not in results  # parked: waiting for the first member to rejoin
            assert service.heartbeat(group_id="g", member_id=a.member_id, group_instance_id=None,
                                     generation_id=1) == E.REBALANCE_IN_PROGRESS
            a2 = await service.wait(service.join_group(
                group_id="g", member_id=a.member_id, group_instance_id=None,
                protocol_type="consumer", protocols=[("range", subscription(["t"]))],
                session_timeout_ms=10_000, rebalance_timeout_ms=20_000, client_id="c",
                client_host="/h", require_known_member_id=True))
            # b's SyncGroup is parked until the leader's arrives.
            await trio.sleep(1)
            assert "b" not in results
            members = [m.member_id for m in a2.members]
            await service.wait(service.sync_group(
                group_id="g", generation_id=2, member_id=a.member_id, group_instance_id=None,
                assignments=[(mid, assignment({"t": [i]})) for i, mid in enumerate(members)]))
            await trio.sleep(0.1)
            assert a2.generation_id == results["b"].generation_id == 2
            nursery.cancel_scope.cancel()

    run(body)


def test_commit_is_answered_after_the_fsync_and_survives_a_reload(logs):
    async def body():
        service, partitions = make_service(logs)
        await service.load()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(service.run)
            start = trio.current_time()
            waiter = service.commit_offsets(group_id="s", member_id="", group_instance_id=None,
                                            generation_id=-1, topics=[("t", [OffsetCommitEntry(0, 42, metadata="m")])],
                                            api_version=8)
            assert await service.wait(waiter) == [("t", [(0, E.NONE)])]
            assert trio.current_time() - start >= 0.005  # waited for the (virtual) fsync
            nursery.cancel_scope.cancel()
        assert partitions.appends == 1
        again, _ = make_service(logs)
        await again.load()
        (row,) = again.fetch_offsets(group_id="s", topics=None)
        assert [(f.partition, f.offset, f.metadata) for f in row[1]] == [(0, 42, "m")]

    run(body)


def test_failed_fsync_answers_not_coordinator(logs):
    async def body():
        service, partitions = make_service(logs)
        await service.load()
        partitions.fail_flush = True
        async with trio.open_nursery() as nursery:
            nursery.start_soon(service.run)
            waiter = service.commit_offsets(group_id="s", member_id="", group_instance_id=None,
                                            generation_id=-1, topics=[("t", [OffsetCommitEntry(0, 1)])], api_version=8)
            assert await service.wait(waiter) == [("t", [(0, E.NOT_COORDINATOR)])]
            assert service.fetch_offsets(group_id="s", topics=None) == []
            nursery.cancel_scope.cancel()

    run(body)


def test_shutdown_writes_what_is_queued(logs):
    async def body():
        service, _ = make_service(logs)
        await service.load()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(service.run)
            service.commit_offsets(group_id="s", member_id="", group_instance_id=None,
                                   generation_id=-1, topics=[("t", [OffsetCommitEntry(0, 7)])], api_version=8)
            await service.shutdown()
            assert not service.coordinator.outbox
            nursery.cancel_scope.cancel()
        manager, _ = logs
        assert manager.log(OFFSETS_TOPIC, 0).log_end_offset == 1

    run(body)


def test_group_config_reads_the_broker_settings(tmp_path):
    from kafkito.broker.group.coordinator import GroupConfig

    config = load_config(environ={}, overrides=[
        ("log.dirs", str(tmp_path)), ("offsets.retention.minutes", "3"), ("group.max.size", "7"),
        ("group.initial.rebalance.delay.ms", "250"), ("offsets.topic.num.partitions", "4")])
    g = GroupConfig.from_broker_config(config)
    assert (g.offsets_retention_ms, g.group_max_size, g.group_initial_rebalance_delay_ms,
            g.offsets_topic_num_partitions) == (180_000, 7, 250, 4)

"""GroupService: the trio side of the group coordinator.

Theory of operation
-------------------
The pure ``GroupCoordinator`` decides; this module supplies what it leaves out:

* **Time.** Every call gets ``now_ms`` from the broker's clock. A timer task sleeps until
  the coordinator's next deadline (session expiry, rebalance and sync timeouts, the
  offset-retention sweep) and polls it; any request may move that deadline earlier, so
  each call wakes the timer task to look again. It never sleeps in a polling loop.
* **Waiting.** JoinGroup, SyncGroup, OffsetCommit and DeleteGroups return waiters; a
  handler ``await service.wait(waiter)``, which parks it on a ``trio.Event`` the waiter
  sets when the coordinator completes it. Trio runs one task at a time, so coordinator
  calls never interleave: the coordinator is owned by whichever task is calling it, and
  no lock is needed.
* **Writes.** One writer task drains the coordinator's outbox in order: the facts queued
  for each ``__consumer_offsets`` partition become one record batch, appended, and
  reported back with ``write_done``: at once for a group's membership record, after the
  fsync (acks=all, group-committed with any other appends) for offsets and tombstones,
  whose answers promise durability. Only then do offsets become visible and assignments
  take effect. A failed append is reported with its Kafka error and the coordinator
  answers accordingly.
* **Loading.** ``load()`` creates ``__consumer_offsets`` if missing (compacted), replays
  every record of every partition into the coordinator (in a worker thread: it reads the
  whole topic), then arms the timers. Until then handlers answer
  COORDINATOR_LOAD_IN_PROGRESS (the broker only accepts connections after loading, so a
  client sees it only if loading is ever made concurrent).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from kafkito.protocol import ErrorCode
from kafkito.storage.batch import build_batch

from .coordinator import GroupConfig, GroupCoordinator, Write
from .state import Waiter

log = logging.getLogger("kafkito.broker.group")

__all__ = ["GroupService", "OFFSETS_TOPIC"]

OFFSETS_TOPIC = "__consumer_offsets"
# Kafka's settings for the offsets topic (offsets.topic.segment.bytes etc.): compacted,
# with segments small enough for the cleaner to keep the topic small.
OFFSETS_TOPIC_CONFIGS = {
    "cleanup.policy": "compact",
    "segment.bytes": str(100 * 1024 * 1024),
}


class GroupService:
    def __init__(self, state, *, now_ms: Callable[[], int] | None = None) -> None:
        self.state = state
        self.config = GroupConfig.from_broker_config(state.config)
        self.now_ms: Callable[[], int] = now_ms or state.clock.now_ms
        self.coordinator = GroupCoordinator(self.config)
        self.loading = True
        self._timer_wakeup = trio.Event()  # a call may have moved the next deadline
        self._writer_wakeup = trio.Event()  # a call may have queued writes
        self._writer_idle = trio.Event()  # set whenever the writer finds nothing to do
        self._writing = False

    # ------------------------------------------------------------ lifecycle
    async def load(self) -> None:
        meta = self.state.partitions.ensure_internal_topic(
            OFFSETS_TOPIC, self.config.offsets_topic_num_partitions, dict(OFFSETS_TOPIC_CONFIGS))
        if meta.num_partitions != self.config.offsets_topic_num_partitions:
            # The topic outlives the setting: groups stay where they were written.
            log.info("%s has %d partitions (offsets.topic.num.partitions=%d): using %d",
                     OFFSETS_TOPIC, meta.num_partitions, self.config.offsets_topic_num_partitions,
                     meta.num_partitions)
            self.config = _replace(self.config, offsets_topic_num_partitions=meta.num_partitions)
            self.coordinator = GroupCoordinator(self.config)
        coordinator = self.coordinator
        logs = self.state.logs

        def replay_all() -> int:
            n = 0
            for p in range(meta.num_partitions):
                plog = logs.log(OFFSETS_TOPIC, p)
                if plog is None:
                    continue
                for batch in plog.batches():
                    if batch.is_control:
                        continue
                    for record in batch.records():
                        coordinator.replay(record.key, record.value)
                        n += 1
            return n

        n = await trio.to_thread.run_sync(replay_all)
        coordinator.finish_load(self.now_ms())
        self.loading = False
        log.info("group coordinator loaded %d records: %d groups, %d with offsets",
                 n, len(coordinator.groups), len(coordinator.offsets))

    async def run(self) -> None:
        """The timer and writer tasks; runs until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._timer_loop)
            nursery.start_soon(self._writer_loop)

    async def shutdown(self) -> None:
        """Write what is still queued (the last commits answered before shutdown)."""
        with trio.move_on_after(10):
            while self.coordinator.outbox or self._writing:
                self._writer_idle = trio.Event()
                self._kick()
                await self._writer_idle.wait()

    # ------------------------------------------------------------ calls from handlers
    def call(self, operation: str, **kwargs):
        """Run one coordinator operation at the broker's current time."""
        result = getattr(self.coordinator, operation)(now_ms=self.now_ms(), **kwargs)
        self._kick()
        return result

    async def wait(self, waiter: Waiter):
        """The waiter's result, once the coordinator has completed it."""
        if not waiter.done:
            event = trio.Event()
            waiter.notify = event.set
            await event.wait()
        return waiter.result

    def _kick(self) -> None:
        self._timer_wakeup.set()
        self._writer_wakeup.set()

    # ------------------------------------------------------------ background tasks
    async def _timer_loop(self) -> None:
        coordinator = self.coordinator
        while True:
            self._timer_wakeup = trio.Event()
            now = self.now_ms()
            coordinator.poll(now)
            if coordinator.outbox:
                self._writer_wakeup.set()
            deadline = coordinator.next_deadline_ms()
            with trio.move_on_after(max(0, deadline - now) / 1000 if deadline is not None else float("inf")):
                await self._timer_wakeup.wait()

    async def _writer_loop(self) -> None:
        coordinator = self.coordinator
        while True:
            self._writer_wakeup = trio.Event()
            writes = coordinator.take_writes()
            if not writes:
                self._writer_idle.set()
                await self._writer_wakeup.wait()
                continue
            self._writing = True
            try:
                await self._append(writes)
            finally:
                self._writing = False

    async def _append(self, writes: list[Write]) -> None:
        """One batch per partition, all partitions concurrently. A write counts once it is
        in the log, or, if ``durable``, once it is fsynced (acks=all)."""
        by_partition: dict[int, list[Write]] = {}
        for w in writes:
            by_partition.setdefault(w.partition, []).append(w)
        partitions = self.state.partitions
        coordinator = self.coordinator

        async def one(partition: int, ws: list[Write]) -> None:
            now = self.now_ms()
            records = [(key, value, None, now) for w in ws for key, value in w.records()]
            try:
                st, info = partitions.append_nowait(OFFSETS_TOPIC, partition, build_batch(records))
            except Exception as exc:
                error = _append_error(exc, partition, len(records))
                for w in ws:
                    coordinator.write_done(w, error)
                return
            durable = [w for w in ws if w.durable]
            for w in ws:
                if not w.durable:
                    coordinator.write_done(w, ErrorCode.NONE)
            if durable:
                error = ErrorCode.NONE
                try:
                    await partitions.flush_to(st, info.last_offset + 1)
                except Exception as exc:
                    error = _append_error(exc, partition, len(records))
                for w in durable:
                    coordinator.write_done(w, error)
            self._timer_wakeup.set()  # answers may have armed timers (a Stable group's sessions)

        async with trio.open_nursery() as nursery:
            for partition, ws in by_partition.items():
                nursery.start_soon(one, partition, ws)


def _append_error(exc: BaseException, partition: int, n: int) -> ErrorCode:
    log.warning("writing %d records to %s-%d failed: %r", n, OFFSETS_TOPIC, partition, exc)
    if isinstance(exc, KeyError):
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION  # the topic was deleted under us
    from kafkito.broker.handlers._common import storage_error_code

    return storage_error_code(exc)


def _replace(config: GroupConfig, **changes) -> GroupConfig:
    import dataclasses

    return dataclasses.replace(config, **changes)

"""PartitionManager: the one owner of appends, flushes and fetch wake-ups.

Theory of operation
-------------------
Storage is synchronous and knows nothing of trio. This module is the seam:

* **Appends** run in the trio thread. Writing a batch into the page cache is a
  ``write(2)`` of at most ``message.max.bytes``; doing it inline keeps appends to one
  partition naturally serialised (trio runs one task at a time) and costs no thread hop.
  The log checks idempotent producers' sequences itself (``PartitionLog.append``, which
  owns the producer state); a retry comes back with its original offsets.
* **Flushes** (fsync) run in worker threads, and only here: storage decides *when* a
  partition is due (``PartitionLog.flush_due_ms``: the topic's ``flush.ms`` /
  ``flush.messages``, else the broker's ``log.flush.interval.ms`` / ``.messages``), this
  module does the fsync. Each partition has at most one flush in flight; every caller that
  needs data flushed waits for the flush in flight and then, if its data is still not
  covered, starts the next one. Concurrent ``acks=all`` producers therefore share fsyncs
  (group commit), and ``acks=0/1`` appends start one background flusher per partition that
  sleeps until the policy says the data is due.
* **High watermark** = the log's flushed offset, kept by the log alone: a consumer is never
  served a record that a crash could take back. Whenever a flush here advances it, the
  events that waiting fetches put in the partition's ``waiters`` are set, which wakes every
  long-polling Fetch on it at once. No task ever sleeps in a loop waiting for data.
* **Last stable offset** (read_committed's limit) moves only when a flush does: a marker
  counts once it is flushed (``PartitionLog.last_stable_offset``), so the same wake-up
  serves read_committed fetches. ``append_control`` is the transaction coordinator's
  door for COMMIT/ABORT markers; it makes them durable with ``flush_to``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import trio

from kafkito.storage import AppendInfo, LogManager, PartitionLog, StorageError

from .internal_topics import config_error as internal_config_error
from .internal_topics import repaired_overrides

log = logging.getLogger("kafkito.broker.partitions")

__all__ = ["PartitionManager", "PartitionState"]


@dataclass(eq=False)
class PartitionState:
    """What of a partition is the broker's: the fetches waiting on it and its flushes.
    Everything about the data (offsets, producer state, the high watermark) is the log's."""

    log: PartitionLog
    waiters: set[trio.Event] = field(default_factory=set)
    flushing: trio.Event | None = None  # the flush in flight, if any
    flusher_running: bool = False  # the background flusher of acks=0/1 data
    flusher_wakeup: trio.Event | None = None  # set to make it re-read the policy now

    @property
    def high_watermark(self) -> int:
        return self.log.flushed_offset

    def notify(self) -> None:
        """Wake every fetch waiting on this partition (HW moved, log truncated or deleted)."""
        for event in self.waiters:
            event.set()
        self.waiters.clear()


class PartitionManager:
    def __init__(self, logs: LogManager, clock) -> None:
        self.logs = logs
        self.clock = clock
        self._states: dict[tuple[str, int], PartitionState] = {}
        self._waiting_fetches = 0
        self._nursery: trio.Nursery | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def attach(self, nursery: trio.Nursery) -> None:
        """Background flushes run in the broker's nursery."""
        self._nursery = nursery

    # -- lookup --------------------------------------------------------------------------
    def state(self, topic: str, partition: int) -> PartitionState | None:
        key = (topic, partition)
        st = self._states.get(key)
        if st is not None and self.logs.log(topic, partition) is st.log:
            return st
        plog = self.logs.log(topic, partition)
        if plog is None:
            if st is not None:  # topic deleted: wake its waiters so they see the error
                del self._states[key]
                st.notify()
            return None
        st = PartitionState(plog)
        self._states[key] = st
        return st

    def lookup(self, meta, partition: int) -> PartitionState | None:
        """The partition of a resolved topic (``meta`` may be None: unknown topic), or None
        when either is unknown: every handler's UNKNOWN_TOPIC_OR_PARTITION test."""
        if meta is None or not 0 <= partition < meta.num_partitions:
            return None
        return self.state(meta.name, partition)

    def forget_topic(self, topic: str) -> None:
        """After DeleteTopics: wake fetchers of the topic's partitions so they re-check."""
        for key in [k for k in self._states if k[0] == topic]:
            self._states.pop(key).notify()

    def refresh(self, topic: str, partition: int) -> None:
        """After DeleteRecords/retention: let waiters re-read the log's bounds."""
        st = self.state(topic, partition)
        if st is not None:
            st.notify()

    # -- appends -------------------------------------------------------------------------
    def ensure_internal_topic(self, name: str, num_partitions: int, configs: dict[str, str]):
        """Create an internal topic (``__consumer_offsets``) on first use, or put back the
        configs it must keep if an older kafkito let them be changed (internal_topics.py)."""
        meta = self.logs.topic(name)
        if meta is None:
            return self.logs.create_topic(name, num_partitions, configs, internal=True)
        reason = internal_config_error(name, meta.configs, self.logs.topic_config(name))
        if reason is not None:
            repaired = repaired_overrides(meta.configs, configs)
            log.warning("%s; restoring its configs to %s", reason, repaired)
            try:
                meta = self.logs.alter_topic_configs(name, repaired)
            except StorageError as exc:
                log.error("cannot restore the configs of %s: %s", name, exc)
        return meta

    def append_nowait(self, topic: str, partition: int, records, *, schedule_flush: bool = True):
        """Append in the calling task; the caller decides whether to wait for the fsync.

        Produce appends every partition of a request first and then waits for all their
        flushes at once, so one request's partitions share the fsync round.
        """
        st = self.state(topic, partition)
        if st is None:
            raise KeyError((topic, partition))
        return st, self.append(st, records, schedule_flush=schedule_flush)

    def append(self, st: PartitionState, records, *, schedule_flush: bool = True) -> AppendInfo:
        info = st.log.append(records, self.clock.now_ms())
        if schedule_flush:
            self._schedule_background_flush(st)
        return info

    def append_control(self, st: PartitionState, producer_id: int, producer_epoch: int,
                       commit: bool, coordinator_epoch: int) -> int:
        """Write a transaction marker (PartitionLog.append_control); returns its offset.
        The flush is scheduled as for an append; ``await flush_to(st, offset + 1)`` waits
        for it (and wakes the fetches the moved last stable offset lets through)."""
        offset = st.log.append_control(producer_id, producer_epoch, commit, coordinator_epoch,
                                       self.clock.now_ms())
        self._schedule_background_flush(st)
        return offset

    async def flush_many(self, targets: list[tuple[PartitionState, int]]) -> None:
        """Flush several partitions concurrently (each group-committed)."""
        if len(targets) == 1:
            await self.flush_to(*targets[0])
            return
        errors: list[Exception] = []

        async def one(st: PartitionState, offset: int) -> None:
            try:
                await self.flush_to(st, offset)
            except Exception as exc:  # reported after the others finish, unwrapped
                errors.append(exc)

        async with trio.open_nursery() as nursery:
            for st, offset in targets:
                nursery.start_soon(one, st, offset)
        if errors:
            raise errors[0]

    async def flush_to(self, st: PartitionState, offset: int) -> None:
        """Return once every offset below ``offset`` is fsynced (group commit)."""
        while st.high_watermark < offset:
            if st.flushing is None:
                done = st.flushing = trio.Event()
                before = st.high_watermark
                try:
                    await trio.to_thread.run_sync(st.log.flush)
                finally:
                    st.flushing = None
                    done.set()
                if st.high_watermark > before:
                    st.notify()
            else:
                await st.flushing.wait()
            if self.logs.log(st.log.topic, st.log.partition) is not st.log:
                raise KeyError((st.log.topic, st.log.partition))

    def _schedule_background_flush(self, st: PartitionState) -> None:
        if st.flusher_running:
            if st.flusher_wakeup is not None and self._is_due(st):
                st.flusher_wakeup.set()  # flush.messages reached while it sleeps
            return
        if self._nursery is None:
            return
        st.flusher_running = True
        self._nursery.start_soon(self._background_flush, st)

    def _is_due(self, st: PartitionState) -> bool:
        due = st.log.flush_due_ms()
        return due is not None and due <= self.clock.now_ms()

    async def _background_flush(self, st: PartitionState) -> None:
        """Sleep until the log's flush policy says its data is due, then flush it; end when
        everything is flushed (an acks=all flush may have done it meanwhile)."""
        try:
            while (due := st.log.flush_due_ms()) is not None:
                delay_ms = due - self.clock.now_ms()
                if delay_ms > 0:
                    st.flusher_wakeup = trio.Event()
                    with trio.move_on_after(delay_ms / 1000):
                        await st.flusher_wakeup.wait()
                    st.flusher_wakeup = None
                    continue  # re-read the policy: data may be flushed, the config altered
                await self.flush_to(st, st.log.log_end_offset)
        except KeyError:
            pass  # the topic was deleted meanwhile
        except StorageError as exc:  # a failing disk must not take the broker down
            log.error("background flush of %s-%d failed: %s", st.log.topic, st.log.partition, exc)
        except Exception:
            log.exception("background flush of %s-%d failed", st.log.topic, st.log.partition)
        finally:
            st.flusher_running = False
            st.flusher_wakeup = None

    def try_reserve_waiter(self, config) -> bool:
        """Count a waiting fetch against ``max.waiting.fetches``; False when at the limit."""
        if self._waiting_fetches >= config.max_waiting_fetches:
            return False
        self._waiting_fetches += 1
        return True

    def release_waiter(self) -> None:
        self._waiting_fetches -= 1

    async def wait_for_change(self, states: list[PartitionState], deadline: float) -> None:
        """Sleep until one of ``states`` changes or trio's clock reaches ``deadline``.

        One event registered with every partition: a fetch of 1,000 partitions costs one
        wake-up, not 1,000 tasks.
        """
        event = trio.Event()
        for st in states:
            st.waiters.add(event)
        try:
            with trio.move_on_at(deadline):
                await event.wait()
        finally:
            for st in states:
                st.waiters.discard(event)

    async def flush_all(self) -> None:
        """Shutdown: flush every partition touched. A log that cannot be flushed is left to
        ``LogManager.shutdown``, which reports it; the others are still flushed."""
        for st in list(self._states.values()):
            try:
                await self.flush_to(st, st.log.log_end_offset)
            except KeyError:
                continue
            except StorageError as exc:
                log.warning("%s-%d could not be flushed at shutdown: %s", st.log.topic,
                            st.log.partition, exc)

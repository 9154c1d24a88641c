"""PartitionManager: the one owner of appends, flushes and fetch wake-ups.

Theory of operation
-------------------
Storage is synchronous and knows nothing of trio. This module is the seam:

* **Appends** run in the trio thread. Writing a batch into the page cache is a
  ``write(2)`` of at most ``message.max.bytes``; doing it inline keeps appends to one
  partition naturally serialised (trio runs one task at a time) and costs no thread hop.
* **Flushes** (fsync) run in worker threads. Each partition has at most one flush in
  flight; every caller that needs data flushed waits for the flush in flight and then, if
  its data is still not covered, starts the next one. Concurrent ``acks=all`` producers
  therefore share fsyncs (group commit), and ``acks=0/1`` appends schedule the same flush
  in the background so their data becomes durable (and visible) within
  ``log.flush.interval.ms``.
* **High watermark** = the log's flushed offset: a consumer is never served a record that
  a crash could take back. Whenever it advances, the events that waiting fetches put in
  the partition's ``waiters`` are set, which wakes every long-polling Fetch on it at
  once. No task ever sleeps in a loop waiting for data.
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass, field

import trio

from kafkito.storage import (
    AppendInfo,
    CorruptMetadataError,
    LogManager,
    PartitionLog,
    StorageError,
    metafile,
)
from kafkito.storage.batch import PRODUCER_ID_AT, iter_batches
from kafkito.storage.producer_state import ProducerStateManager

from .internal_topics import config_error as internal_config_error
from .internal_topics import repaired_overrides

log = logging.getLogger("kafkito.broker.partitions")

__all__ = ["PartitionManager", "PartitionState"]

_PRODUCER_ID = struct.Struct(">q")


@dataclass(eq=False)
class PartitionState:
    """Broker-side state of one partition: its log, its watermark and its waiters."""

    log: PartitionLog
    high_watermark: int
    waiters: set[trio.Event] = field(default_factory=set)
    _producers: ProducerStateManager | None = None

    @property
    def producers(self) -> ProducerStateManager:
        """Loaded on the first idempotent append, not when the partition is first touched:
        after a crash it is rebuilt by scanning the active segment, which a partition that
        only ever sees plain producers and consumers should not pay for."""
        if self._producers is None:
            self._producers = load_producer_state(self.log)
        return self._producers
    flushing: trio.Event | None = None
    background_flush_pending: bool = False

    def advance(self, flushed_offset: int) -> None:
        if flushed_offset > self.high_watermark:
            self.high_watermark = flushed_offset
            self.notify()

    def notify(self) -> None:
        """Wake every fetch waiting on this partition (HW moved, log truncated or deleted)."""
        for event in self.waiters:
            event.set()
        self.waiters.clear()


class PartitionManager:
    def __init__(self, logs: LogManager, clock, *, flush_interval_ms: int = 0) -> None:
        self.logs = logs
        self.clock = clock
        self.flush_interval_ms = flush_interval_ms
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
        st = PartitionState(plog, plog.flushed_offset)
        self._states[key] = st
        return st

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
        batches = _idempotent_batches(records)
        if batches:
            first = batches[0]
            duplicate = st.producers.check(first.producer_id, first.producer_epoch, first.base_sequence,
                                           first.last_offset_delta)
            if duplicate is not None:  # a retry: answer with the original offsets
                info = AppendInfo(duplicate.first_offset, duplicate.last_offset, -1,
                                  st.log.log_start_offset, 0)
                return st, info
        info = st.log.append(records, self.clock.now_ms())
        if batches:
            offset = info.base_offset
            for b in batches:
                st.producers.record(b.producer_id, b.producer_epoch, b.base_sequence, offset,
                                    offset + b.last_offset_delta, b.max_timestamp)
                offset += b.last_offset_delta + 1
        if schedule_flush:
            self._schedule_background_flush(st)
        return st, info

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
                try:
                    flushed = await trio.to_thread.run_sync(st.log.flush)
                finally:
                    st.flushing = None
                    done.set()
                st.advance(flushed)
            else:
                await st.flushing.wait()
            if self.logs.log(st.log.topic, st.log.partition) is not st.log:
                raise KeyError((st.log.topic, st.log.partition))

    def _schedule_background_flush(self, st: PartitionState) -> None:
        if st.background_flush_pending or self._nursery is None:
            return
        st.background_flush_pending = True
        self._nursery.start_soon(self._background_flush, st)

    async def _background_flush(self, st: PartitionState) -> None:
        try:
            if self.flush_interval_ms:
                await trio.sleep(self.flush_interval_ms / 1000)
            st.background_flush_pending = False
            await self.flush_to(st, st.log.log_end_offset)
        except KeyError:
            pass  # the topic was deleted meanwhile
        except StorageError as exc:  # a failing disk must not take the broker down
            st.background_flush_pending = False
            log.error("background flush of %s-%d failed: %s", st.log.topic, st.log.partition, exc)
        except Exception:
            st.background_flush_pending = False
            log.exception("background flush of %s-%d failed", st.log.topic, st.log.partition)

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
                continue
            if st._producers is not None:  # never loaded: the snapshot on disk, if any, stands
                save_producer_state(st.log, st._producers)


# -- producer state snapshots --------------------------------------------------------------
# Written at clean shutdown with the log end offset it covers. On start, a snapshot that
# matches the log end is used as is; otherwise (a crash) the state is rebuilt from the
# batch headers of the active segment, which recovery has just verified. A producer whose
# state is lost this way gets UNKNOWN_PRODUCER_ID on its next batch and resets, as Kafka
# clients do after producer-state expiry.
_SNAPSHOT = "producer_state.snapshot"


def _snapshot_path(plog: PartitionLog) -> str:
    return os.path.join(plog.directory, _SNAPSHOT)


def save_producer_state(plog: PartitionLog, producers: ProducerStateManager) -> None:
    try:
        metafile.write(_snapshot_path(plog), "producer-state",
                       {"end_offset": plog.log_end_offset, "producers": producers.snapshot()}, plog.io)
    except OSError as exc:  # derived: without it the next start rebuilds the state from the log
        log.warning("could not write the producer-state snapshot of %s-%d (%s); it is rebuilt "
                    "from the log at the next start", plog.topic, plog.partition, exc.strerror or exc)


def load_producer_state(plog: PartitionLog) -> ProducerStateManager:
    path = _snapshot_path(plog)
    try:
        data = metafile.read(path, "producer-state")
        plog.io.unlink(path)  # from here on the state in memory is the truth
        end = data["end_offset"]
        if end <= plog.log_end_offset:
            # State is loaded at the first idempotent append, so plain producers may have
            # appended since the snapshot: replay those batches on top of it.
            manager = ProducerStateManager.restore(data["producers"])
            manager.rebuild(_producer_batches(plog, end))
            return manager
    except FileNotFoundError:
        pass
    except (CorruptMetadataError, KeyError, TypeError, ValueError) as exc:
        log.warning("ignoring producer-state snapshot of %s-%d: %s", plog.topic, plog.partition, exc)
    manager = ProducerStateManager()
    manager.rebuild(_producer_batches(plog, plog.active_segment.base_offset))
    return manager


def _producer_batches(plog: PartitionLog, start: int):
    return ((b.producer_id, b.producer_epoch, b.base_sequence, b.base_offset,
             b.base_offset + b.last_offset_delta, b.max_timestamp)
            for b in plog.batches(start) if b.producer_id >= 0)


def _idempotent_batches(records) -> list:
    """The batches of a produce blob that carry a producer id (usually none or one).

    Parsing here is header-only and lenient: a malformed blob is left for storage's
    validation to reject with the right error. A plain producer's request, the common case,
    is told apart by the first header's producer id alone, read straight from the bytes.
    """
    try:
        if _PRODUCER_ID.unpack_from(records, PRODUCER_ID_AT)[0] < 0:
            return []
        return list(iter_batches(records))
    except Exception:
        return []

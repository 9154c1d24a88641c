"""What every coordinator over an internal topic needs: waiters, timers, an outbox, a shell.

Theory of operation
-------------------
A coordinator (the group coordinator today, the transaction coordinator next) is a pure
state machine that keeps its durable facts in a compacted internal topic
(``__consumer_offsets``, ``__transaction_state``). It reads no clock and does no I/O; this
module holds the pieces that let it work that way, so each coordinator only decides:

* ``Waiter``: a parked request. The coordinator completes it exactly once, maybe at once,
  maybe during a later call (a JoinGroup waiting for the other members, a commit waiting
  for its write). Whoever waits sets ``notify``: a trio task in production, nobody in unit
  tests, which read ``result`` directly.
* ``DeadlineTimer``: keyed deadlines ("call this at T unless something happens first");
  scheduling a key again replaces its deadline. The coordinator asks it what is due at the
  ``now_ms`` it was given.
* ``Outbox`` and ``Write``: facts to append, in order, to the internal topic's partitions
  (each fact is routed by a key, such as a group id, to its partition). The coordinator
  queues facts with a callback; the shell appends them and reports each ``Write`` back
  with ``Outbox.done``. Only then is a fact *applied*: ``on_written`` hands it to the
  coordinator's in-memory state (exactly as loading replays it), and the callback answers
  the request. A coordinator never promises what a crash could take back.
* ``CoordinatorShell``: the thin trio side. A timer task sleeps until the coordinator's
  next deadline and polls it; a writer task drains the outbox, one record batch per
  partition, and reports each write once it is in the log, or for a ``durable`` write
  once it is fsynced (group-committed with any other appends); ``load`` replays the whole
  topic into the coordinator in a worker thread; ``wait`` parks a handler on a waiter.
  Trio runs one task at a time, so coordinator calls never interleave and need no lock.

A coordinator plugged into the shell offers its ``outbox``, ``poll(now_ms)``, ``next_deadline_ms()``,
``take_writes()``, ``write_done(write, error)``, ``replay(key, value, offset)``,
``replay_transactional(partition, producer_id, key, value, offset)`` and
``replay_marker(partition, producer_id, commit)`` (records of transactional batches and the
markers that end them: TxnOffsetCommit's offsets) and ``finish_load(now_ms)``. ``offset`` is the
record's log offset, and ``Write.offset`` the offset its batch got: a coordinator whose
answer depends on which of two records came later in the log (a transaction's offsets
against a plain commit of the same key, settled at the marker) must decide by log order,
as the log cleaner does, not by the order writes happened to complete in.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable, Hashable
from typing import Any, Generic, Protocol, TypeVar

import trio

from kafkito.protocol import ErrorCode
from kafkito.records.batch import build_batch
from kafkito.records.control import control_marker
from kafkito.records.errors import CorruptRecordError
from kafkito.storage.log import ORIGIN_COORDINATOR

from .errors import storage_error_code

log = logging.getLogger("kafkito.broker.coordinator")

__all__ = ["CoordinatorBase", "CoordinatorShell", "DeadlineTimer", "ensure_coordinator_topic", "FactCodec", "Outbox",
           "replay_partition", "Waiter", "Write"]

T = TypeVar("T")
Fact = tuple[Any, Any]  # (key, value); a None value is a tombstone


# ------------------------------------------------------------------ waiters
class Waiter(Generic[T]):
    """A parked request: completed once with its response by the coordinator."""

    __slots__ = ("result", "notify")

    def __init__(self) -> None:
        self.result: T | None = None
        self.notify: Callable[[], None] | None = None

    @property
    def done(self) -> bool:
        return self.result is not None

    def complete(self, result: T) -> None:
        assert self.result is None, "a request is answered exactly once"
        self.result = result
        if self.notify is not None:
            self.notify()

    @classmethod
    def completed(cls, result: T) -> Waiter[T]:
        w: Waiter[T] = cls()
        w.result = result
        return w


# ------------------------------------------------------------------ timers
class DeadlineTimer:
    """Keyed deadlines: Kafka's coordinator timer, minus the threads.

    A heap with lazy deletion: a heap entry is live only while its key still maps to that
    entry's sequence number, so rescheduling and cancelling are O(log n) and O(1)."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Hashable]] = []
        self._live: dict[Hashable, tuple[int, int, Callable[[], None]]] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._live

    def schedule(self, key: Hashable, deadline_ms: int, action: Callable[[], None]) -> None:
        """Run ``action`` once ``deadline_ms`` has passed; replaces any timer under ``key``."""
        self._seq += 1
        self._live[key] = (deadline_ms, self._seq, action)
        heapq.heappush(self._heap, (deadline_ms, self._seq, key))
        self._compact()

    def cancel(self, key: Hashable) -> None:
        self._live.pop(key, None)

    def deadline_ms(self, key: Hashable) -> int | None:
        entry = self._live.get(key)
        return None if entry is None else entry[0]

    def next_deadline_ms(self) -> int | None:
        self._drop_stale_head()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now_ms: int) -> Callable[[], None] | None:
        """The earliest action whose deadline is <= now_ms (removed), or None."""
        self._drop_stale_head()
        if not self._heap or self._heap[0][0] > now_ms:
            return None
        _, _, key = heapq.heappop(self._heap)
        return self._live.pop(key)[2]

    def _drop_stale_head(self) -> None:
        heap, live = self._heap, self._live
        while heap:
            deadline, seq, key = heap[0]
            entry = live.get(key)
            if entry is not None and entry[1] == seq:
                return
            heapq.heappop(heap)

    def _compact(self) -> None:
        # Heartbeats reschedule the same key constantly; without this the heap would grow
        # by one stale entry per heartbeat until those deadlines came round.
        if len(self._heap) > 64 and len(self._heap) > 4 * len(self._live):
            self._heap = [(d, s, k) for k, (d, s, _) in self._live.items()]
            heapq.heapify(self._heap)


# ------------------------------------------------------------------ writes
class FactCodec(Protocol):
    """How a coordinator's facts become records, and which must be fsynced to count."""

    def encode(self, fact: Fact) -> tuple[bytes, bytes | None]: ...

    def is_durable(self, fact: Fact) -> bool: ...


class Write:
    """Facts to append to one partition of the internal topic, in order.

    ``producer`` (producer id, epoch) makes the write a transactional batch of that
    producer's open transaction (TxnOffsetCommit): its facts count only once the
    transaction's commit marker follows them in the log."""

    __slots__ = ("partition", "facts", "on_done", "_codec", "producer", "offset")

    def __init__(self, partition: int, facts: list[Fact], on_done: Callable[[ErrorCode], None] | None,
                 codec: FactCodec, producer: tuple[int, int] | None = None) -> None:
        self.partition = partition
        self.facts = facts
        self.on_done = on_done
        self._codec = codec
        self.producer = producer
        self.offset = -1  # the log offset of its batch (the last), once the shell appended it

    def __repr__(self) -> str:
        return f"Write(partition={self.partition}, facts={self.facts!r})"

    @property
    def durable(self) -> bool:
        """Must the write be fsynced before it counts (see the coordinator's codec)?"""
        return any(self._codec.is_durable(f) for f in self.facts)

    def records(self) -> list[tuple[bytes, bytes | None]]:
        """(key, value) byte pairs; a None value is a tombstone."""
        return [self._codec.encode(f) for f in self.facts]


class Outbox:
    """The queue of writes between a coordinator and its shell.

    ``write`` splits facts by partition (``partition_for`` of each fact's routing key) and
    calls ``on_done`` once, with the first error seen, when every partition's write is
    done. ``on_queued`` sees facts as they are queued and ``on_written`` as each write
    completes (with its own error and log offset), before ``on_done``: that is where a
    coordinator applies what is now durable, partition by partition, exactly as loading
    would. A transactional write (``producer`` given) skips both hooks: its facts count
    only when the transaction's marker follows them, which the coordinator learns
    separately (``write`` returns the queued writes, whose ``offset`` it may read then)."""

    def __init__(self, codec: FactCodec, partition_for: Callable[[str], int], *,
                 on_queued: Callable[[list[Fact]], None] = lambda facts: None,
                 on_written: Callable[[list[Fact], ErrorCode, int], None] = lambda facts, error, offset: None,
                 ) -> None:
        self.codec = codec
        self.partition_for = partition_for
        self.on_queued = on_queued
        self.on_written = on_written
        self._queue: list[Write] = []

    def __len__(self) -> int:
        return len(self._queue)

    def write(self, facts_by_key: list[tuple[str, Fact]],
              on_done: Callable[[ErrorCode], None] | None = None, *,
              producer: tuple[int, int] | None = None) -> list[Write]:
        per_partition: dict[int, list[Fact]] = {}
        for routing_key, fact in facts_by_key:
            per_partition.setdefault(self.partition_for(routing_key), []).append(fact)
        if not per_partition:
            if on_done is not None:
                on_done(ErrorCode.NONE)
            return []
        remaining = [len(per_partition)]
        first_error = [ErrorCode.NONE]

        def one_done(error: ErrorCode) -> None:
            if error != ErrorCode.NONE and first_error[0] == ErrorCode.NONE:
                first_error[0] = error
            remaining[0] -= 1
            if remaining[0] == 0 and on_done is not None:
                on_done(first_error[0])

        writes = [Write(partition, facts, one_done, self.codec, producer) for partition, facts in per_partition.items()]
        for w in writes:
            if producer is None:  # a transaction's facts count only once its marker is written
                self.on_queued(w.facts)
            self._queue.append(w)
        return writes

    def take(self) -> list[Write]:
        out, self._queue = self._queue, []
        return out

    def done(self, write: Write, error: ErrorCode = ErrorCode.NONE) -> None:
        """The shell appended ``write`` (error NONE) or failed to."""
        if write.producer is None:
            self.on_written(write.facts, error, write.offset)
        if write.on_done is not None:
            write.on_done(error)


# ------------------------------------------------------------------ the trio shell
class Coordinator(Protocol):
    outbox: Outbox

    def poll(self, now_ms: int) -> None: ...

    def next_deadline_ms(self) -> int | None: ...

    def take_writes(self) -> list[Write]: ...

    def write_done(self, write: Write, error: ErrorCode = ErrorCode.NONE) -> None: ...

    def replay(self, raw_key, raw_value, offset: int = -1) -> None: ...

    def replay_transactional(self, partition: int, producer_id: int, raw_key, raw_value,
                             offset: int = -1) -> None: ...

    def replay_marker(self, partition: int, producer_id: int, commit: bool) -> None: ...

    def finish_load(self, now_ms: int) -> None: ...


class CoordinatorBase:
    """What every pure coordinator does alike: keep the time it is given, fire its timers,
    hand its outbox's writes to the shell and take their reports back. A subclass sets
    ``timer`` and ``outbox`` and decides everything else."""

    timer: DeadlineTimer
    outbox: Outbox
    now_ms: int = 0

    def poll(self, now_ms: int) -> None:
        """Fire every timer due at ``now_ms``, in deadline order."""
        self.now_ms = max(self.now_ms, now_ms)
        while (action := self.timer.pop_due(self.now_ms)) is not None:
            action()

    def next_deadline_ms(self) -> int | None:
        return self.timer.next_deadline_ms()

    def take_writes(self) -> list[Write]:
        return self.outbox.take()

    def write_done(self, write: Write, error: ErrorCode = ErrorCode.NONE) -> None:
        """The owner appended ``write`` (error NONE) or failed to."""
        self.outbox.done(write, error)

    def replay_transactional(self, partition: int, producer_id: int, raw_key, raw_value,
                             offset: int = -1) -> None:
        """A record of a transactional batch at load; only a topic holding them overrides this."""

    def replay_marker(self, partition: int, producer_id: int, commit: bool) -> None:
        """A transaction marker at load; only a topic holding them overrides this."""


def ensure_coordinator_topic(partitions, topic: str, num_partitions: int, configs: dict[str, str],
                             setting: str) -> int:
    """Create the coordinator's internal topic if missing; returns the partitions it has.
    The topic outlives the setting (``setting``, e.g. offsets.topic.num.partitions): the
    keys stay where they were written, so an existing topic keeps its count."""
    meta = partitions.ensure_internal_topic(topic, num_partitions, dict(configs))
    if meta.num_partitions != num_partitions:
        log.info("%s has %d partitions (%s=%d): using %d", topic, meta.num_partitions, setting, num_partitions,
                 meta.num_partitions)
    return meta.num_partitions


def replay_partition(coordinator: Coordinator, partition: int, plog) -> int:
    """Replay one partition of the topic into ``coordinator``, in log order; returns how
    many data records. A compacted partition has offset gaps, batches the cleaner emptied
    (a producer's last batch, kept for its state: no records), and transactions whose
    marker went with their data: none of these is a fact, so none is replayed."""
    n = 0
    for batch in plog.batches():
        if batch.is_control:
            # A transaction's end (TxnOffsetCommit's offsets in __consumer_offsets).
            try:
                commit = control_marker(batch).is_commit
            except CorruptRecordError:
                continue  # an emptied control batch holds no marker
            coordinator.replay_marker(partition, batch.producer_id, commit)
            continue
        txn_producer = batch.producer_id if batch.is_transactional else None
        for record in batch.records():
            if txn_producer is None:
                coordinator.replay(record.key, record.value, record.offset)
            else:
                coordinator.replay_transactional(partition, txn_producer, record.key, record.value, record.offset)
            n += 1
    return n


class CoordinatorShell:
    """Time, waiting and writes for one pure coordinator over one internal topic.

    ``partitions`` is the broker's PartitionManager (``append_nowait``, ``flush_to``),
    ``logs`` its LogManager (to replay the topic at load)."""

    def __init__(self, coordinator: Coordinator, *, topic: str, partitions, logs,
                 now_ms: Callable[[], int]) -> None:
        self.coordinator = coordinator
        self.topic = topic
        self.partitions = partitions
        self.logs = logs
        self.now_ms = now_ms
        self._timer_wakeup = trio.Event()  # a call may have moved the next deadline
        self._writer_wakeup = trio.Event()  # a call may have queued writes
        self._writer_idle = trio.Event()  # set whenever the writer finds nothing to do
        self._writing = False

    # ------------------------------------------------------------ lifecycle
    async def load(self, num_partitions: int) -> int:
        """Replay every record of the topic (in a worker thread: it reads the whole
        topic), then let the coordinator arm its timers; returns how many records."""
        coordinator, logs, topic = self.coordinator, self.logs, self.topic

        def replay_all() -> int:
            return sum(replay_partition(coordinator, p, plog) for p in range(num_partitions)
                       if (plog := logs.log(topic, p)) is not None)

        n = await trio.to_thread.run_sync(replay_all)
        coordinator.finish_load(self.now_ms())
        return n

    async def run(self) -> None:
        """The timer and writer tasks; runs until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._timer_loop)
            nursery.start_soon(self._writer_loop)

    async def shutdown(self, timeout_s: float = 10) -> None:
        """Write what is still queued (the last commits answered before shutdown)."""
        with trio.move_on_after(timeout_s):
            while self.has_queued_writes() or self._writing:
                self._writer_idle = trio.Event()
                self.kick()
                await self._writer_idle.wait()

    def has_queued_writes(self) -> bool:
        return bool(self.coordinator.outbox)

    # ------------------------------------------------------------ calls
    def kick(self) -> None:
        """A call may have queued writes or moved the next deadline: look again."""
        self._timer_wakeup.set()
        self._writer_wakeup.set()

    async def wait(self, waiter: Waiter[T]) -> T:
        """The waiter's result, once the coordinator has completed it."""
        if not waiter.done:
            event = trio.Event()
            waiter.notify = event.set
            await event.wait()
        return waiter.result  # type: ignore[return-value]

    # ------------------------------------------------------------ background tasks
    async def _timer_loop(self) -> None:
        coordinator = self.coordinator
        while True:
            self._timer_wakeup = trio.Event()
            now = self.now_ms()
            coordinator.poll(now)
            if self.has_queued_writes():
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
        by_partition: dict[tuple[int, tuple[int, int] | None], list[Write]] = {}
        for w in writes:
            by_partition.setdefault((w.partition, w.producer), []).append(w)
        partitions, coordinator, topic = self.partitions, self.coordinator, self.topic

        async def one(key: tuple[int, tuple[int, int] | None], ws: list[Write]) -> None:
            partition, producer = key
            now = self.now_ms()
            records = [(key, value, None, now) for w in ws for key, value in w.records()]
            try:
                if producer is None:
                    batch = build_batch(records)
                else:  # Kafka's coordinator-origin transactional batch: no sequence
                    batch = build_batch(records, producer_id=producer[0], producer_epoch=producer[1],
                                        is_transactional=True)
                st, info = partitions.append_nowait(topic, partition, batch, origin=ORIGIN_COORDINATOR)
                for w in ws:
                    w.offset = info.last_offset
            except Exception as exc:
                error = self._append_error(exc, partition, len(records))
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
                    error = self._append_error(exc, partition, len(records))
                for w in durable:
                    coordinator.write_done(w, error)
            self._timer_wakeup.set()  # answers may have armed timers (a Stable group's sessions)

        async with trio.open_nursery() as nursery:
            for partition, ws in by_partition.items():
                nursery.start_soon(one, partition, ws)

    def _append_error(self, exc: BaseException, partition: int, n: int) -> ErrorCode:
        log.warning("writing %d records to %s-%d failed: %r", n, self.topic, partition, exc)
        if isinstance(exc, KeyError):
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION  # the topic was deleted under us
        return storage_error_code(exc)


class ShellService:
    """What every typed coordinator service (group/service.py, txn/service.py) does with
    its CoordinatorShell: wait on a waiter, shut the shell down, and read the time in a
    way that wakes the shell, because every call may queue writes or move the next
    deadline. Subclasses set ``shell`` and ``now_ms``."""

    shell: CoordinatorShell
    now_ms: Callable[[], int]

    async def shutdown(self) -> None:
        """Write what is still queued (the last facts answered before shutdown)."""
        await self.shell.shutdown()

    async def wait(self, waiter: Waiter):
        """The waiter's result, once the coordinator has completed it."""
        return await self.shell.wait(waiter)

    def _now(self) -> int:
        self.shell.kick()
        return self.now_ms()

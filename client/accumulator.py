"""The producer's record accumulator: batches per partition, ready by size or by age.

Theory of operation
-------------------
Pure state, no I/O, time passed in (``now`` in seconds of a monotonic clock), in the
shape of Kafka's ``RecordAccumulator``:

* ``append`` adds a record to the open batch of its partition (a new one when the open
  batch would pass ``batch.size``; a record larger than that gets a batch of its own) and
  returns a ``Delivery`` handle for it.
* a partition is *ready* when its oldest batch is full, older than ``linger.ms``, or a
  flush is under way. ``drain(ready, now)`` hands out at most one batch per partition and
  obeys ordering: a partition with a batch waiting to be retried sends only that batch,
  and only when nothing else of the partition is in flight; otherwise up to
  ``max.in.flight.requests.per.connection`` batches of a partition may be in flight.
* a batch gets its producer id, epoch and base sequence the first time it is drained and
  its bytes are built then, once: a retry resends the very same bytes, which is what lets
  the broker recognise a duplicate (idempotence).
* ``completed`` / ``retry`` / ``failed`` are the outcomes of a sent batch. ``expire`` fails
  batches that waited longer than ``delivery.timeout.ms``.
"""

from __future__ import annotations

from collections import deque
from typing import Callable

import anyio

from kafkito.records.batch import build_batch

from .types import RecordMetadata, TopicPartition

__all__ = ["Delivery", "ProducerBatch", "RecordAccumulator"]

RECORD_OVERHEAD_BYTES = 22  # length, attributes, deltas, key/value lengths, header count (varints)
BATCH_OVERHEAD_BYTES = 61
SEQUENCE_MAX = 2**31 - 1


class ProducerBatch:
    __slots__ = ("tp", "records", "size", "created", "attempts", "base_sequence", "payload", "done",
                 "base_offset", "log_append_time", "error", "last_attempt", "transactional",
                 "callbacks", "_acked_blind")

    def __init__(self, tp: TopicPartition, now: float) -> None:
        self.tp = tp
        self.records: list[tuple] = []  # (key, value, headers, timestamp_ms)
        self.size = BATCH_OVERHEAD_BYTES
        self.created = now
        self.attempts = 0
        self.base_sequence = -1
        self.payload: bytes | None = None
        self.done: anyio.Event | None = None  # made on first await (most records are never awaited alone)
        self.base_offset = -1
        self.log_append_time = -1
        self.error: BaseException | None = None
        self.last_attempt = 0.0
        self.transactional = False
        self.callbacks: list | None = None
        self._acked_blind = False  # acks=0: delivered as far as anyone will know

    def __repr__(self) -> str:
        return f"<ProducerBatch {self.tp} n={len(self.records)} seq={self.base_sequence} try={self.attempts}>"

    @property
    def finished(self) -> bool:
        return self.base_offset != -1 or self.error is not None or self._acked_blind

    def build(self, compression: str, producer_id: int, producer_epoch: int, base_sequence: int) -> bytes:
        if self.payload is None:
            self.base_sequence = base_sequence
            self.payload = build_batch(self.records, compression=compression, producer_id=producer_id,
                                       producer_epoch=producer_epoch, base_sequence=base_sequence,
                                       is_transactional=self.transactional)
        return self.payload

    def complete(self, base_offset: int, log_append_time: int = -1) -> None:
        self.base_offset = base_offset
        if base_offset == -1:
            self._acked_blind = True
        self.log_append_time = log_append_time
        self._fire()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self._fire()

    def _fire(self) -> None:
        if self.done is not None:
            self.done.set()
        if self.callbacks:
            for i, cb in self.callbacks:
                try:
                    cb(self.metadata(i), self.error)
                except Exception:  # a user's callback never stops the sender
                    pass

    def metadata(self, index: int) -> RecordMetadata | None:
        if self.error is not None:
            return None
        ts = self.log_append_time if self.log_append_time != -1 else self.records[index][3]
        offset = self.base_offset + index if self.base_offset >= 0 else -1
        return RecordMetadata(self.tp.topic, self.tp.partition, offset, ts)


class Delivery:
    """The future of one record: ``await d`` gives its ``RecordMetadata`` or raises."""

    __slots__ = ("batch", "index")

    def __init__(self, batch: ProducerBatch, index: int) -> None:
        self.batch = batch
        self.index = index

    def done(self) -> bool:
        return self.batch.finished

    async def wait(self) -> RecordMetadata:
        batch = self.batch
        if not batch.finished:
            if batch.done is None:
                batch.done = anyio.Event()
            await batch.done.wait()
        if batch.error is not None:
            raise batch.error
        return batch.metadata(self.index)

    def __await__(self):
        return self.wait().__await__()

    def add_callback(self, fn: Callable) -> None:
        """``fn(metadata, error)`` once the record is delivered or failed."""
        batch = self.batch
        if batch.finished:
            fn(batch.metadata(self.index), batch.error)
        else:
            if batch.callbacks is None:
                batch.callbacks = []
            batch.callbacks.append((self.index, fn))


class _PartitionQueue:
    __slots__ = ("batches", "retries", "in_flight", "next_sequence", "resetting")

    def __init__(self) -> None:
        self.batches: deque[ProducerBatch] = deque()
        self.retries: list[ProducerBatch] = []  # sorted by base sequence
        self.in_flight: list[ProducerBatch] = []
        self.next_sequence = 0
        self.resetting = False  # the broker lost this producer's state here: renumber from 0


class RecordAccumulator:
    def __init__(self, *, batch_size: int, linger_ms: float, max_in_flight: int,
                 delivery_timeout_ms: int, retry_backoff_ms: int) -> None:
        self.batch_size = batch_size
        self.linger_s = linger_ms / 1000
        self.max_in_flight = max_in_flight
        self.delivery_timeout_s = delivery_timeout_ms / 1000
        self.retry_backoff_s = retry_backoff_ms / 1000
        self.queues: dict[TopicPartition, _PartitionQueue] = {}
        self.buffered_bytes = 0
        self.flushing = 0
        self.transactional = False

    def append(self, tp: TopicPartition, key, value, headers, timestamp_ms: int, now: float) -> Delivery:
        q = self.queues.get(tp)
        if q is None:
            q = self.queues[tp] = _PartitionQueue()
        size = RECORD_OVERHEAD_BYTES + (len(key) if key else 0) + (len(value) if value else 0)
        if headers:
            for hk, hv in headers:
                size += len(hk) + (len(hv) if hv else 0) + 4
        batches = q.batches
        batch = batches[-1] if batches else None
        if batch is None or batch.payload is not None or (batch.size + size > self.batch_size and batch.records):
            batch = ProducerBatch(tp, now)
            batch.transactional = self.transactional
            batches.append(batch)
        batch.records.append((key, value, headers, timestamp_ms))
        batch.size += size
        self.buffered_bytes += size
        return Delivery(batch, len(batch.records) - 1)

    def has_unsent(self) -> bool:
        return any(q.batches or q.retries for q in self.queues.values())

    def has_pending(self) -> bool:
        return any(q.batches or q.retries or q.in_flight for q in self.queues.values())

    def ready(self, now: float) -> tuple[list[TopicPartition], float | None]:
        """Partitions with something sendable now, and when the next one becomes ready."""
        out = []
        next_at = None
        for tp, q in self.queues.items():
            if q.retries:
                if q.in_flight:
                    continue
                at = q.retries[0].last_attempt + self.retry_backoff_s
                if at <= now:
                    out.append(tp)
                elif next_at is None or at < next_at:
                    next_at = at
                continue
            if not q.batches or len(q.in_flight) >= self.max_in_flight:
                continue
            b = q.batches[0]
            at = b.created + self.linger_s
            if len(q.batches) > 1 or b.size >= self.batch_size or self.flushing or at <= now:
                out.append(tp)
            elif next_at is None or at < next_at:
                next_at = at
        return out, next_at

    def drain(self, tp: TopicPartition, now: float) -> ProducerBatch | None:
        q = self.queues[tp]
        if q.retries:
            if q.in_flight:
                return None
            self._resume_numbering(q)
            batch = q.retries.pop(0)
        elif q.batches and len(q.in_flight) < self.max_in_flight:
            batch = q.batches.popleft()
        else:
            return None
        batch.attempts += 1
        batch.last_attempt = now
        q.in_flight.append(batch)
        return batch

    def take_sequence(self, tp: TopicPartition, count: int) -> int:
        q = self.queues[tp]
        seq = q.next_sequence
        q.next_sequence = (seq + count) & SEQUENCE_MAX if seq + count > SEQUENCE_MAX else seq + count
        return seq

    def _done(self, batch: ProducerBatch) -> None:
        q = self.queues[batch.tp]
        q.in_flight.remove(batch)
        self.buffered_bytes -= batch.size - BATCH_OVERHEAD_BYTES

    def completed(self, batch: ProducerBatch, base_offset: int, log_append_time: int = -1) -> None:
        self._done(batch)
        batch.complete(base_offset, log_append_time)

    def failed(self, batch: ProducerBatch, error: BaseException) -> None:
        self._done(batch)
        batch.fail(error)

    def retry(self, batch: ProducerBatch, now: float) -> None:
        q = self.queues[batch.tp]
        q.in_flight.remove(batch)
        batch.last_attempt = now
        q.retries.append(batch)
        q.retries.sort(key=lambda b: b.base_sequence)

    def restart_sequence(self, batch: ProducerBatch, now: float) -> None:
        """The broker has no state for this producer on the batch's partition any more
        (UNKNOWN_PRODUCER_ID: the topic was recreated, or retention removed every batch of
        the producer; Kafka's client did the same before KIP-360). Nothing there can be a
        duplicate now, so the partition's sequence starts again at 0: this batch and every
        one still in flight behind it are rebuilt with new numbers, in their order."""
        q = self.queues[batch.tp]
        if not q.resetting:
            q.resetting = True
            q.next_sequence = 0
        batch.payload = None
        self.retry(batch, now)

    @staticmethod
    def _resume_numbering(q: _PartitionQueue) -> None:
        if q.resetting and not q.in_flight:
            q.resetting = False

    def resetting(self, tp: TopicPartition) -> bool:
        return self.queues[tp].resetting

    def expire(self, now: float, error_factory) -> None:
        """Fail batches that waited past ``delivery.timeout.ms`` and are not in flight."""
        for q in self.queues.values():
            for pool in (q.retries, q.batches):
                while pool and now - pool[0].created > self.delivery_timeout_s:
                    batch = pool.pop(0) if isinstance(pool, list) else pool.popleft()
                    self.buffered_bytes -= batch.size - BATCH_OVERHEAD_BYTES
                    batch.fail(error_factory(batch))

    def fail_all(self, error: BaseException) -> None:
        for q in self.queues.values():
            for pool in (q.retries, q.batches):
                while pool:
                    batch = pool.pop(0) if isinstance(pool, list) else pool.popleft()
                    self.buffered_bytes -= batch.size - BATCH_OVERHEAD_BYTES
                    batch.fail(error)

    def reset_sequences(self) -> None:
        """A new producer id or epoch starts every partition's sequence at zero again."""
        for q in self.queues.values():
            q.next_sequence = 0

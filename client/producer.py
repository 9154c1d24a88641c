"""The async producer: ``await producer.send(topic, value, key=...)`` → ``RecordMetadata``.

Theory of operation
-------------------
``send`` picks the partition (partitioner.py: murmur2 of the key, sticky for keyless
records), appends the record to the accumulator (accumulator.py, pure state) and waits for
its batch's outcome; ``produce`` does the same but returns the ``Delivery`` handle at once,
for callers that keep many records in flight (``await handle`` later, or ``flush()``).

One sender task drives the accumulator: it sleeps until a partition is ready (a batch
full, ``linger.ms`` past, a flush), drains one batch per ready partition, groups them by
leader and sends one Produce request per broker, each in a task of its own so a slow
broker does not hold the others. Per partition responses decide each batch's fate:

* NONE: delivered at ``base_offset`` (+ index of the record in the batch);
* DUPLICATE_SEQUENCE_NUMBER: the broker already has it (a retry of a batch whose answer was
  lost): delivered;
* a retriable error (NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION, a lost
  connection, ...) or OUT_OF_ORDER_SEQUENCE_NUMBER behind such a batch: the batch goes back,
  metadata is refreshed, and the partition resends its retries in sequence order, one at a
  time, before anything newer (in-order delivery, KIP-98's rule);
* anything else fails the batch's records with the typed error.

Idempotence (``enable.idempotence``, on by default when ``acks=all``) asks InitProducerId
for a producer id and numbers every partition's batches; a retried batch is resent byte for
byte, so the broker drops a duplicate instead of appending it twice.

Transactions (``transactional.id``) add partitions to the transaction before their first
batch is sent (see transaction.py).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict

import anyio

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.init_producer_id import InitProducerIdRequest
from kafkito.protocol.messages.produce import PartitionProduceData, ProduceRequest, TopicProduceData
from kafkito.records.codecs import CODEC_IDS

from .base import ClientBase
from .accumulator import Delivery, ProducerBatch, RecordAccumulator
from .cluster import Cluster
from .errors import (
    IllegalStateError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    error_for,
)
from .partitioner import StickyPartitioner, partition_for_key
from .types import RecordMetadata, TopicPartition

__all__ = ["Producer"]

log = logging.getLogger("kafkito.client")

PRODUCE_MAX_VERSION = 9
INIT_PRODUCER_ID_MAX_VERSION = 4
_ACKS = {"all": -1, "-1": -1, -1: -1, "1": 1, 1: 1, "0": 0, 0: 0}
_METADATA_ERRORS = {
    ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.LEADER_NOT_AVAILABLE,
    ErrorCode.FENCED_LEADER_EPOCH, ErrorCode.UNKNOWN_LEADER_EPOCH, ErrorCode.KAFKA_STORAGE_ERROR,
}


class Producer(ClientBase):
    """An async Kafka producer (asyncio or trio through anyio). Use ``async with``.

    Settings take Kafka's names with dots as underscores: ``acks`` ("all", 1, 0),
    ``linger_ms`` (5), ``batch_size`` (16384), ``compression`` / ``compression_type``
    ("none", "gzip", "snappy", "lz4", "zstd"), ``enable_idempotence`` (None: on when acks is
    "all"), ``delivery_timeout_ms`` (120000), ``request_timeout_ms`` (30000),
    ``retry_backoff_ms`` (100), ``max_in_flight_requests_per_connection`` (5),
    ``buffer_memory`` (32 MiB: ``send`` waits while more than this is queued),
    ``transactional_id`` (None), ``transaction_timeout_ms`` (60000), ``client_id``.
    """

    def __init__(self, bootstrap_servers="127.0.0.1:9092", *, client_id: str = "kafkito-producer",
                 acks="all", linger_ms: float = 5, batch_size: int = 1_000_000, compression: str | None = None,
                 compression_type: str = "none", enable_idempotence: bool | None = None,
                 delivery_timeout_ms: int = 120000, request_timeout_ms: int = 30000,
                 retry_backoff_ms: int = 100, max_in_flight_requests_per_connection: int = 5,
                 buffer_memory: int = 32 * 1024 * 1024, transactional_id: str | None = None,
                 transaction_timeout_ms: int = 60000, metadata_max_age_ms: int = 300000,
                 connect_timeout_ms: int = 10000, max_block_ms: int = 60000) -> None:
        if acks not in _ACKS:
            raise ValueError(f"acks must be 'all', 1 or 0, not {acks!r}")
        self.acks = _ACKS[acks]
        self.compression = compression or compression_type or "none"
        if self.compression not in CODEC_IDS:
            raise ValueError(f"compression must be one of {sorted(CODEC_IDS)}, not {self.compression!r}")
        if transactional_id is not None:
            if enable_idempotence is False:
                raise ValueError("a transactional producer is idempotent: enable_idempotence cannot be False")
            enable_idempotence = True
        if enable_idempotence is None:
            enable_idempotence = self.acks == -1
        if enable_idempotence and self.acks != -1:
            raise ValueError("enable_idempotence requires acks='all'")
        self.idempotent = enable_idempotence
        self.transactional_id = transactional_id
        self.transaction_timeout_ms = transaction_timeout_ms
        self.request_timeout_ms = request_timeout_ms
        self.delivery_timeout_ms = delivery_timeout_ms
        self.buffer_memory = buffer_memory
        self.max_block_ms = max_block_ms
        max_in_flight = max_in_flight_requests_per_connection
        self.cluster = Cluster(bootstrap_servers, client_id=client_id, request_timeout_ms=request_timeout_ms,
                               connect_timeout_ms=connect_timeout_ms, metadata_max_age_ms=metadata_max_age_ms,
                               retry_backoff_ms=retry_backoff_ms, max_in_flight=max_in_flight)
        self._acc = RecordAccumulator(batch_size=batch_size, linger_ms=linger_ms, max_in_flight=max_in_flight,
                                      delivery_timeout_ms=delivery_timeout_ms, retry_backoff_ms=retry_backoff_ms)
        self._sticky = StickyPartitioner(batch_size)
        self.producer_id = -1
        self.producer_epoch = -1
        self._wake = anyio.Event()
        self._space = anyio.Event()
        self._tg = None
        self._closed = False
        self._started = False
        self._fatal: KafkaError | None = None
        self._sender_done = anyio.Event()
        self.txn = None  # TransactionManager when transactional_id is set
        self._first_error: KafkaError | None = None  # for commit_transaction's check

    # -- lifecycle ---------------------------------------------------------------------------
    async def _on_start(self) -> None:
        if self.transactional_id is not None:
            from .transaction import TransactionManager

            self.txn = TransactionManager(self)
            self._acc.transactional = True
            await self.txn.init()
        elif self.idempotent:
            await self._init_producer_id()
        self._tg.start_soon(self._sender)
        self._started = True

    async def close(self, timeout: float | None = None) -> None:
        """Deliver what is queued (up to ``timeout`` seconds, default delivery.timeout.ms),
        then close the connections."""
        if self._closed:
            return
        if self._started:
            with anyio.move_on_after(timeout if timeout is not None else self.delivery_timeout_ms / 1000):
                await self.flush()
        self._closed = True
        self._acc.fail_all(IllegalStateError("the producer was closed before the record was sent"))
        self._wake.set()
        await self._close_connections()

    async def _init_producer_id(self, transactional_id: str | None = None) -> None:
        body = InitProducerIdRequest(transactional_id=transactional_id,
                                     transaction_timeout_ms=self.transaction_timeout_ms)
        deadline = time.monotonic() + self.max_block_ms / 1000
        while True:
            node = None if transactional_id is None else await self.cluster.coordinator(transactional_id, 1)
            resp = await self.cluster.send(node, ApiKey.INIT_PRODUCER_ID, body, INIT_PRODUCER_ID_MAX_VERSION)
            if not resp.error_code:
                self.producer_id, self.producer_epoch = resp.producer_id, resp.producer_epoch
                self._acc.reset_sequences()
                return
            err = error_for(resp.error_code, "InitProducerId")
            if not err.retriable or time.monotonic() > deadline:
                raise err
            await anyio.sleep(self.cluster.retry_backoff_ms / 1000)

    # -- sending -----------------------------------------------------------------------------
    async def partition_for(self, topic: str, key: bytes | None) -> int:
        parts = await self.cluster.partitions_for(topic, wait_ms=self.max_block_ms)
        n = len(parts)
        if key is not None:
            return partition_for_key(key, n)
        return self._sticky.partition(topic, n)

    async def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                      headers=None, partition: int | None = None, timestamp_ms: int | None = None) -> Delivery:
        """Queue one record; returns its ``Delivery`` (``await`` it for the RecordMetadata)."""
        if self._closed or not self._started:
            raise IllegalStateError("the producer is not started" if not self._closed else "the producer is closed")
        if self._fatal is not None:
            raise self._fatal
        if isinstance(value, str):
            value = value.encode()
        if isinstance(key, str):
            key = key.encode()
        if headers:
            headers = [(k, v.encode() if isinstance(v, str) else v) for k, v in
                       (headers.items() if isinstance(headers, dict) else headers)]
        parts = self.cluster.topics.get(topic)
        if parts is None or partition is not None and partition not in parts:
            parts = await self.cluster.partitions_for(topic, wait_ms=self.max_block_ms)
        if partition is None:
            if key is not None:
                partition = partition_for_key(key, len(parts))
            else:
                partition = self._sticky.partition(topic, len(parts))
        elif partition not in parts:
            raise error_for(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"{topic} has no partition {partition}")
        if timestamp_ms is None:
            timestamp_ms = int(time.time() * 1000)
        while self._acc.buffered_bytes > self.buffer_memory:
            if self._space.is_set():
                self._space = anyio.Event()
            with anyio.fail_after(self.max_block_ms / 1000):
                await self._space.wait()
        tp = TopicPartition(topic, partition)
        if self.txn is not None:
            self.txn.record_partition(tp)
        acc = self._acc
        before = acc.buffered_bytes
        delivery = acc.append(tp, key, value, headers or None, timestamp_ms, time.monotonic())
        if key is None:
            self._sticky.record_appended(topic, partition, acc.buffered_bytes - before)
        batch = delivery.batch
        if len(batch.records) == 1 or batch.size >= acc.batch_size:
            self._wake.set()
        return delivery

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None, headers=None,
                   partition: int | None = None, timestamp_ms: int | None = None) -> RecordMetadata:
        """Send one record and wait until it is delivered (or raise its error)."""
        delivery = await self.produce(topic, value, key, headers, partition, timestamp_ms)
        return await delivery

    async def flush(self) -> None:
        """Send everything queued now and wait until each batch has its outcome."""
        self._acc.flushing += 1
        try:
            self._wake.set()
            while self._acc.has_pending() and not self._closed:
                # Wait for the newest batch of every partition: the others finish before it.
                # Outcomes are not raised here: each record's handle holds its own.
                pending = [q.batches[-1] if q.batches else (q.retries[-1] if q.retries else q.in_flight[-1])
                           for q in self._acc.queues.values() if q.batches or q.retries or q.in_flight]
                for batch in pending:
                    if not batch.finished:
                        if batch.done is None:
                            batch.done = anyio.Event()
                        await batch.done.wait()
        finally:
            self._acc.flushing -= 1

    async def _flush_collecting_errors(self) -> KafkaError | None:
        """Flush, then the first error of a record queued since the last call (None if all
        were delivered)."""
        await self.flush()
        err, self._first_error = self._first_error, None
        return err

    # -- transactions ------------------------------------------------------------------------
    def _txn(self):
        if self.txn is None:
            raise IllegalStateError("transactions need a transactional_id")
        return self.txn

    def begin_transaction(self) -> None:
        self._txn().begin()

    async def commit_transaction(self) -> None:
        await self._txn().commit()

    async def abort_transaction(self) -> None:
        await self._txn().abort()

    async def send_offsets_to_transaction(self, offsets: dict, group_id: str, *, generation_id: int = -1,
                                          member_id: str = "", group_instance_id: str | None = None) -> None:
        """Commit a consumer group's offsets as part of the transaction (consume-transform-produce).
        Pass the consumer's ``group.generation_id``/``member_id`` for zombie fencing (KIP-447)."""
        await self._txn().send_offsets(offsets, group_id, generation_id=generation_id, member_id=member_id,
                                       group_instance_id=group_instance_id)

    def transaction(self):
        """``async with producer.transaction(): ...`` commits on success, aborts on an exception."""
        return _Transaction(self)

    async def partitions(self, topic: str) -> list[int]:
        return sorted(await self.cluster.partitions_for(topic))

    # -- the sender task ---------------------------------------------------------------------
    async def _sender(self) -> None:
        acc = self._acc
        try:
            while not self._closed:
                now = time.monotonic()
                acc.expire(now, lambda b: KafkaTimeoutError(
                    f"{len(b.records)} record(s) for {b.tp.topic}-{b.tp.partition} not delivered within "
                    f"delivery.timeout.ms={self.delivery_timeout_ms}"))
                ready, next_at = acc.ready(now)
                if ready:
                    await self._send_ready(ready, now)
                if acc.buffered_bytes <= self.buffer_memory:
                    self._space.set()
                if self._wake.is_set():
                    self._wake = anyio.Event()
                    if ready:
                        continue
                timeout = 0.2 if next_at is None else max(0.0, min(0.2, next_at - time.monotonic()))
                with anyio.move_on_after(timeout):
                    await self._wake.wait()
        except Exception as exc:  # a bug must not leave every caller waiting forever
            log.exception("producer sender failed")
            self._fatal = exc if isinstance(exc, KafkaError) else KafkaError(repr(exc))
            acc.fail_all(self._fatal)
        finally:
            self._sender_done.set()

    async def _send_ready(self, ready: list[TopicPartition], now: float) -> None:
        cluster = self.cluster
        if any(tp.topic not in cluster.topics for tp in ready) or cluster.needs_refresh:
            try:
                await cluster.refresh()
            except KafkaError as exc:
                log.debug("metadata refresh failed: %s", exc)
                return
        if self.txn is not None:
            ready = await self.txn.ensure_added(ready)
            if not ready:
                return
        by_node: dict[int, list[ProducerBatch]] = defaultdict(list)
        for tp in ready:
            leader = cluster.leader_for(tp.topic, tp.partition)
            if leader < 0:
                cluster.invalidate()
                continue
            batch = self._acc.drain(tp, now)
            if batch is None:
                continue
            if self.idempotent and batch.payload is None:
                seq = self._acc.take_sequence(tp, len(batch.records))
            else:
                seq = batch.base_sequence
            batch.build(self.compression, self.producer_id, self.producer_epoch, seq)
            by_node[leader].append(batch)
        # Requests are written here, in drain order, so the batches of a partition reach the
        # broker in sequence order; their answers are awaited in tasks of their own.
        for node, batches in by_node.items():
            topics: dict[str, list] = defaultdict(list)
            for b in batches:
                topics[b.tp.topic].append(PartitionProduceData(index=b.tp.partition, records=b.payload))
            body = ProduceRequest(
                transactional_id=self.transactional_id, acks=self.acks, timeout_ms=self.request_timeout_ms,
                topic_data=[TopicProduceData(name=t, partition_data=ps) for t, ps in topics.items()])
            try:
                conn = await self.cluster.connection(node)
                version = conn.version(ApiKey.PRODUCE, PRODUCE_MAX_VERSION, 3)
                pending = await conn.send(ApiKey.PRODUCE, version, body)
            except KafkaError as exc:
                self._send_failed(batches, exc)
                continue
            self._tg.start_soon(self._await_response, conn, pending, batches)

    def _send_failed(self, batches: list[ProducerBatch], exc: KafkaError) -> None:
        now = time.monotonic()
        self.cluster.invalidate()
        for b in batches:
            self._retry_or_fail(b, exc, now)
        self._wake.set()

    async def _await_response(self, conn, pending, batches: list[ProducerBatch]) -> None:
        acc = self._acc
        try:
            resp = await conn.receive(pending, ApiKey.PRODUCE)
        except KafkaError as exc:
            self._send_failed(batches, exc)
            return
        except BaseException:
            for b in batches:  # cancelled (closing): nobody will answer these now
                if b in acc.queues[b.tp].in_flight:
                    acc.failed(b, IllegalStateError("the producer was closed while the batch was in flight"))
            raise
        if resp is None:  # acks=0
            for b in batches:
                acc.completed(b, -1)
            self._wake.set()
            return
        by_tp = {}
        for t in resp.responses:
            for p in t.partition_responses:
                by_tp[(t.name, p.index)] = p
        now = time.monotonic()
        for b in batches:
            p = by_tp.get((b.tp.topic, b.tp.partition))
            if p is None:
                self._retry_or_fail(b, KafkaConnectionError("the broker's answer left the partition out"), now)
                continue
            code = p.error_code
            if code == ErrorCode.NONE:
                acc.completed(b, p.base_offset, p.log_append_time_ms)
            elif code == ErrorCode.DUPLICATE_SEQUENCE_NUMBER:
                acc.completed(b, p.base_offset if p.base_offset >= 0 else -1, p.log_append_time_ms)
            elif self.idempotent and self.txn is None and (
                    code == ErrorCode.UNKNOWN_PRODUCER_ID
                    or code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER and acc.resetting(b.tp)):
                acc.restart_sequence(b, now)
            else:
                msg = p.error_message or (p.record_errors[0].batch_index_error_message if p.record_errors else None)
                err = error_for(code, msg or f"{b.tp.topic}-{b.tp.partition}")
                if code in _METADATA_ERRORS:
                    self.cluster.invalidate()
                if code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER and self._earlier_retrying(b):
                    acc.retry(b, now)
                else:
                    self._retry_or_fail(b, err, now)
        self._wake.set()

    def _earlier_retrying(self, batch: ProducerBatch) -> bool:
        q = self._acc.queues[batch.tp]
        return any(r.base_sequence < batch.base_sequence for r in q.retries + q.in_flight if r is not batch)

    def _retry_or_fail(self, batch: ProducerBatch, err: KafkaError, now: float) -> None:
        expired = now - batch.created > self.delivery_timeout_ms / 1000
        if err.retriable and not expired and not self._closed:
            self._acc.retry(batch, now)
        else:
            if self._first_error is None:
                self._first_error = err
            self._acc.failed(batch, err)


class _Transaction:
    def __init__(self, producer: Producer) -> None:
        self.producer = producer

    async def __aenter__(self) -> Producer:
        self.producer.begin_transaction()
        return self.producer

    async def __aexit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            await self.producer.commit_transaction()
        else:
            with anyio.CancelScope(shield=True):
                await self.producer.abort_transaction()

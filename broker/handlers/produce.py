"""Produce (key 0): versions 3-11 served; advertised from 0 (see api_versions).

Behaviour: each partition's records (exactly one v2 batch, as Kafka requires from v3) are
validated by storage/validator.py as Kafka's LogValidator does (header, CRC, codec, every
record walked, timestamps, keys on compacted topics), then stamped with offsets and
appended byte for byte. Per-partition errors: UNKNOWN_TOPIC_OR_PARTITION, CORRUPT_MESSAGE
(bad CRC or sizes, undecodable compression), MESSAGE_TOO_LARGE (above max.message.bytes,
or decompressing past message.decompressed.max.bytes), INVALID_RECORD (null records, more
than one batch, counts or offsets that disagree with the records, malformed records,
control or producer fields a client may not send; keyless on a compacted topic),
INVALID_TIMESTAMP (outside message.timestamp.before/after.max.ms),
UNSUPPORTED_COMPRESSION_TYPE (codec ids 5-7), UNSUPPORTED_FOR_MESSAGE_FORMAT (magic 0/1
message sets), INVALID_TOPIC_EXCEPTION (internal topics), KAFKA_STORAGE_ERROR (disk
errors). Keyless and timestamp refusals carry KIP-467 record_errors (the index of each
refused record in its batch) and an error_message (v8+).

acks: 0 sends no response and closes the connection on any error, as Kafka does (the
client has no other way to learn of it); 1 answers once the data is written to the OS;
-1 (all) answers only after the data is fsynced, every partition of the request sharing
one group-committed flush round, bounded by the request's timeout_ms
(REQUEST_TIMED_OUT past it; the data stays appended, as in Kafka). A failed fsync is
never an acknowledgement: KAFKA_STORAGE_ERROR with no offsets, and the partition's log
stays offline (every later write KAFKA_STORAGE_ERROR) until the broker restarts and
recovers it. A full disk at write time is KAFKA_STORAGE_ERROR too, but the write is undone
and the next one succeeds once there is room.

Idempotent producers: a retried batch is answered with its original offsets, and a
sequence gap or a fenced epoch gets its error (the log checks every batch: storage/log.py,
storage/producer_state.py).

Transactional batches are appended only to a partition in the producer's open transaction
(broker/txn/produce_check.py: INVALID_TXN_STATE otherwise, as Kafka's KIP-890 check).

Not implemented: v0-2 (message format v0/v1).
"""

from __future__ import annotations

import trio

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.produce import (
    BatchIndexAndErrorMessage,
    PartitionProduceResponse,
    ProduceResponse,
    TopicProduceResponse,
)

from ..context import CloseConnection, Deferred
from ..txn.produce_check import check_transactional_produce
from ._common import ZERO_UUID, is_internal, resolve_topic, storage_error_code

API_KEY = ApiKey.PRODUCE
MIN_VERSION = 3
MAX_VERSION = 11
ADVERTISED_MIN_VERSION = 0

_VALID_ACKS = (-1, 0, 1)


def _error(index: int, code: ErrorCode, message: str | None = None,
           record_errors=()) -> PartitionProduceResponse:
    return PartitionProduceResponse(
        index=index, error_code=code, base_offset=-1, log_append_time_ms=-1, log_start_offset=-1,
        error_message=message,
        record_errors=[BatchIndexAndErrorMessage(batch_index=e.batch_index,
                                                 batch_index_error_message=e.message)
                       for e in record_errors],
    )


def _append_topic(state, topic, acks, flush_targets, pending, transactional_id=None):
    """Append one topic's partitions; return their responses (some filled in later)."""
    meta = resolve_topic(state, topic.name, getattr(topic, "topic_id", None))
    responses = []
    for part in topic.partition_data:
        index = part.index
        st = state.partitions.lookup(meta, index)
        if st is None:
            responses.append(_error(index, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION))
            continue
        if is_internal(meta.name):
            responses.append(_error(index, ErrorCode.INVALID_TOPIC_EXCEPTION, "cannot produce to an internal topic"))
            continue
        if part.records is None or len(part.records) == 0:
            responses.append(_error(index, ErrorCode.INVALID_RECORD, "produce request without records"))
            continue
        txn_error = check_transactional_produce(state, transactional_id, meta.name, index, part.records)
        if txn_error != ErrorCode.NONE:
            responses.append(_error(index, txn_error, "the partition is not in the producer's open transaction"))
            continue
        try:
            info = state.partitions.append(st, part.records, schedule_flush=acks != -1)
        except Exception as exc:
            # KIP-467: records refused one by one are named (their index in the batch).
            responses.append(_error(index, storage_error_code(exc), str(exc) or None,
                                    getattr(exc, "record_errors", ())))
            continue
        response = PartitionProduceResponse(
            index=index,
            error_code=ErrorCode.NONE,
            base_offset=info.base_offset,
            log_append_time_ms=info.log_append_time_ms,
            log_start_offset=info.log_start_offset,
        )
        responses.append(response)
        if acks == -1:
            flush_targets.append((st, info.last_offset + 1))
            pending.append(response)
    return TopicProduceResponse(name=topic.name, topic_id=getattr(topic, "topic_id", None) or ZERO_UUID,
                                partition_responses=responses)


async def handle(ctx, request) -> ProduceResponse | Deferred | None:
    state = ctx.broker
    acks = request.acks
    if acks not in _VALID_ACKS:
        topics = [
            TopicProduceResponse(name=t.name, partition_responses=[
                _error(p.index, ErrorCode.INVALID_REQUIRED_ACKS) for p in t.partition_data
            ])
            for t in request.topic_data
        ]
        return ProduceResponse(responses=topics, throttle_time_ms=0)
    flush_targets: list = []
    pending: list[PartitionProduceResponse] = []
    topics = [_append_topic(state, t, acks, flush_targets, pending, request.transactional_id)
              for t in request.topic_data]
    if acks == 0:
        failed = [p for t in topics for p in t.partition_responses if p.error_code != ErrorCode.NONE]
        if failed:
            raise CloseConnection(f"acks=0 produce failed with {ErrorCode(failed[0].error_code).name}")
        return None
    if not flush_targets:
        return ProduceResponse(responses=topics, throttle_time_ms=0)
    # The wait below must not hold the request: its records are views of the request's
    # frame, and frames kept alive for an fsync cost fresh memory (and its page faults)
    # for every frame that follows. Measured: 15 % of the broker thread at acks=all.
    timeout_s = max(request.timeout_ms, 0) / 1000

    async def durable() -> ProduceResponse:
        # Appended in order already; the fsync wait lets the next request on the
        # connection run, so pipelined acks=all produces share one flush round.
        error = ErrorCode.REQUEST_TIMED_OUT
        with trio.move_on_after(timeout_s):
            try:
                await state.partitions.flush_many(flush_targets)
                error = ErrorCode.NONE
            except KeyError:  # the topic was deleted while flushing
                error = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            except Exception as exc:  # fsync failed: the write is not durable
                error = storage_error_code(exc)
        if error != ErrorCode.NONE:  # never acknowledged: no offsets, as Kafka answers errors
            for response in pending:
                response.error_code = error
                response.base_offset = response.log_append_time_ms = response.log_start_offset = -1
        return ProduceResponse(responses=topics, throttle_time_ms=0)

    return Deferred(durable)

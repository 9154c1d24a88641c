"""Produce validation: what Kafka's LogValidator checks, for a log that stores batches as sent.

Theory of operation. ``validate_batches`` runs before anything is written and either
returns one ``BatchHeader`` per batch or raises; a refused append changes nothing. For each
batch, in Kafka's order:

1. Header and bytes (UnifiedLog.analyzeAndValidateRecords): magic 2, a length that fits,
   ``max.message.bytes`` (MESSAGE_TOO_LARGE), the CRC (CORRUPT_MESSAGE), a codec id 0-4
   (UNSUPPORTED_COMPRESSION_TYPE; Kafka fails ids 5-7 with an unhandled exception).
2. Batch rules for client appends (ProduceRequest.validateRecords, LogValidator.validateBatch),
   all INVALID_RECORD: exactly one batch per partition, base offset 0, a record count that
   agrees with lastOffsetDelta, no control batch, a producer id comes with a sequence, the
   transactional bit comes with a producer id. Every origin gets the count check: the log's
   offsets are only as good as it.
3. The records (LogValidator.validateRecord): the records section, decompressed with a cap
   (``decompressed_bytes_max``, MESSAGE_TOO_LARGE past it, so a bomb costs at most the cap),
   is walked by ``recordscan.scan`` (C when built): every record's length and fields, offset
   deltas 0..n-1, exactly ``count`` records (INVALID_RECORD otherwise). Then timestamps
   against ``message.timestamp.before.max.ms`` / ``after.max.ms`` (CreateTime topics) and
   keys on compacted topics: these are per-record errors, raised as ``RecordValidationError``
   with KIP-467 ``record_errors`` (the index of each bad record in its batch) and answered
   INVALID_TIMESTAMP when any timestamp is wrong, else INVALID_RECORD, as Kafka does.

The walk gives the smallest and largest timestamp delta and the keyless count in one pass;
the per-record slow path (``record_facts``) runs only to name the records of a failing batch.

The batch's true max timestamp comes from the walk too: ``BatchHeader.max_timestamp`` is what
the log stamps into the header (Kafka overwrites a producer's wrong maxTimestamp the same way),
so the time index never trusts a producer's claim. Records stay byte-identical.

Deliberate differences: Kafka accepts a compressed batch whose inner offsets are not
0..n-1 by rebuilding it; a pass-through log refuses it (INVALID_RECORD). A client batch with
the LogAppendTime bit is refused on every topic (Kafka accepts it on a CreateTime topic when
its maxTimestamp is in range, then reads the records as CreateTime). ``record_errors`` names
at most ``RECORD_ERRORS_MAX`` records (Kafka names all; the message still gives the total).
"""

from __future__ import annotations

from typing import NamedTuple

from crc32c import crc32c

from kafkito.records import codecs
from kafkito.records.batch import (
    ATTRIBUTES_AT,
    BATCH_LENGTH_MIN,
    COMPRESSION_MASK,
    CONTROL_BIT,
    HEADER,
    HEADER_BYTES,
    LOG_OVERHEAD,
    MAGIC,
    MAGIC_AT,
    TIMESTAMP_TYPE_BIT,
    TRANSACTIONAL_BIT,
)
from kafkito.records.codecs import DECOMPRESSED_BYTES_MAX
from kafkito.records.recordscan import RecordScanError, record_facts, scan

from .config import LogConfig
from .errors import (
    CorruptRecordError,
    InvalidRecordError,
    RecordTooLargeError,
    UnsupportedCompressionTypeError,
    UnsupportedMessageFormatError,
)

__all__ = [
    "BatchHeader", "InconsistentBatchError", "InvalidTimestampError", "RecordError",
    "RecordValidationError", "validate_batches",
]

NO_TIMESTAMP = -1
_CODEC_MAX = codecs.ZSTD
# Records named in one refusal's record_errors. Kafka names every one; a 1 MB batch of
# 7-byte records would then answer with ~20 MB of messages, so the list stops here and the
# error message gives the total.
RECORD_ERRORS_MAX = 1000


class InconsistentBatchError(CorruptRecordError, InvalidRecordError):
    """Offsets and counts of a batch disagree. Kafka answers INVALID_RECORD (not the retriable
    CORRUPT_MESSAGE) because resending the same bytes cannot help; it is still a
    ``CorruptRecordError`` for callers that group all malformed-batch errors."""

    error_name = "INVALID_RECORD"


class RecordError(NamedTuple):
    """KIP-467: one refused record. ``batch_index`` is the record's index in its batch."""

    batch_index: int
    message: str


class RecordValidationError(InvalidRecordError):
    """Records refused one by one (keyless on a compacted topic, timestamps out of range);
    the Produce response carries ``record_errors`` and ``str(self)`` as its error message."""

    def __init__(self, message: str, record_errors: list[RecordError]):
        super().__init__(message)
        self.record_errors = record_errors


class InvalidTimestampError(RecordValidationError):
    error_name = "INVALID_TIMESTAMP"


class BatchHeader(NamedTuple):
    """What the append path learns about one validated batch of a produce blob."""

    position: int  # within the blob
    size: int
    attributes: int
    last_offset_delta: int
    max_timestamp: int  # the records' true maximum (what the log stamps)
    records_count: int
    stamp_max_timestamp: bool  # the producer's header disagrees with its records
    # Read here so the log's producer-state check does not parse the header again.
    producer_id: int = -1
    producer_epoch: int = -1
    base_sequence: int = -1
    # With ``key_hashes=True`` (topics with key.index.enable): the keys' hashes from the
    # same walk, for the per-key index (key_index.py); None otherwise.
    key_hashes: list[int] | None = None


def validate_batches(
    blob: bytes | bytearray | memoryview,
    config: LogConfig,
    now_ms: int,
    *,
    from_client: bool = True,
    decompressed_bytes_max: int = DECOMPRESSED_BYTES_MAX,
    key_hashes: bool = False,
) -> list[BatchHeader]:
    """Validate every batch of a produce blob (see the module docstring); raise on the first
    refused batch."""
    mv = memoryview(blob).cast("B") if not isinstance(blob, memoryview) else blob
    n = len(mv)
    if n == 0:
        raise CorruptRecordError("empty records")
    out: list[BatchHeader] = []
    pos = 0
    while pos < n:
        if from_client and out:
            raise InvalidRecordError(
                "Produce requests with version 3 and above must contain exactly one record "
                "batch per partition")
        out.append(_validate_one(mv, pos, n - pos, config, now_ms, from_client,
                                 decompressed_bytes_max, key_hashes))
        pos += out[-1].size
    return out


def _validate_one(mv: memoryview, pos: int, remaining: int, config: LogConfig, now_ms: int,
                  from_client: bool, decompressed_bytes_max: int,
                  key_hashes: bool = False) -> BatchHeader:
    if remaining > MAGIC_AT and mv[pos + MAGIC_AT] != MAGIC:
        raise UnsupportedMessageFormatError(
            f"message format magic {mv[pos + MAGIC_AT]} is not supported; kafkito stores "
            "record batch v2 (magic 2) only")
    if remaining < HEADER_BYTES:
        raise CorruptRecordError(f"truncated batch header ({remaining} bytes)")
    (base_offset, batch_length, _epoch, _magic, crc, attributes, last_offset_delta, base_ts,
     max_ts, producer_id, producer_epoch, base_sequence, count) = HEADER.unpack_from(mv, pos)
    size = batch_length + LOG_OVERHEAD
    if batch_length < BATCH_LENGTH_MIN or size > remaining:
        raise CorruptRecordError(
            f"batch length {batch_length} is impossible with {remaining} bytes left")
    if size > config.max_message_bytes:
        raise RecordTooLargeError(
            f"The record batch size is {size} bytes which exceeds the maximum configured "
            f"value of max.message.bytes={config.max_message_bytes}")
    if crc32c(mv[pos + ATTRIBUTES_AT : pos + size]) != crc:
        raise CorruptRecordError(f"Record is corrupt (stored crc = {crc})")
    codec = attributes & COMPRESSION_MASK
    if codec > _CODEC_MAX:
        raise UnsupportedCompressionTypeError(f"Unknown compression type id: {codec}")
    if count <= 0 or last_offset_delta != count - 1:
        raise InconsistentBatchError(
            f"Inconsistent batch offset range [0, {last_offset_delta}] and count of records {count}")
    if from_client:
        if base_offset != 0:
            raise InvalidRecordError(
                f"The baseOffset of the record batch in the append should be 0, but it is {base_offset}")
        if attributes & CONTROL_BIT:
            raise InvalidRecordError("Clients are not allowed to write control records")
        if producer_id >= 0 and base_sequence < 0:
            raise InvalidRecordError(
                f"Invalid sequence number {base_sequence} in record batch with producerId {producer_id}")
        if attributes & TRANSACTIONAL_BIT and producer_id < 0:
            raise InvalidRecordError("Transactional record batch without a producer id")

    section = mv[pos + HEADER_BYTES : pos + size]
    if codec:
        section = codecs.decompress(codec, section, decompressed_bytes_max)
    elif len(section) > decompressed_bytes_max:
        raise RecordTooLargeError(f"records exceed the cap of {decompressed_bytes_max} bytes")
    hashes = None
    try:
        if key_hashes:
            ts_min, ts_max, keyless, hashes = scan(section, count, True)
        else:
            ts_min, ts_max, keyless = scan(section, count)
    except RecordScanError as e:
        raise InvalidRecordError(f"{e.message} (record {e.record_index} of the batch)") from None

    true_max = max(NO_TIMESTAMP, base_ts + ts_max)
    if from_client:
        _check_records(section, count, config, now_ms, attributes, base_ts, ts_min, ts_max,
                       keyless)
    return BatchHeader(pos, size, attributes, last_offset_delta, true_max, count,
                       true_max != max_ts, producer_id, producer_epoch, base_sequence, hashes)


def _check_records(section, count: int, config: LogConfig, now_ms: int, attributes: int,
                   base_ts: int, ts_min: int, ts_max: int, keyless: int) -> None:
    """Keys (compacted topics) and timestamps: fast answers from the walk's summary, the
    per-record walk only for a batch that fails."""
    producer_lat = bool(attributes & TIMESTAMP_TYPE_BIT)
    low = now_ms - config.message_timestamp_before_max_ms
    high = now_ms + config.message_timestamp_after_max_ms
    check_ts = not config.log_append_time
    ts_ok = not producer_lat and (not check_ts or (base_ts + ts_min >= low and base_ts + ts_max <= high))
    if ts_ok and not (config.compact and keyless):
        return
    errors: list[RecordError] = []
    bad_timestamp = False
    total = 0
    for i, (ts_delta, key_null) in enumerate(record_facts(section, count)):
        if config.compact and key_null:
            message = "Compacted topic cannot accept message without key"
        elif producer_lat:
            bad_timestamp = True
            message = ("Invalid timestamp type in message: the producer should not set timestamp "
                       "type to LogAppendTime")
        elif check_ts and base_ts + ts_delta != NO_TIMESTAMP and not low <= base_ts + ts_delta <= high:
            bad_timestamp = True
            message = (f"Timestamp {base_ts + ts_delta} of message with offset {i} is out of range. "
                       f"The timestamp should be within [{low}, {high}]")
        else:
            continue
        total += 1
        if len(errors) < RECORD_ERRORS_MAX:
            errors.append(RecordError(i, message))
    if not errors:
        return
    if bad_timestamp:
        raise InvalidTimestampError("One or more records have been rejected due to invalid timestamp",
                                    errors)
    shown = ", ".join(f"{e.batch_index}: {e.message}" for e in errors[:3])
    raise RecordValidationError(
        f"One or more records have been rejected due to {total} record errors in total, "
        f"and only showing the first three errors at most: [{shown}]", errors)

"""Errors raised by the storage layer.

Every error derives from ``StorageError``. Each class names the Kafka error code the broker
should answer with in ``error_name`` (a plain string, because storage imports no protocol:
the broker maps it with ``ErrorCode[exc.error_name]``).

The record-format errors (a corrupt or oversized batch, an unknown codec, magic 0/1, an
invalid record) belong to ``kafkito.records``, which raises them too; they are re-exported
here, and ``StorageError`` is their root ``kafkito.records.errors.ApiError``, so callers
catch them from storage as before.
"""

from __future__ import annotations

from kafkito.records.errors import (  # the record-format errors: re-exported
    ApiError,
    CorruptRecordError,
    InvalidRecordError,
    RecordTooLargeError,
    UnsupportedCompressionTypeError,
    UnsupportedMessageFormatError,
)

# The root of the errors storage raises is the record format's (records may not import
# storage): so ``except StorageError`` also catches what the codecs and the batch parser
# raise inside an append, and the broker translates them through ``error_name``.
StorageError = ApiError


class KafkaStorageError(StorageError):
    """An I/O failure (ENOSPC, EACCES, EIO, ...). The log stays consistent: a failed append is
    rolled back, so the log is readable and appendable again once the cause is gone. A failed
    fsync is different (the kernel may have dropped dirty pages), so it takes the log offline
    until it is reopened and recovered."""

    error_name = "KAFKA_STORAGE_ERROR"

    def __init__(self, message: str, errno: int | None = None):
        super().__init__(message)
        self.errno = errno


class OffsetOutOfRangeError(StorageError):
    error_name = "OFFSET_OUT_OF_RANGE"

    def __init__(self, offset: int, log_start_offset: int, log_end_offset: int):
        super().__init__(
            f"offset {offset} is outside the log range [{log_start_offset}, {log_end_offset}]"
        )
        self.offset = offset
        self.log_start_offset = log_start_offset
        self.log_end_offset = log_end_offset


class InvalidConfigError(StorageError):
    error_name = "INVALID_CONFIG"

    def __init__(self, name: str, value: object, reason: str):
        super().__init__(f"Invalid value {value!r} for configuration {name}: {reason}")
        self.name = name
        self.value = value
        self.reason = reason


class TopicExistsError(StorageError):
    error_name = "TOPIC_ALREADY_EXISTS"


class UnknownTopicError(StorageError):
    error_name = "UNKNOWN_TOPIC_OR_PARTITION"


class InvalidTopicError(StorageError):
    error_name = "INVALID_TOPIC_EXCEPTION"


class InvalidPartitionsError(StorageError):
    error_name = "INVALID_PARTITIONS"


class PolicyViolationError(StorageError):
    """A request within the protocol's rules that a broker limit refuses (too many
    partitions in one request or on the broker)."""

    error_name = "POLICY_VIOLATION"


class DataDirLockedError(StorageError):
    """Another process (a second broker) holds the data directory's lock file."""

    error_name = "KAFKA_STORAGE_ERROR"


class CorruptMetadataError(StorageError):
    """A metadata file we wrote fails its version or checksum check; we refuse to guess."""

    error_name = "KAFKA_STORAGE_ERROR"


class LogClosedError(StorageError):
    error_name = "NOT_LEADER_OR_FOLLOWER"

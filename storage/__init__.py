"""kafkito.storage: the durable partition log engine (no trio, no sockets, no protocol).

The record format it stores (record batch v2, the codecs, the record walk) is
``kafkito.records``, shared with the client. Storage re-exports the batch names and the
record-format errors it raises, so its callers catch ``StorageError`` as before.

Modules: ``validator`` (produce validation as Kafka's LogValidator, over the record walk of
``kafkito.records.recordscan``), ``index`` (Kafka's .index and .timeindex), ``segment`` (one
segment and its recovery), ``log`` (PartitionLog: append, read, flush policy and flush,
retention, recovery), ``producer_state`` (producers' state, open transactions and its
snapshots, owned by the log), ``txn_index`` (the aborted-transaction index, Kafka's ``.txnindex``), ``manager`` (LogManager: topics, metadata, lock), ``config`` (LogConfig and the
topic config table), ``clock``, ``fileio`` (the I/O seam tests hook faults into), ``handles``
(segment files opened on demand behind an LRU), ``metafile`` (atomic checksummed metadata
files), ``damage`` (telling a damaged batch, resyncing past it, describing it), ``verify``
(``kafkito verify``), ``errors``; the package ``remote`` is the remote tier (tiered storage).
"""

from kafkito.records.batch import Record, RecordBatch, build_batch, iter_batches

from .clock import Clock, ManualClock, SystemClock
from .config import TOPIC_CONFIGS, ConfigSpec, LogConfig
from .errors import (
    CorruptMetadataError,
    CorruptRecordError,
    DataDirLockedError,
    InvalidConfigError,
    InvalidPartitionsError,
    InvalidRecordError,
    InvalidTopicError,
    KafkaStorageError,
    LogClosedError,
    OffsetOutOfRangeError,
    PolicyViolationError,
    RecordTooLargeError,
    StorageError,
    TopicExistsError,
    UnknownTopicError,
    UnsupportedCompressionTypeError,
    UnsupportedMessageFormatError,
)
from .fileio import DEFAULT_IO, FileIO
from .handles import OpenFiles
from .log import AppendInfo, FileSlice, PartitionLog, RecoveryReport
from .manager import LogManager, TopicMetadata

__all__ = [
    "AppendInfo", "Clock", "ConfigSpec", "CorruptMetadataError", "CorruptRecordError",
    "DataDirLockedError", "DEFAULT_IO", "FileIO", "FileSlice", "InvalidConfigError",
    "InvalidPartitionsError", "InvalidRecordError", "InvalidTopicError", "KafkaStorageError",
    "LogClosedError", "LogConfig", "LogManager", "ManualClock", "OffsetOutOfRangeError",
    "OpenFiles", "PolicyViolationError",
    "PartitionLog", "Record", "RecordBatch", "RecordTooLargeError", "RecoveryReport",
    "StorageError", "SystemClock", "TOPIC_CONFIGS", "TopicExistsError", "TopicMetadata",
    "UnknownTopicError", "UnsupportedCompressionTypeError", "UnsupportedMessageFormatError",
    "build_batch", "iter_batches",
]

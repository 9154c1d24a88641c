"""kafkito.records: the record format shared by storage and the client (imports nothing else of ours).

Modules: ``batch`` (record batch v2: header view, stamping, builder, record iteration),
``codecs`` (gzip/snappy/lz4/zstd with a decompression cap), ``recordscan`` (the walk over a
records section that produce validation runs; C in ``_recscan.c`` when built), ``errors``
(the record-format errors, each naming its Kafka error code), ``control`` (transaction
markers: building and reading COMMIT/ABORT control batches, the read_committed filter).

Storage validates, stores and serves batches in this format; the client will build and parse
them. Neither needs the other for that, so the format sits below both: this package imports
no storage, protocol, broker or trio (tests/test_layers.py pins it).
"""

from .batch import Record, RecordBatch, build_batch, iter_batches
from .errors import (
    ApiError,
    CorruptRecordError,
    InvalidRecordError,
    RecordTooLargeError,
    UnsupportedCompressionTypeError,
    UnsupportedMessageFormatError,
)

__all__ = [
    "ApiError", "CorruptRecordError", "InvalidRecordError", "Record", "RecordBatch",
    "RecordTooLargeError", "UnsupportedCompressionTypeError", "UnsupportedMessageFormatError",
    "build_batch", "iter_batches",
]

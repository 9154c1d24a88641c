"""Errors of the record format: a batch that does not parse, is too large, or uses a codec or
a message format kafkito does not take.

Every error derives from ``ApiError`` (Kafka's ApiException: an error that is part of the
protocol) and names the Kafka error code to answer with in ``error_name``, a plain string
because this package imports nothing of ours (the broker maps it with
``ErrorCode[exc.error_name]``). The root lives here, in the lowest layer, so that storage can
use it as its own root: ``kafkito.storage.StorageError`` *is* ``ApiError``, and an ``except
StorageError`` around an append still catches a corrupt batch that the codecs found.
"""

from __future__ import annotations


class ApiError(Exception):
    """Base class of everything kafkito's record format and storage raise on purpose."""

    error_name = "UNKNOWN_SERVER_ERROR"


class CorruptRecordError(ApiError):
    """A batch fails its CRC or its sizes, offsets and counts disagree."""

    error_name = "CORRUPT_MESSAGE"


class InvalidRecordError(ApiError):
    """A well-formed batch that a log must not accept (keyless record on a compacted topic,
    control batch from a client, bad producer fields)."""

    error_name = "INVALID_RECORD"


class UnsupportedMessageFormatError(ApiError):
    """Magic 0 or 1 message sets: kafkito stores record batch v2 only."""

    error_name = "UNSUPPORTED_FOR_MESSAGE_FORMAT"


class UnsupportedCompressionTypeError(ApiError):
    error_name = "UNSUPPORTED_COMPRESSION_TYPE"


class RecordTooLargeError(ApiError):
    """A batch larger than max.message.bytes, or one that decompresses past the cap."""

    error_name = "MESSAGE_TOO_LARGE"

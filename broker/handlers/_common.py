"""Helpers shared by handlers: topic lookup and storage-error translation."""

from __future__ import annotations

import logging
import uuid

from kafkito import storage
from kafkito.protocol import ErrorCode
from kafkito.storage import producer_state

log = logging.getLogger("kafkito.broker.handlers")

ZERO_UUID = uuid.UUID(int=0)
AUTHORIZED_OPERATIONS_OMITTED = -(2**31)  # Kafka's "not computed" value

# Storage exceptions -> the Kafka error a client expects for them.
_STORAGE_ERRORS: tuple[tuple[type, ErrorCode], ...] = tuple(
    (cls, code)
    for name, code in (
        ("CorruptRecordError", ErrorCode.CORRUPT_MESSAGE),
        ("RecordTooLargeError", ErrorCode.MESSAGE_TOO_LARGE),
        ("InvalidRecordError", ErrorCode.INVALID_RECORD),
        ("UnsupportedMessageFormatError", ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT),
        ("OffsetOutOfRangeError", ErrorCode.OFFSET_OUT_OF_RANGE),
        ("TopicExistsError", ErrorCode.TOPIC_ALREADY_EXISTS),
        ("InvalidTopicError", ErrorCode.INVALID_TOPIC_EXCEPTION),
        ("InvalidPartitionsError", ErrorCode.INVALID_PARTITIONS),
        ("InvalidConfigError", ErrorCode.INVALID_CONFIG),
        ("KafkaStorageError", ErrorCode.KAFKA_STORAGE_ERROR),
    )
    if (cls := getattr(storage, name, None)) is not None
) + (
    (producer_state.InvalidProducerEpochError, ErrorCode.INVALID_PRODUCER_EPOCH),
    (producer_state.OutOfOrderSequenceError, ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER),
    (producer_state.UnknownProducerIdError, ErrorCode.UNKNOWN_PRODUCER_ID),
)


def storage_error_code(exc: BaseException) -> ErrorCode:
    for cls, code in _STORAGE_ERRORS:
        if isinstance(exc, cls):
            return code
    log.error("unexpected storage failure", exc_info=exc)
    return ErrorCode.UNKNOWN_SERVER_ERROR


def is_internal(name: str) -> bool:
    return name.startswith("__")


def resolve_topic(state, name: str | None, topic_id: uuid.UUID | None):
    """TopicMetadata by name, or by id when the request version names topics by id."""
    if name:
        return state.logs.topic(name)
    if topic_id is not None and topic_id != ZERO_UUID:
        return state.logs.topic_by_id(topic_id)
    return None

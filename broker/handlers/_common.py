"""Helpers shared by handlers: topic lookup and storage-error translation."""

from __future__ import annotations

import logging
import uuid

from kafkito.protocol import ErrorCode
from kafkito.storage import StorageError

from ..internal_topics import is_internal  # noqa: F401  (re-exported for the handlers)

log = logging.getLogger("kafkito.broker.handlers")

ZERO_UUID = uuid.UUID(int=0)
AUTHORIZED_OPERATIONS_OMITTED = -(2**31)  # Kafka's "not computed" value

def storage_error_code(exc: BaseException) -> ErrorCode:
    """The Kafka error for a storage exception: each one names it in ``error_name``."""
    name = getattr(exc, "error_name", None)
    if isinstance(exc, StorageError) and name in ErrorCode.__members__:
        return ErrorCode[name]
    log.error("unexpected storage failure", exc_info=exc)
    return ErrorCode.UNKNOWN_SERVER_ERROR


def resolve_topic(state, name: str | None, topic_id: uuid.UUID | None):
    """TopicMetadata by name, or by id when the request version names topics by id."""
    if name:
        return state.logs.topic(name)
    if topic_id is not None and topic_id != ZERO_UUID:
        return state.logs.topic_by_id(topic_id)
    return None

"""Helpers shared by handlers: topic lookup and storage-error translation."""

from __future__ import annotations

import uuid

from ..errors import storage_error_code  # noqa: F401  (re-exported for the handlers)
from ..internal_topics import is_internal  # noqa: F401  (re-exported for the handlers)

ZERO_UUID = uuid.UUID(int=0)
AUTHORIZED_OPERATIONS_OMITTED = -(2**31)  # Kafka's "not computed" value


def resolve_topic(state, name: str | None, topic_id: uuid.UUID | None):
    """TopicMetadata by name, or by id when the request version names topics by id."""
    if name:
        return state.logs.topic(name)
    if topic_id is not None and topic_id != ZERO_UUID:
        return state.logs.topic_by_id(topic_id)
    return None

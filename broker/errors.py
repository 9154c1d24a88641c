"""Kafka error codes for failures inside the broker (shared by handlers and coordinators)."""

from __future__ import annotations

import logging

from kafkito.protocol import ErrorCode
from kafkito.storage import StorageError

__all__ = ["storage_error_code"]

log = logging.getLogger("kafkito.broker")


def storage_error_code(exc: BaseException) -> ErrorCode:
    """The Kafka error for a storage exception: each one names it in ``error_name``."""
    name = getattr(exc, "error_name", None)
    if isinstance(exc, StorageError) and name in ErrorCode.__members__:
        return ErrorCode[name]
    log.error("unexpected storage failure", exc_info=exc)
    return ErrorCode.UNKNOWN_SERVER_ERROR

"""Control records: the commit and abort markers of transactions (ControlRecordType,
EndTxnMarker.json).

A control batch (attribute bit 5) holds one record whose key is ``ControlRecordKey``: an
int16 version (0) and an int16 type, 0 for ABORT and 1 for COMMIT (Kafka's
``ControlRecordType``; 2-6 belong to KRaft's own log). The value of an ABORT or COMMIT
marker is ``EndTxnMarker``: an int16 version (0) and the coordinator epoch that wrote it,
so a zombie coordinator's late marker can be told apart.

Declared now so the transaction coordinator and storage's last-stable-offset logic share
one spelling; nothing writes control batches yet.
"""

from __future__ import annotations

import enum

from ..schema import field, struct
from ..types import INT16, INT32
from .versioned import VersionedSchema

__all__ = ["CONTROL_RECORD_KEY", "END_TXN_MARKER", "ControlRecordKey", "ControlRecordType", "EndTxnMarker"]


class ControlRecordType(enum.IntEnum):
    ABORT = 0
    COMMIT = 1


ControlRecordKey = struct(
    "ControlRecordKey",
    field("type", INT16),
)

EndTxnMarker = struct(
    "EndTxnMarker",
    field("coordinator_epoch", INT32),
)

CONTROL_RECORD_KEY = VersionedSchema(ControlRecordKey, "0")
END_TXN_MARKER = VersionedSchema(EndTxnMarker, "0")

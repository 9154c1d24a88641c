"""Reading a control batch's marker: COMMIT or ABORT (protocol/records/control.py)."""

from __future__ import annotations

from kafkito.protocol.errors import ProtocolError
from kafkito.protocol.records.control import CONTROL_RECORD_KEY, ControlRecordType

__all__ = ["is_commit_marker"]


def is_commit_marker(batch) -> bool:
    """Is this control batch a transaction's COMMIT marker? (Anything else, an ABORT or a
    control record that is not a transaction marker, reads as not a commit.)"""
    for record in batch.records():
        if record.key is None:
            return False
        try:
            _, key = CONTROL_RECORD_KEY.decode(record.key, exact=False)
        except ProtocolError:
            return False
        return key.type == ControlRecordType.COMMIT
    return False

"""Declarations of the records Kafka keeps inside its own topics and batches.

The API messages (``protocol.messages``) travel in frames; these travel as record keys and
values: ``group_coordinator`` (``__consumer_offsets``), ``transaction_log``
(``__transaction_state``), ``control`` (transaction markers in control batches) and
``consumer_protocol`` (the subscription and assignment bytes classic consumer groups
relay). They are declared with the same DSL and encoded by the same derived codec;
``versioned`` holds the one thing they add: the int16 version (or record type) prefix.
See ``versioned`` for the theory of operation.
"""

from .versioned import CoordinatorRecordType, CoordinatorRecords, VersionedSchema

__all__ = ["CoordinatorRecordType", "CoordinatorRecords", "VersionedSchema"]

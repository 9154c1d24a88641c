"""The records of ``__transaction_state`` (Kafka's transaction-coordinator schemas).

One record type: key ``TransactionLogKey`` (type 0: the transactional id), value
``TransactionLogValue`` (versions 0-1, flexible from 1): the producer id and epoch the
transactional id holds, the timeout, the status (Kafka's ``TransactionState`` ids: 0
Empty, 1 Ongoing, 2 PrepareCommit, 3 PrepareAbort, 4 CompleteCommit, 5 CompleteAbort,
6 Dead, 7 PrepareEpochFence), the partitions in the transaction, and timestamps. Version 1
adds three tagged fields (KIP-890): the previous and next producer ids and the client's
transaction version.

Declared now so the transaction coordinator reads and writes these from the same
declarations as the group coordinator's records; nothing writes them yet.
"""

from __future__ import annotations

from ..schema import field, struct
from ..types import INT8, INT16, INT32, INT64, STRING, array
from .versioned import CoordinatorRecordType, CoordinatorRecords, VersionedSchema

__all__ = [
    "TRANSACTION_LOG",
    "TRANSACTION_STATE_RECORDS",
    "TransactionLogKey",
    "TransactionLogValue",
    "TransactionPartitions",
]

TransactionLogKey = struct(
    "TransactionLogKey",
    field("transactional_id", STRING),
)

TransactionPartitions = struct(
    "TransactionPartitions",
    field("topic", STRING),
    field("partition_ids", array(INT32)),
)

TransactionLogValue = struct(
    "TransactionLogValue",
    field("producer_id", INT64),
    field("previous_producer_id", INT64, "1+", tag=0, default=-1),
    field("next_producer_id", INT64, "1+", tag=1, default=-1),
    field("producer_epoch", INT16),
    field("transaction_timeout_ms", INT32),
    field("transaction_status", INT8),
    field("transaction_partitions", array(TransactionPartitions), nullable="0+"),
    field("transaction_last_update_timestamp_ms", INT64),
    field("transaction_start_timestamp_ms", INT64),
    field("client_transaction_version", INT16, "1+", tag=2, default=0),
)

TRANSACTION_LOG = CoordinatorRecordType(0, TransactionLogKey, VersionedSchema(TransactionLogValue, "0-1", "1+"))
TRANSACTION_STATE_RECORDS = CoordinatorRecords("__transaction_state", [TRANSACTION_LOG])

"""EndTxn (key 26): versions 0-4.

Commits or aborts the producer's open transaction: PrepareCommit/PrepareAbort is fsynced
in ``__transaction_state``, the COMMIT/ABORT marker is written to every partition of the
transaction (``__consumer_offsets`` included, for TxnOffsetCommit's offsets) and fsynced,
then CompleteCommit/CompleteAbort is written, and only then is the request answered: once
a commit returns, read_committed consumers see its records. A retried EndTxn of a
transaction that already ended the same way succeeds; the other way is INVALID_TXN_STATE,
as is ending a transaction that was never begun. PRODUCER_FENCED (an older epoch, e.g. a
zombie whose transaction timed out) reads as INVALID_PRODUCER_EPOCH before v2.

Not served: v5 (KIP-890 transaction version 2, which returns a new epoch per transaction;
this broker does not finalise ``transaction.version`` 2).
"""

from __future__ import annotations

from kafkito.protocol import ApiKey
from kafkito.protocol.messages.end_txn import EndTxnResponse

from ..context import Deferred
from ._txn import fenced_for, unavailable

API_KEY = ApiKey.END_TXN
MIN_VERSION = 0
MAX_VERSION = 4


async def handle(ctx, request) -> EndTxnResponse | Deferred:
    v = ctx.api_version
    down = unavailable(ctx)
    if down is not None:
        return EndTxnResponse(throttle_time_ms=0, error_code=down)
    txns = ctx.broker.txns
    waiter = txns.end_txn(request.transactional_id, request.producer_id, request.producer_epoch, request.committed)

    async def answer() -> EndTxnResponse:
        return EndTxnResponse(throttle_time_ms=0, error_code=fenced_for(v, 2, await txns.wait(waiter)))

    return Deferred(answer)

"""ListTransactions (key 66): versions 0-2.

Every transactional id the coordinator holds, with its producer id and state, filtered
by state names (``state_filters``; names Kafka does not know come back in
``unknown_state_filters`` and match nothing), by producer ids, from v1 by duration (open
transactions running at least ``duration_filter`` ms) and from v2 by a regular expression
the whole id must match (``transactional_id_pattern``; INVALID_REQUEST if it does not
compile).
"""

from __future__ import annotations

import re

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.list_transactions import ListTransactionsResponse, TransactionState

from ._txn import unavailable

API_KEY = ApiKey.LIST_TRANSACTIONS
MIN_VERSION = 0
MAX_VERSION = 2


async def handle(ctx, request) -> ListTransactionsResponse:
    v = ctx.api_version
    down = unavailable(ctx)
    if down is not None:
        return ListTransactionsResponse(throttle_time_ms=0, error_code=down, unknown_state_filters=[],
                                        transaction_states=[])
    pattern = request.transactional_id_pattern if v >= 2 else None
    if pattern:
        try:
            re.compile(pattern)
        except re.error:
            return ListTransactionsResponse(throttle_time_ms=0, error_code=ErrorCode.INVALID_REQUEST,
                                            unknown_state_filters=[], transaction_states=[])
    rows, unknown = ctx.broker.txns.list_transactions(
        states=request.state_filters, producer_ids=request.producer_id_filters,
        duration_ms=request.duration_filter if v >= 1 else -1, id_pattern=pattern or None)
    return ListTransactionsResponse(
        throttle_time_ms=0, error_code=ErrorCode.NONE, unknown_state_filters=unknown,
        transaction_states=[TransactionState(transactional_id=t, producer_id=p, transaction_state=s)
                            for t, p, s in rows])

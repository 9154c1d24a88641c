"""InitProducerId (key 22): versions 0-5, for idempotent and transactional producers.

Behaviour: a request without a transactional id gets a fresh producer id (never reused:
see producer_ids.py) with epoch 0. A request naming its current producer id and epoch
(v3+, KIP-360: the client lost track of its sequences) gets the same id with the epoch
bumped, or a fresh id when the epoch would overflow. Sequence checks happen on Produce
(storage/producer_state.py).

When the next block of ids cannot be recorded (a full disk), the answer is
COORDINATOR_LOAD_IN_PROGRESS, as Kafka's while its id block is not yet available: clients
retry, and succeed once there is room.

With a transactional id the transaction coordinator answers (broker/txn/coordinator.py):
the id's producer id with its epoch bumped on every call, fencing older incarnations; an
open transaction of the previous incarnation is aborted first (CONCURRENT_TRANSACTIONS
until it is, and the client retries); INVALID_TRANSACTION_TIMEOUT for a
``transaction_timeout_ms`` outside 1..``transaction.max.timeout.ms``. PRODUCER_FENCED
(a stale KIP-360 producer id/epoch) reads as INVALID_PRODUCER_EPOCH before v4.

Not served: v6 (KIP-939 two-phase commit).
"""

from __future__ import annotations

import logging

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.init_producer_id import InitProducerIdResponse

from ..context import Deferred
from ._txn import fenced_for, unavailable

API_KEY = ApiKey.INIT_PRODUCER_ID
MIN_VERSION = 0
MAX_VERSION = 5

EPOCH_MAX = 2**15 - 1
log = logging.getLogger("kafkito.broker.handlers")


async def handle(ctx, request) -> InitProducerIdResponse | Deferred:
    state = ctx.broker
    if request.transactional_id is not None:
        return _transactional(ctx, request)
    pid, epoch = request.producer_id, request.producer_epoch
    if pid >= 0 and 0 <= epoch < EPOCH_MAX - 1:
        return InitProducerIdResponse(throttle_time_ms=0, error_code=ErrorCode.NONE,
                                      producer_id=pid, producer_epoch=epoch + 1)
    try:
        producer_id = state.producer_ids.next_id()
    except OSError as exc:
        # The next id block could not be recorded (a full disk): Kafka's answer while its
        # id block is not yet available, which clients retry.
        log.warning("cannot reserve producer ids: %s", exc.strerror or exc)
        return InitProducerIdResponse(throttle_time_ms=0, error_code=ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
                                      producer_id=-1, producer_epoch=-1)
    return InitProducerIdResponse(throttle_time_ms=0, error_code=ErrorCode.NONE,
                                  producer_id=producer_id, producer_epoch=0)


def _transactional(ctx, request) -> InitProducerIdResponse | Deferred:
    v = ctx.api_version

    def response(error: ErrorCode, pid: int = -1, epoch: int = -1) -> InitProducerIdResponse:
        return InitProducerIdResponse(throttle_time_ms=0, error_code=fenced_for(v, 4, error),
                                      producer_id=pid, producer_epoch=epoch)

    down = unavailable(ctx)
    if down is not None:
        return response(down)
    txns = ctx.broker.txns
    waiter = txns.init_producer_id(request.transactional_id, request.transaction_timeout_ms,
                                   request.producer_id if v >= 3 else -1,
                                   request.producer_epoch if v >= 3 else -1)

    async def answer() -> InitProducerIdResponse:
        r = await txns.wait(waiter)
        return response(r.error, r.producer_id, r.producer_epoch)

    return Deferred(answer)

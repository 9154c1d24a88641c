"""InitProducerId (key 22): versions 0-5, for idempotent producers.

Behaviour: a request without a transactional id gets a fresh producer id (never reused:
see producer_ids.py) with epoch 0. A request naming its current producer id and epoch
(v3+, KIP-360: the client lost track of its sequences) gets the same id with the epoch
bumped, or a fresh id when the epoch would overflow. Sequence checks happen on Produce
(storage/producer_state.py).

When the next block of ids cannot be recorded (a full disk), the answer is
COORDINATOR_LOAD_IN_PROGRESS, as Kafka's while its id block is not yet available: clients
retry, and succeed once there is room.

Not implemented: transactions. A request with a transactional id is answered with
INVALID_REQUEST (a fatal error in every client, so the application learns at once
rather than retrying), and the connection's log says why.
"""

from __future__ import annotations

import logging

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.init_producer_id import InitProducerIdResponse

API_KEY = ApiKey.INIT_PRODUCER_ID
MIN_VERSION = 0
MAX_VERSION = 5

EPOCH_MAX = 2**15 - 1
log = logging.getLogger("kafkito.broker.handlers")
_warned: set[str] = set()


async def handle(ctx, request) -> InitProducerIdResponse:
    state = ctx.broker
    if request.transactional_id is not None:
        if request.transactional_id not in _warned:  # clients retry; say it once
            _warned.add(request.transactional_id)
            log.warning("InitProducerId with transactional id %r from %s: transactions are not served",
                        request.transactional_id, ctx.client_host)
        return InitProducerIdResponse(throttle_time_ms=0, error_code=ErrorCode.INVALID_REQUEST,
                                      producer_id=-1, producer_epoch=-1)
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

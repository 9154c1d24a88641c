"""Fetch (key 1): versions 4-16.

Behaviour:
- Returns whole record batches, starting with the batch that contains the fetch offset
  (a consumer may ask for an offset inside a compressed batch), read straight from the
  segment file and sent with sendfile(2).
- Only data below the high watermark (the flushed offset) is served.
- KIP-74 limits: ``max_bytes`` (capped by ``fetch.max.bytes``) and each partition's
  ``partition_max_bytes``; the first batch of the first partition with data is returned
  even when larger than either, so a consumer can never get stuck.
- Long-poll: with less than ``min_bytes`` available the request waits up to
  ``max_wait_ms``, and is woken the moment one of its partitions' high watermark moves
  (no polling loop). ``max.waiting.fetches`` bounds how many may wait at once; past it
  a fetch answers at once with what there is.
- Errors per partition: UNKNOWN_TOPIC_OR_PARTITION (UNKNOWN_TOPIC_ID for v13+ ids),
  OFFSET_OUT_OF_RANGE below the log start or beyond the log end. An empty partition
  answers with empty, non-null records.
- Fetch sessions (KIP-227) are answered as sessionless: session id 0, every request a
  full fetch; an incremental request for a session id we never gave out gets
  FETCH_SESSION_ID_NOT_FOUND. Clients handle this as Kafka's own "no session" answer.
- read_committed (``isolation_level`` 1): reads stop at the last stable offset (the first
  offset of the earliest transaction not yet decided and flushed), and each partition
  names the aborted transactions overlapping what it returns, (producer id, first offset)
  from the log's ``.txnindex``, so the consumer drops their records. read_uncommitted
  reads to the high watermark and gets a null list, as on Kafka. Every response carries
  the last stable offset, whatever the isolation level. A long poll is woken when the
  high watermark moves, which is also the only time the last stable offset moves.
- Tiered storage: an offset below the local log start is read from the remote tier
  (storage/remote/) in a worker thread, after the local pass; its batches are copied into
  the response byte for byte (no sendfile), so a consumer cannot tell them apart.
"""

from __future__ import annotations

from functools import partial

import trio

from kafkito.protocol import ApiKey, ErrorCode, RecordsRef
from kafkito.protocol.messages.fetch import (
    AbortedTransaction,
    FetchableTopicResponse,
    FetchResponse,
    PartitionData,
)
from kafkito.storage.remote import RemoteSlice

from ..context import Deferred
from ..remote_offload import remote_read_limiter
from ._common import ZERO_UUID, resolve_topic, storage_error_code

API_KEY = ApiKey.FETCH
MIN_VERSION = 4
MAX_VERSION = 16

_READ_COMMITTED = 1
_SESSIONLESS_EPOCH = -1


def _aborted(plog, offset: int, end: int) -> list[AbortedTransaction]:
    return [AbortedTransaction(producer_id=pid, first_offset=first)
            for pid, first in plog.aborted_transactions(offset, end)]


class _Reader:
    """Reads one pass over the requested partitions, tracking the byte budget."""

    def __init__(self, state, request, version: int) -> None:
        self.state = state
        self.request = request
        self.by_id = version >= 13
        self.read_committed = request.isolation_level == _READ_COMMITTED
        self.budget = min(request.max_bytes, state.config.fetch_max_bytes)
        self.nbytes = 0
        self.errors = False
        self.watch: list = []  # the partitions to wait on when there is too little data
        self.remote: list = []  # (result, log, offset, bound, partition_max_bytes) to read remotely

    def partition(self, meta, part) -> PartitionData:
        index = part.partition
        st = self.state.partitions.lookup(meta, index)
        if st is None:
            self.errors = True
            code = ErrorCode.UNKNOWN_TOPIC_ID if self.by_id and meta is None else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            return PartitionData(partition_index=index, error_code=code, high_watermark=-1,
                                 last_stable_offset=-1, log_start_offset=-1, records=b"")
        self.watch.append(st)
        plog = st.log
        hw = st.high_watermark
        lso = plog.last_stable_offset
        log_start = plog.log_start_offset
        result = PartitionData(
            partition_index=index,
            error_code=ErrorCode.NONE,
            high_watermark=hw,
            last_stable_offset=lso,
            log_start_offset=log_start,
            aborted_transactions=[] if self.read_committed else None,
            preferred_read_replica=-1,
            records=b"",
        )
        offset = part.fetch_offset
        if offset < log_start or offset > plog.log_end_offset:
            self.errors = True
            result.error_code = ErrorCode.OFFSET_OUT_OF_RANGE
            return result
        bound = lso if self.read_committed else hw
        if offset >= bound:
            return result
        if offset < plog.local_log_start_offset:
            self.remote.append((result, plog, offset, bound, part.partition_max_bytes))
            return result
        limit = min(part.partition_max_bytes, self.budget - self.nbytes)
        if limit <= 0:
            return result
        file_slice = plog.read(offset, limit, max_offset=bound)
        if file_slice.size == 0:
            return result
        if file_slice.size > limit and self.nbytes > 0:
            return result  # KIP-74: only the first data may exceed the limits
        self.nbytes += file_slice.size
        result.records = RecordsRef(file_slice)  # a FileSlice is a protocol.FileRegion
        if self.read_committed:
            self._name_aborted(result, plog, offset, file_slice.next_offset)
        return result

    @staticmethod
    def _name_aborted(result: PartitionData, plog, offset: int, end: int) -> None:
        """read_committed: the aborted transactions overlapping what the partition returns."""
        result.aborted_transactions = _aborted(plog, offset, end)

    def _read_remote_one(self, plog, offset: int, limit: int, bound: int):
        """In a worker thread: the remote batches and, for read_committed, their aborted
        transactions (the remote tier's .txnindex may need a GET too)."""
        region = plog.read(offset, limit, bound)
        if not self.read_committed:
            return region, None
        return region, _aborted(plog, offset, region.next_offset)

    async def read_remote(self) -> None:
        """The remote reads the pass put aside, in worker threads (ranged GETs may block)."""
        for result, plog, offset, bound, partition_max in self.remote:
            limit = min(partition_max, self.budget - self.nbytes)
            if limit <= 0:
                continue
            try:
                region, aborted = await trio.to_thread.run_sync(
                    self._read_remote_one, plog, offset, limit, bound,
                    limiter=remote_read_limiter(self.state))
            except Exception as exc:
                self.errors = True
                result.error_code = storage_error_code(exc)
                continue
            if region.size == 0 or (region.size > limit and self.nbytes > 0):
                continue
            self.nbytes += region.size
            result.records = (region.data if isinstance(region, RemoteSlice)
                              else RecordsRef(region))
            if aborted is not None:
                result.aborted_transactions = aborted

    def run(self) -> list[FetchableTopicResponse]:
        topics = []
        for topic in self.request.topics:
            topic_id = getattr(topic, "topic_id", None)
            meta = resolve_topic(self.state, None if self.by_id else topic.topic, topic_id)
            topics.append(FetchableTopicResponse(
                topic=topic.topic,
                topic_id=topic_id or ZERO_UUID,
                partitions=[self.partition(meta, part) for part in topic.partitions],
            ))
        return topics


async def handle(ctx, request) -> FetchResponse | Deferred:
    state = ctx.broker
    version = ctx.api_version
    if request.session_id != 0 and request.session_epoch not in (0, _SESSIONLESS_EPOCH):
        return FetchResponse(throttle_time_ms=0, error_code=ErrorCode.FETCH_SESSION_ID_NOT_FOUND,
                             session_id=0, responses=[])
    reader = _Reader(state, request, version)
    topics = reader.run()
    await reader.read_remote()
    if _enough(reader, request) or request.max_wait_ms <= 0:
        return _response(topics)
    # A long poll must not hold up the requests behind it on the connection.
    return Deferred(partial(_long_poll, state, request, version, topics, reader.watch))


def _enough(reader: _Reader, request) -> bool:
    return reader.nbytes >= request.min_bytes or reader.errors or not reader.watch


def _response(topics) -> FetchResponse:
    return FetchResponse(throttle_time_ms=0, error_code=ErrorCode.NONE, session_id=0, responses=topics)


async def _long_poll(state, request, version, topics, watch) -> FetchResponse:
    """Wait until a watched partition's high watermark moves or max_wait_ms passes."""
    deadline = trio.current_time() + request.max_wait_ms / 1000
    partitions = state.partitions
    while trio.current_time() < deadline and partitions.try_reserve_waiter(state.config):
        try:
            await partitions.wait_for_change(watch, deadline)
        finally:
            partitions.release_waiter()
        reader = _Reader(state, request, version)
        topics, watch = reader.run(), reader.watch
        await reader.read_remote()
        if _enough(reader, request):
            break
    return _response(topics)

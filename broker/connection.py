"""One client connection: in-order handling, in-order responses, limits and deadlines.

Theory of operation
-------------------
A connection is a ``FrameReader`` (``protocol/framing.py``: bytes in, whole frames out,
no I/O), a ``Transport`` (``transport.py``: the file-descriptor fast path for TCP, or any
trio stream, hence TLS and in-memory tests) and two tasks with a queue between them:

* the **reader** takes whole frames from the frame reader, decodes each one, appends a
  ``Slot`` to the response queue in arrival order and runs its handler right there, inline. Requests on a
  connection are therefore handled one at a time, in the order they were sent, exactly as
  on Kafka; whatever a handler awaits holds up the requests behind it. A handler that has
  to park (Produce waiting for its fsync, Fetch's long poll, group requests waiting on
  the coordinator) does its in-order part first and then returns a ``Deferred``: its
  wait runs as a task of its own and the reader goes on. So pipelined acks=all produces
  append in order and share one fsync, and a long-polling Fetch does not hold up a
  Metadata request behind it;
* the **writer** sends the responses in queue order as their slots become ready,
  several in one write when they are. Kafka clients match responses to requests by
  position as much as by correlation id, so order is per connection, never per completion.

Most requests thus cost no task, no event and no scheduler round trip of their own: the
reader receives with a non-blocking call and parks only when the transport is empty, and
the writer is woken once per batch of ready responses. (A task, two events and a
``send_all`` per request were half of the broker thread with 200 producer connections,
measured with py-spy.)

Limits (see ``request_pool.py`` for the pool). When the frame reader announces a frame
(``FRAME_ANNOUNCED``: its size is read and within ``socket.request.max.bytes``, nothing of
it is allocated yet), its size is reserved in the broker-wide request memory pool
(``queued.max.request.bytes``) within this connection's share
(``queued.max.request.bytes.per.connection``) before the frame is accepted, and given
back once its handler is done with it. The reader also waits while
``queued.max.requests`` requests are in flight or
``queued.max.response.bytes.per.connection`` bytes of answers wait to be sent (a client
that does not read its answers stops being read: TCP pushes back). Waiting is never a
failure: the reader simply stops reading until there is room. A frame larger than
``socket.request.max.bytes`` (or with a negative size) closes the connection, as Kafka
does, before any of it is buffered (the frame reader refuses it). A frame that does not
arrive whole in the 64 KB receive buffer gets a buffer of its own from ``frame_buffer``,
which this module gives the frame reader: above 1 MiB that is an anonymous mapping the
kernel backs page by page as bytes arrive, so an announced 100 MB frame followed by
silence costs what arrived, not 100 MB.

Deadlines are watched by one task for the whole broker (``server.py`` calls
``expire(now)`` on every connection each tick), not one task or one deadline per
connection or per read (arming a deadline around every read cost about 5 µs per request,
6-10 % of the broker thread with 200 producer connections, measured with py-spy):

* ``connections.max.idle.ms``: nothing in flight and waiting for a frame's first byte
  that long. A frame arriving in pieces or a long poll in flight is not idle;
* ``socket.request.incomplete.timeout.ms`` (kafkito only): a frame started (the reader
  waited on the transport in the middle of it) and did not finish within that time. Time
  the reader spent paused by the limits above is not counted: it is ours, not the
  client's. Kafka counts a silent half-received frame as idle; kafkito gives it its
  own, shorter limit because the frame holds pool bytes;
* ``socket.response.stall.timeout.ms`` (kafkito only): answers are waiting and the
  client has not taken a byte of them for that long.

The two kafkito-only closes are logged with their reason, and every close gives the
connection's pool bytes back. An idle connection costs little: no task of its own
besides the reader and the writer, and its 64 KB receive buffer is an anonymous mapping
whose pages the idle sweep hands back to the kernel (``MADV_DONTNEED``).

Undecodable input closes the connection with a logged reason; it never reaches a
handler and never touches storage. The one exception is an ApiVersions request of a
version we do not know: it is answered (v0, UNSUPPORTED_VERSION, our ranges) so the
client can retry with a version we serve.

Responses whose records are file regions (``RecordsRef`` chunks from Fetch) are handed
to the transport as regions: the fd transport sends them with ``os.sendfile`` straight
from the segment file to the socket, a stream transport copies them.
"""

from __future__ import annotations

import logging
import mmap
from collections import deque
from dataclasses import dataclass

import trio

from kafkito.protocol import (
    CLOSED,
    FRAME_ANNOUNCED,
    NEED_DATA,
    ApiKey,
    FrameReader,
    FrameSizeError,
    ProtocolError,
    RecordsRef,
    decode_request,
    encode_response,
)

from .context import BrokerState, CloseConnection, Deferred, RequestContext
from .handlers import api_versions
from .transport import Transport

log = logging.getLogger("kafkito.broker.connection")

__all__ = ["Connection", "frame_buffer"]

_RECV_BUFFER = 64 * 1024  # per connection; a frame that does not fit is read into its own buffer
_LAZY_FRAME_BYTES = 1 << 20  # frames above this get a mapping backed only as bytes arrive
_TRIM_AFTER_S = 1.0  # an idle connection's receive buffer pages go back to the kernel after this
_SEND_BATCH_BYTES = 256 * 1024  # responses joined into one write up to about this much
_FRAMES_PER_CHECKPOINT = 32  # a reader that always finds data still lets other tasks run


def frame_buffer(size: int):
    """A writable buffer for a ``size``-byte frame that costs only what is written into it.

    Small frames get a bytearray (allocated at once: cheap, and bounded by the pool).
    Larger ones get an anonymous private mapping: the kernel backs each page when the
    first byte lands in it, so a client that announces 100 MB and sends 10 KB costs
    10 KB of memory (the pool still counts the 100 MB it reserved), and the pages go back
    to the kernel as soon as the request is done, not to a fragmented heap.
    """
    if size <= _LAZY_FRAME_BYTES:
        return bytearray(size)
    return mmap.mmap(-1, size)


def _memory_bytes(chunks: list) -> int:
    """Bytes of an encoded answer waiting to be sent, counted against
    ``queued.max.response.bytes.per.connection``. File regions count at their size, as they
    always have here, although they wait in the segment file, not in memory."""
    if len(chunks) == 1:
        return len(chunks[0])
    return sum(c.nbytes if isinstance(c, RecordsRef) else len(c) for c in chunks)


@dataclass(eq=False, slots=True)
class Slot:
    """One request's place in the response order."""

    nbytes: int  # request bytes still held in the pool for it (0 once its handler is done)
    ready: bool = False
    chunks: list | None = None  # None: send nothing (acks=0 produce)
    close_reason: str | None = None
    response_bytes: int = 0  # of chunks, counted in the connection's queued answer bytes


class Connection:
    # Slots: a connection's attributes in a dict cost every idle connection about 1.2 KB.
    __slots__ = (
        "transport", "state", "peer", "max_frame_bytes", "idle_s", "incomplete_s", "stall_s",
        "inflight_max", "response_bytes_max", "_pool", "_pool_lot", "_rbuf", "_frames", "_slots",
        "_held_bytes", "_response_bytes", "_writer_lot", "_room_lot", "_frames_unparked", "_closing",
        "_discard_responses", "_idle_closed", "_reader_scope", "_nursery_scope", "_between_frames",
        "_last_frame_s", "_trimmed_at_s", "_frame_wait_since",
    )

    def __init__(self, transport: Transport, state: BrokerState) -> None:
        self.transport = transport
        self.state = state
        self.peer = transport.peer
        config = state.config
        self.max_frame_bytes = config.socket_request_max_bytes
        self.idle_s = config.connections_max_idle_ms / 1000
        self.incomplete_s = config.socket_request_incomplete_timeout_ms / 1000
        self.stall_s = config.socket_response_stall_timeout_ms / 1000
        self.inflight_max = config.queued_max_requests
        self.response_bytes_max = config.queued_max_response_bytes_per_connection
        self._pool = state.request_pool
        self._pool_lot = state.request_pool_lot  # readers of every connection waiting for pool bytes
        # The frame reader's receive buffer: small frames are copied out of it once; a
        # frame larger than what is there gets a buffer of its own (frame_buffer) that the
        # rest is received straight into. An anonymous mapping, so pages cost memory only
        # once touched and an idle connection can hand them back (see expire).
        self._rbuf = mmap.mmap(-1, _RECV_BUFFER)
        self._frames = FrameReader(self.max_frame_bytes, self._rbuf, frame_buffer)
        self._slots: deque[Slot] = deque()
        self._held_bytes = 0  # request bytes this connection holds in the pool
        self._response_bytes = 0  # encoded answer bytes in memory, not yet sent
        self._writer_lot = trio.lowlevel.ParkingLot()  # the writer, waiting for a ready slot
        self._room_lot = trio.lowlevel.ParkingLot()  # the reader, waiting for room on this connection
        self._frames_unparked = 0
        self._closing: str | None = None
        self._discard_responses = False
        self._idle_closed = False
        self._reader_scope = trio.CancelScope()  # cancelled at shutdown or when idle
        self._nursery_scope: trio.CancelScope | None = None  # cancelled to drop everything at once
        # Watched by expire(), set here without reading the clock on the hot path:
        self._between_frames = False  # the reader waits for a frame's first byte
        self._last_frame_s = trio.current_time()
        self._trimmed_at_s: float | None = None  # _last_frame_s when the buffer was last trimmed
        self._frame_wait_since: float | None = None  # first wait on the transport inside this frame

    # -- public --------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery_scope = nursery.cancel_scope
                nursery.start_soon(self._writer, nursery.cancel_scope)
                with self._reader_scope:
                    await self._reader(nursery)
                if self._reader_scope.cancelled_caught and not self._idle_closed:
                    # Graceful shutdown: answer what was accepted, then go.
                    self._close("shutdown")
                elif self._closing is None:
                    # EOF (or idle): the client is gone, but what it sent is still carried
                    # out, as on Kafka (an acks=0 producer closes right after its last send);
                    # only the answers are dropped.
                    self._discard_responses = True
                    self._close("eof")
                else:
                    # Bad input: drop the connection and its work at once.
                    nursery.cancel_scope.cancel()
        except* (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as dropped:
            # except*: the nursery wraps a reset (ECONNRESET from a killed client) in a group.
            log.debug("connection %s dropped: %s", self.peer, dropped.exceptions[0])
        except* Exception as group:
            # A bug must cost one connection, never the broker: log it and close.
            log.error("connection %s failed; closing it", self.peer, exc_info=group)
        finally:
            if self._held_bytes:
                self._release(self._held_bytes)  # frames cut short or never handled
            with trio.move_on_after(1) as cs:
                cs.shield = True
                await self.transport.aclose()

    def stop_reading(self) -> None:
        """Graceful shutdown: accept no new requests; in-flight ones still get answers."""
        self._reader_scope.cancel()

    # -- reading -------------------------------------------------------------------------
    async def _next_frame(self):
        """The next whole frame (without its size), or None at end of stream."""
        frames = self._frames
        transport = self.transport
        while True:
            event = frames.next_event()
            if event is NEED_DATA:
                # One non-blocking try first: parking costs a scheduler round trip even
                # when the data is already there.
                view = frames.data_buffer()
                n = transport.receive_into_nowait(view)
                if n is None:
                    n = await self._wait_and_receive(view)
                frames.data_received(n)
                if n == 0:
                    return None
            elif event is FRAME_ANNOUNCED:
                self._last_frame_s = trio.current_time()
                size = frames.frame_size
                if not self._admit(size):
                    await self._wait_for_room(size)
                frame = frames.accept_frame()
                if frame is not None:  # it was whole in the receive buffer
                    self._frame_wait_since = None
                    return frame
            elif event is CLOSED:
                return None
            else:
                self._frame_wait_since = None
                return event

    async def _wait_and_receive(self, view: memoryview) -> int:
        """Park until the transport has bytes for ``view``; how many it received (0: EOF)."""
        transport = self.transport
        between_frames = self._frames.at_frame_boundary
        self._frames_unparked = 0
        if between_frames:
            self._between_frames = True  # only this wait may be cut as idle (expire)
        elif self._frame_wait_since is None:
            # The client left a frame unfinished: its time starts now (expire()).
            self._frame_wait_since = trio.current_time()
        try:
            while True:
                await transport.wait_receivable()
                n = transport.receive_into_nowait(view)
                if n is not None:
                    return n
        finally:
            self._between_frames = False

    def _admit(self, size: int) -> bool:
        """Reserve room for a ``size``-byte frame, or False when the reader must wait."""
        if self._slots and len(self._slots) >= self.inflight_max:
            return False
        if self._response_bytes >= self.response_bytes_max:
            return False  # the client is not reading its answers: stop reading its requests
        if not self._pool.try_reserve(self._held_bytes, size):
            return False
        self._held_bytes += size
        return True

    async def _wait_for_room(self, size: int) -> None:
        # Paused by our own limits: that time is not the client's (expire() ignores it).
        self._frame_wait_since = None
        while not self._admit(size):
            if self._pool.is_exhausted_for(size):
                await self._pool_lot.park()  # woken by any connection giving bytes back
            else:
                await self._room_lot.park()  # woken by this connection's writer or handlers

    def _release(self, nbytes: int) -> None:
        self._held_bytes -= nbytes
        self._pool.release(nbytes)
        if self._pool_lot:
            self._pool_lot.unpark_all()
        if self._room_lot:
            self._room_lot.unpark_all()

    async def _reader(self, nursery: trio.Nursery) -> None:
        handlers = self.state.handlers
        while True:
            try:
                frame = await self._next_frame()
            except FrameSizeError as exc:
                reason = f"{exc} (socket.request.max.bytes)"
                log.warning("closing connection from %s: %s", self.peer, reason)
                self._closing = reason
                return
            if frame is None:
                return
            try:
                header, request = decode_request(frame)
            except ProtocolError as exc:
                slot = self._answer_undecodable(exc, len(frame))
                if slot is None:
                    return
                continue
            handler = handlers.get(header.api_key)
            if handler is None or not handler.MIN_VERSION <= header.api_version <= handler.MAX_VERSION:
                if header.api_key == ApiKey.API_VERSIONS:
                    self._queue_ready(len(frame), api_versions.unsupported_version(self.state, header.correlation_id))
                    continue
                log.warning(
                    "closing connection from %s: api key %d version %d is not served (client %r)",
                    self.peer, header.api_key, header.api_version, header.client_id,
                )
                self._closing = "unsupported api"
                return
            slot = Slot(len(frame))
            self._slots.append(slot)
            ctx = RequestContext(header, self.state, self.peer)
            deferred = await self._settle(slot, header, handler.handle(ctx, request))
            if deferred is not None:
                # The handler has done its in-order part and let go of the request (Produce
                # has appended): an fsync or a long poll must not hold pool bytes.
                self._release(slot.nbytes)
                slot.nbytes = 0
                nursery.start_soon(self._finish_deferred, slot, header, deferred)
            self._frames_unparked += 1
            if self._frames_unparked >= _FRAMES_PER_CHECKPOINT:
                self._frames_unparked = 0
                await trio.lowlevel.checkpoint()

    def expire(self, now: float) -> None:
        """Apply the connection's deadlines at ``now`` (called by the broker's sweep)."""
        if self._closing is not None or self._idle_closed:
            return
        since = self._frame_wait_since
        if since is not None and now - since >= self.incomplete_s:
            self._abort(
                "request frame incomplete for %.1f s (socket.request.incomplete.timeout.ms), "
                "releasing %d pool bytes" % (now - since, self._held_bytes)
            )
            return
        since = self.transport.send_blocked_since
        if since is not None and now - since >= self.stall_s:
            self._abort(
                "client read none of its %d waiting answer bytes for %.1f s (socket.response.stall.timeout.ms)"
                % (self._response_bytes, now - since)
            )
            return
        if not (self._between_frames and self._frames.at_frame_boundary and not self._slots):
            return
        quiet_s = now - self._last_frame_s
        if quiet_s >= self.idle_s:
            log.info("closing connection from %s: idle for connections.max.idle.ms", self.peer)
            self._idle_closed = True
            self._reader_scope.cancel()
        elif quiet_s >= _TRIM_AFTER_S and self._trimmed_at_s != self._last_frame_s:
            # Nothing buffered: the kernel may take the receive buffer's pages back (they
            # read as zeros when touched again), so an idle connection costs no 64 KB.
            self._rbuf.madvise(mmap.MADV_DONTNEED)
            self._trimmed_at_s = self._last_frame_s

    def _abort(self, reason: str) -> None:
        log.warning("closing connection from %s: %s", self.peer, reason)
        self._closing = reason
        if self._nursery_scope is not None:
            self._nursery_scope.cancel()

    def _answer_undecodable(self, exc: ProtocolError, nbytes: int) -> Slot | None:
        if exc.api_key == ApiKey.API_VERSIONS and exc.correlation_id is not None:
            # A newer ApiVersions than we know: answer so the client can fall back.
            return self._queue_ready(nbytes, api_versions.unsupported_version(self.state, exc.correlation_id))
        log.warning(
            "closing connection from %s: undecodable request (api key %s, version %s, "
            "correlation id %s): %s", self.peer, exc.api_key, exc.api_version, exc.correlation_id, exc.reason,
        )
        self._closing = "undecodable request"
        return None

    def _queue_ready(self, nbytes: int, chunks: list) -> Slot:
        slot = Slot(nbytes, chunks=chunks)
        self._slots.append(slot)
        slot.response_bytes = n = _memory_bytes(chunks)
        self._response_bytes += n
        self._ready(slot)
        return slot

    # -- handling ------------------------------------------------------------------------
    async def _settle(self, slot: Slot, header, outcome, *, may_defer: bool = True) -> Deferred | None:
        """Await a handler's outcome and fill its slot, or return the Deferred it chose."""
        try:
            response = await outcome
            if isinstance(response, Deferred):
                if may_defer:
                    return response
                raise TypeError("a Deferred's wait() returned another Deferred")
            if response is not None:
                slot.chunks = chunks = encode_response(header.api_key, header.api_version, header.correlation_id, response)
                slot.response_bytes = n = _memory_bytes(chunks)
                self._response_bytes += n
        except CloseConnection as exc:
            slot.close_reason = str(exc) or "handler asked to close"
        except Exception:
            log.exception(
                "handler for api key %d v%d failed (client %r from %s); closing the connection",
                header.api_key, header.api_version, header.client_id, self.peer,
            )
            slot.close_reason = "internal error"
        except BaseException:  # cancelled mid-way (shutdown, a dropped connection): no answer
            slot.close_reason = "request cancelled"
            self._ready(slot)
            raise
        self._ready(slot)
        return None

    async def _finish_deferred(self, slot: Slot, header, deferred: Deferred) -> None:
        await self._settle(slot, header, deferred.wait(), may_defer=False)

    def _ready(self, slot: Slot) -> None:
        slot.ready = True
        if slot.nbytes:  # the handler is done with the request: its bytes go back to the pool
            self._release(slot.nbytes)
            slot.nbytes = 0
        if self._slots and self._slots[0] is slot and self._writer_lot:
            self._writer_lot.unpark_all()

    def _close(self, reason: str) -> None:
        self._closing = reason
        self._writer_lot.unpark_all()

    # -- writing -------------------------------------------------------------------------
    async def _writer(self, cancel_scope: trio.CancelScope) -> None:
        slots = self._slots
        send = self.transport.send
        while True:
            if not slots or not slots[0].ready:
                if not slots and self._closing is not None:
                    cancel_scope.cancel()
                    return
                await self._writer_lot.park()
                continue
            pending: list = []
            pending_bytes = 0
            taken = 0  # answer bytes popped from slots; still in memory until sent
            while slots and slots[0].ready:
                slot = slots[0]
                if slot.close_reason is not None:
                    if pending:
                        await send(b"".join(pending))
                    log.warning("closing connection from %s: %s", self.peer, slot.close_reason)
                    cancel_scope.cancel()
                    return
                slots.popleft()
                taken += slot.response_bytes
                if not slot.chunks or self._discard_responses:
                    continue
                for chunk in slot.chunks:
                    if isinstance(chunk, RecordsRef):
                        if pending:
                            await send(b"".join(pending))
                            pending, pending_bytes = [], 0
                        await self.transport.send_region(chunk.region)
                    else:
                        pending.append(chunk)
                        pending_bytes += len(chunk)
                if pending_bytes >= _SEND_BATCH_BYTES:
                    await send(b"".join(pending))
                    pending, pending_bytes = [], 0
                    self._response_bytes -= taken
                    taken = 0
            if pending:
                await send(pending[0] if len(pending) == 1 else b"".join(pending))
            self._response_bytes -= taken
            # Idle time counts from the last answer too, not only from the last frame: a
            # long poll that just ended leaves the connection busy until this moment.
            self._last_frame_s = trio.current_time()
            if self._room_lot:
                self._room_lot.unpark_all()

"""One client connection: framing, in-order handling, in-order responses.

Theory of operation
-------------------
A connection is two tasks and a queue:

* the **reader** reads size-prefixed frames, decodes each one, appends a ``Slot`` to the
  response queue in arrival order and runs its handler right there, inline. Requests on a
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
reader reads with a plain non-blocking read and parks only when the socket is empty, and
the writer is woken once per batch of ready responses. (A task, two events and a
``send_all`` per request were half of the broker thread with 200 producer connections,
measured with py-spy.)

Limits: at most ``queued.max.requests`` requests and ``queued.max.request.bytes`` bytes
are in flight on one connection; past either, the reader stops reading and TCP pushes
back on the client. A frame larger than ``socket.request.max.bytes`` (or with a negative
size) closes the connection, as Kafka does, before any of it is buffered. A connection
with nothing in flight for ``connections.max.idle.ms`` is closed. That is watched by one
sleeping task per connection, which may only cancel a reader that waits for the first
byte of a frame; arming a deadline around every read instead cost about 5 µs per request
(6-10 % of the broker thread with 200 producer connections, measured with py-spy).

Undecodable input closes the connection with a logged reason; it never reaches a
handler and never touches storage. The one exception is an ApiVersions request of a
version we do not know: it is answered (v0, UNSUPPORTED_VERSION, our ranges) so the
client can retry with a version we serve.

Responses whose records are file regions (``RecordsRef`` chunks from Fetch) are sent
with ``os.sendfile`` straight from the segment file to the socket.
"""

from __future__ import annotations

import logging
import os
import struct
from collections import deque
from dataclasses import dataclass

import trio

from kafkito.protocol import ApiKey, ProtocolError, RecordsRef, decode_request, encode_response

from .context import BrokerState, CloseConnection, Deferred, RequestContext
from .handlers import api_versions

log = logging.getLogger("kafkito.broker.connection")

__all__ = ["Connection"]

_RECV_BUFFER = 64 * 1024  # per connection; a frame that does not fit is read into its own buffer
_SIZE = struct.Struct(">i")
_SEND_BATCH_BYTES = 256 * 1024  # responses joined into one write up to about this much
_FRAMES_PER_CHECKPOINT = 32  # a reader that always finds data still lets other tasks run


@dataclass(eq=False, slots=True)
class Slot:
    """One request's place in the response order."""

    nbytes: int
    ready: bool = False
    chunks: list | None = None  # None: send nothing (acks=0 produce)
    close_reason: str | None = None


class Connection:
    def __init__(self, stream: trio.SocketStream, state: BrokerState) -> None:
        self.stream = stream
        self.state = state
        self.sock = stream.socket
        self._fd = self.sock.fileno()
        try:
            self.peer = "%s:%s" % self.sock.getpeername()[:2]
        except OSError:
            self.peer = "?"
        config = state.config
        self.max_frame_bytes = config.socket_request_max_bytes
        self.idle_s = config.connections_max_idle_ms / 1000
        self.inflight_max = config.queued_max_requests
        self.inflight_bytes_max = max(config.queued_max_request_bytes, config.socket_request_max_bytes)
        # Received bytes not yet framed are _rbuf[_start:_end]. Small frames are copied out
        # of it once; a frame larger than what is there gets a buffer of its own that the
        # rest is read straight into.
        self._rbuf = bytearray(_RECV_BUFFER)
        self._rview = memoryview(self._rbuf)
        self._start = self._end = 0
        self._slots: deque[Slot] = deque()
        self._inflight_bytes = 0
        self._writer_lot = trio.lowlevel.ParkingLot()  # the writer, waiting for a ready slot
        self._room_lot = trio.lowlevel.ParkingLot()  # the reader, waiting for room in flight
        self._frames_unparked = 0
        self._closing: str | None = None
        self._discard_responses = False
        self._reader_scope = trio.CancelScope()
        self._idle_scope = trio.CancelScope()  # cancelled by the watchdog: the reader stops as at EOF
        self._watchdog_scope = trio.CancelScope()
        self._between_frames = False  # the reader waits for a frame's first byte
        self._last_frame_s = trio.current_time()

    # -- public --------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._writer, nursery.cancel_scope)
                nursery.start_soon(self._idle_watchdog)
                with self._reader_scope, self._idle_scope:
                    await self._reader(nursery)
                self._watchdog_scope.cancel()
                if self._reader_scope.cancelled_caught:
                    # Graceful shutdown: answer what was accepted, then go.
                    self._close("shutdown")
                elif self._closing is None:
                    # EOF: the client is gone, but what it sent is still carried out, as
                    # on Kafka (an acks=0 producer closes right after its last send);
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
            with trio.move_on_after(1) as cs:
                cs.shield = True
                await self.stream.aclose()

    def stop_reading(self) -> None:
        """Graceful shutdown: accept no new requests; in-flight ones still get answers."""
        self._reader_scope.cancel()

    # -- reading -------------------------------------------------------------------------
    # Plain non-blocking reads on the descriptor: trio's socket methods add a scheduler
    # round trip to every call, even when the data is already there.
    async def _fill(self) -> bool:
        """Read more into the receive buffer; False at EOF. Called with under 4 bytes left."""
        if self._start == self._end:
            self._start = self._end = 0
        elif self._end == len(self._rbuf):  # a size prefix cut by the buffer's end
            tail = bytes(self._rview[self._start:self._end])
            self._rbuf[:len(tail)] = tail
            self._start, self._end = 0, len(tail)
        n = await self._recv_into(self._rview[self._end:])
        if n == 0:
            return False
        self._end += n
        return True

    async def _recv_into(self, view: memoryview) -> int:
        while True:
            try:
                return os.readv(self._fd, (view,))
            except BlockingIOError:
                self._frames_unparked = 0
                await trio.lowlevel.wait_readable(self._fd)

    async def _read_frame(self) -> bytes | bytearray | None:
        """The next frame's bytes (without its size), or None at EOF."""
        while self._end - self._start < 4:
            if not await self._fill():
                return None
        (size,) = _SIZE.unpack_from(self._rbuf, self._start)
        if size < 0 or size > self.max_frame_bytes:
            raise _FrameRejected(
                f"frame size {size} outside 0..{self.max_frame_bytes} (socket.request.max.bytes)"
            )
        await self._wait_for_room(size)
        begin = self._start + 4
        end = begin + size
        if end <= self._end:
            self._start = end
            return bytes(self._rview[begin:end])
        frame = bytearray(size)
        have = self._end - begin
        frame[:have] = self._rview[begin:self._end]
        self._start = self._end = 0
        view = memoryview(frame)
        while have < size:
            n = await self._recv_into(view[have:])
            if n == 0:
                return None
            have += n
        return bytes(frame) if size < 4096 else frame

    async def _wait_for_room(self, size: int) -> None:
        while self._slots and (
            len(self._slots) >= self.inflight_max or self._inflight_bytes + size > self.inflight_bytes_max
        ):
            await self._room_lot.park()

    async def _reader(self, nursery: trio.Nursery) -> None:
        handlers = self.state.handlers
        while True:
            try:
                frame = await self._next_frame_or_idle()
            except _FrameRejected as exc:
                log.warning("closing connection from %s: %s", self.peer, exc)
                self._closing = str(exc)
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
            self._inflight_bytes += slot.nbytes
            ctx = RequestContext(header, self.state, self.peer)
            deferred = await self._settle(slot, header, handler.handle(ctx, request))
            if deferred is not None:
                nursery.start_soon(self._finish_deferred, slot, header, deferred)
            self._frames_unparked += 1
            if self._frames_unparked >= _FRAMES_PER_CHECKPOINT:
                self._frames_unparked = 0
                await trio.lowlevel.checkpoint()

    async def _next_frame_or_idle(self):
        # Only this wait for a frame's first byte may be cut by the idle watchdog:
        # cancelling a read half-way through a frame would lose its bytes.
        if self._start == self._end:
            self._between_frames = True
            try:
                if not await self._fill():
                    return None
            finally:
                self._between_frames = False
        self._last_frame_s = trio.current_time()
        return await self._read_frame()

    async def _idle_watchdog(self) -> None:
        """Close after connections.max.idle.ms without a frame while nothing is in flight."""
        with self._watchdog_scope:
            while True:
                await trio.sleep_until(self._last_frame_s + self.idle_s)
                now = trio.current_time()
                if now - self._last_frame_s < self.idle_s:
                    continue  # a frame came meanwhile: sleep until its deadline
                if self._between_frames and self._start == self._end and not self._slots:
                    log.info("closing connection from %s: idle for connections.max.idle.ms", self.peer)
                    self._idle_scope.cancel()
                    return
                self._last_frame_s = now  # busy (a long poll, a frame in pieces): look again later

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
        self._inflight_bytes += nbytes
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
                slot.chunks = encode_response(header.api_key, header.api_version, header.correlation_id, response)
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
        if self._slots and self._slots[0] is slot and self._writer_lot:
            self._writer_lot.unpark_all()

    def _close(self, reason: str) -> None:
        self._closing = reason
        self._writer_lot.unpark_all()

    # -- writing -------------------------------------------------------------------------
    async def _writer(self, cancel_scope: trio.CancelScope) -> None:
        slots = self._slots
        while True:
            if not slots or not slots[0].ready:
                if not slots and self._closing is not None:
                    cancel_scope.cancel()
                    return
                await self._writer_lot.park()
                continue
            pending: list = []
            pending_bytes = 0
            while slots and slots[0].ready:
                slot = slots[0]
                if slot.close_reason is not None:
                    if pending:
                        await self._send_bytes(b"".join(pending))
                    log.warning("closing connection from %s: %s", self.peer, slot.close_reason)
                    cancel_scope.cancel()
                    return
                slots.popleft()
                self._inflight_bytes -= slot.nbytes
                if not slot.chunks or self._discard_responses:
                    continue
                for chunk in slot.chunks:
                    if isinstance(chunk, RecordsRef):
                        if pending:
                            await self._send_bytes(b"".join(pending))
                            pending, pending_bytes = [], 0
                        await self._send_file_region(chunk)
                    else:
                        pending.append(chunk)
                        pending_bytes += len(chunk)
                if pending_bytes >= _SEND_BATCH_BYTES:
                    await self._send_bytes(b"".join(pending))
                    pending, pending_bytes = [], 0
            if pending:
                await self._send_bytes(pending[0] if len(pending) == 1 else b"".join(pending))
            # Idle time counts from the last answer too, not only from the last frame: a
            # long poll that just ended leaves the connection busy until this moment.
            self._last_frame_s = trio.current_time()
            if self._room_lot:
                self._room_lot.unpark_all()

    async def _send_bytes(self, data) -> None:
        fd = self._fd
        total = len(data)
        sent = 0
        view = None
        while True:
            try:
                sent += os.write(fd, data if view is None else view[sent:])
            except BlockingIOError:
                await trio.lowlevel.wait_writable(fd)
                continue
            if sent >= total:
                return
            if view is None:
                view = memoryview(data)

    async def _send_file_region(self, ref: RecordsRef) -> None:
        """sendfile(2) from the segment file; falls back to pread+send where unsupported."""
        fd_in, position, remaining = ref.fileno(), ref.position, ref.nbytes
        out = self._fd
        while remaining > 0:
            try:
                sent = os.sendfile(out, fd_in, position, remaining)
            except BlockingIOError:
                await trio.lowlevel.wait_writable(out)
                continue
            except OSError:
                await self._send_bytes(ref.tobytes()[ref.nbytes - remaining:])
                return
            if sent == 0:
                raise trio.BrokenResourceError(
                    f"segment file ended {remaining} bytes early while sending to {self.peer}"
                )
            position += sent
            remaining -= sent
        await trio.lowlevel.checkpoint()


class _FrameRejected(Exception):
    pass

"""One client connection: framing, concurrent handling, in-order responses.

Theory of operation
-------------------
A connection is two tasks and a queue:

* the **reader** reads size-prefixed frames, decodes each one, appends a ``Slot`` to the
  response queue in arrival order and starts the handler for it as its own task;
* handlers **run in request order**: each waits until the one before it has finished
  or has called ``ctx.release_order()``, which handlers do just before they park
  (Produce after appending, before waiting for the fsync; Fetch before its long-poll;
  group requests before waiting for the rebalance). So pipelined Produce requests
  append in the order they were sent, exactly as on Kafka (which handles one request
  per connection at a time), while a long-polling Fetch still does not hold up a
  Metadata request behind it, and pipelined acks=all produces share one fsync;
* the **writer** takes slots from the queue in order, waits for each to be done and
  sends its response. Kafka clients match responses to requests by position as much as by
  correlation id, so order is per connection, never per completion.

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
from collections import deque
from dataclasses import dataclass, field

import trio

from kafkito.protocol import ApiKey, ProtocolError, RecordsRef, decode_request, encode_response

from .context import BrokerState, CloseConnection, RequestContext
from .handlers import api_versions

log = logging.getLogger("kafkito.broker.connection")

__all__ = ["Connection"]

_RECV_CHUNK = 256 * 1024


@dataclass(eq=False, slots=True)
class Slot:
    """One request's place in the response order."""

    nbytes: int
    done: trio.Event = field(default_factory=trio.Event)
    released: trio.Event = field(default_factory=trio.Event)  # the next handler may run
    chunks: list | None = None  # None: send nothing (acks=0 produce)
    close_reason: str | None = None


class Connection:
    def __init__(self, stream: trio.SocketStream, state: BrokerState) -> None:
        self.stream = stream
        self.state = state
        self.sock = stream.socket
        try:
            self.peer = "%s:%s" % self.sock.getpeername()[:2]
        except OSError:
            self.peer = "?"
        config = state.config
        self.max_frame_bytes = config.socket_request_max_bytes
        self.idle_s = config.connections_max_idle_ms / 1000
        self.inflight_max = config.queued_max_requests
        self.inflight_bytes_max = max(config.queued_max_request_bytes, config.socket_request_max_bytes)
        self._buf = bytearray()
        self._slots: deque[Slot] = deque()
        self._inflight_bytes = 0
        self._progress = trio.Event()  # set when a slot is sent or a new one queued
        self._closing: str | None = None
        self._discard_responses = False
        self._reader_scope = trio.CancelScope()
        self._idle_scope = trio.CancelScope()  # cancelled by the watchdog: the reader stops as at EOF
        self._watchdog_scope = trio.CancelScope()
        self._between_frames = False  # the reader waits for a frame's first byte
        self._last_frame_s = trio.current_time()
        self._last_released = trio.Event()  # the turn the next handler waits for
        self._last_released.set()

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
                    self._closing = "shutdown"
                    self._wake()
                elif self._closing is None:
                    # EOF: the client is gone, but what it sent is still carried out, as
                    # on Kafka (an acks=0 producer closes right after its last send);
                    # only the answers are dropped.
                    self._closing = "eof"
                    self._discard_responses = True
                    self._wake()
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
    async def _recv_more(self) -> bool:
        data = await self.sock.recv(_RECV_CHUNK)
        if not data:
            return False
        self._buf += data
        return True

    async def _read_frame(self) -> bytes | None:
        """The next frame's bytes (without its size), or None at EOF."""
        while len(self._buf) < 4:
            if not await self._recv_more():
                return None
        size = int.from_bytes(self._buf[:4], "big", signed=True)
        if size < 0 or size > self.max_frame_bytes:
            raise _FrameRejected(
                f"frame size {size} outside 0..{self.max_frame_bytes} (socket.request.max.bytes)"
            )
        await self._wait_for_room(size)
        end = 4 + size
        if len(self._buf) < end:
            # A large frame: read straight into a buffer of its own, no repeated copies.
            frame = bytearray(size)
            have = len(self._buf) - 4
            frame[:have] = self._buf[4:]
            self._buf.clear()
            view = memoryview(frame)
            while have < size:
                n = await self.sock.recv_into(view[have:], size - have)
                if n == 0:
                    return None
                have += n
            return bytes(frame) if size < 4096 else frame
        frame = bytes(self._buf[4:end])
        del self._buf[:end]
        return frame

    async def _wait_for_room(self, size: int) -> None:
        while self._slots and (
            len(self._slots) >= self.inflight_max or self._inflight_bytes + size > self.inflight_bytes_max
        ):
            await self._wait_progress()

    async def _wait_progress(self) -> None:
        event = self._progress
        await event.wait()

    def _wake(self) -> None:
        self._progress.set()
        self._progress = trio.Event()

    async def _reader(self, nursery: trio.Nursery) -> None:
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
            handler = self.state.handlers.get(header.api_key)
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
            self._enqueue(slot)
            previous, self._last_released = self._last_released, slot.released
            nursery.start_soon(self._handle, handler, header, request, slot, previous)

    async def _next_frame_or_idle(self):
        # Only this wait for a frame's first byte may be cut by the idle watchdog:
        # cancelling a read half-way through a frame would lose its bytes.
        if not self._buf:
            self._between_frames = True
            try:
                if not await self._recv_more():
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
                if self._between_frames and not self._buf and not self._slots:
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

    def _enqueue(self, slot: Slot) -> None:
        self._slots.append(slot)
        self._inflight_bytes += slot.nbytes
        self._wake()

    def _queue_ready(self, nbytes: int, chunks: list) -> Slot:
        slot = Slot(nbytes, chunks=chunks)
        slot.done.set()
        self._enqueue(slot)
        return slot

    # -- handling ------------------------------------------------------------------------
    async def _handle(self, handler, header, request, slot: Slot, previous: trio.Event) -> None:
        await previous.wait()
        ctx = RequestContext(header, self.state, self.peer, slot.released.set)
        try:
            response = await handler.handle(ctx, request)
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
        finally:
            slot.released.set()
            slot.done.set()

    # -- writing -------------------------------------------------------------------------
    async def _writer(self, cancel_scope: trio.CancelScope) -> None:
        while True:
            while not self._slots:
                if self._closing is not None:
                    cancel_scope.cancel()
                    return
                await self._wait_progress()
            slot = self._slots[0]
            await slot.done.wait()
            if slot.close_reason is not None:
                log.warning("closing connection from %s: %s", self.peer, slot.close_reason)
                cancel_scope.cancel()
                return
            if slot.chunks and not self._discard_responses:
                await self._send_chunks(slot.chunks)
            self._slots.popleft()
            # Idle time counts from the last answer too, not only from the last frame: a
            # long poll that just ended leaves the connection busy until this moment.
            self._last_frame_s = trio.current_time()
            self._inflight_bytes -= slot.nbytes
            self._wake()

    async def _send_chunks(self, chunks: list) -> None:
        pending: list = []
        for chunk in chunks:
            if isinstance(chunk, RecordsRef):
                if pending:
                    await self.stream.send_all(b"".join(pending))
                    pending.clear()
                await self._send_file_region(chunk)
            else:
                pending.append(chunk)
        if pending:
            await self.stream.send_all(b"".join(pending) if len(pending) > 1 else pending[0])

    async def _send_file_region(self, ref: RecordsRef) -> None:
        """sendfile(2) from the segment file; falls back to pread+send where unsupported."""
        fd_in, position, remaining = ref.fileno(), ref.position, ref.nbytes
        out = self.sock.fileno()
        while remaining > 0:
            try:
                sent = os.sendfile(out, fd_in, position, remaining)
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self.sock)
                continue
            except OSError:
                await self.stream.send_all(ref.tobytes()[ref.nbytes - remaining:])
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

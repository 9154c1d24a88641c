"""Framing: Kafka's size-prefixed frames as a sans-IO state machine, for both ends.

Theory of operation
-------------------
Every Kafka message travels as an int32 size followed by that many bytes. This module
turns a byte stream into whole frames and back, and touches no socket: the caller moves
bytes between it and whatever carries them (a file descriptor, a trio stream, TLS, a
test's byte string). h11's ``Connection`` is the model: one object, bytes in, events out.

``FrameReader`` is the incoming half, and the whole of the **server side**. Its states:

* *prefix*: waiting for the 4-byte size (it may arrive one byte at a time);
* *announced*: the size is known and within ``0..max_frame_bytes``
  (``socket.request.max.bytes``); nothing has been allocated for it yet. The caller
  decides when to take it (the broker first reserves the size in its request memory pool)
  and calls ``accept_frame``. A size outside the range raises ``FrameSizeError`` here,
  before any of the frame is buffered;
* *body*: the frame is being received. A frame that is already whole in the receive
  buffer is copied out of it once; a larger or unfinished one gets a buffer of its own
  from the caller's ``frame_buffer(size)`` factory (the broker's lazily backed mapping),
  and the rest of it is received straight into that buffer.

``next_event()`` is the door: it returns ``NEED_DATA``, ``FRAME_ANNOUNCED``, ``CLOSED``
(end of stream, nothing complete left) or a whole frame (bytes-like, without its size).
``accept_frame()`` returns the frame at once when it is already whole (most frames on a
busy connection), else None. Bytes come in two ways. The zero-copy way, for a transport that reads into
memory it is given: ``data_buffer()`` is where the next bytes go, ``data_received(n)``
says how many landed (0 is end of stream). The copying way, for transports that hand out
byte strings: ``receive_data(data)`` (``b""`` is end of stream), consumed as
``next_event`` needs it, so a frame waiting to be accepted never grows a buffer.

The receive buffer is the caller's too (the broker gives an anonymous mapping whose pages
it hands back to the kernel while a connection idles; ``at_frame_boundary`` tells it
when nothing is buffered).

``ClientFraming`` is the **client side**: it encodes requests with increasing correlation
ids, remembers each one's (api key, api version) until its response arrives, and decodes
responses with that key and version (a Kafka response does not name its API). Responses
must come in request order, as Kafka's own client requires; anything else is a
``ProtocolError``. A Produce with acks=0 gets no response and is not remembered.
"""

from __future__ import annotations

import struct
from collections import deque
from typing import Any, Callable, NamedTuple

from .api_keys import ApiKey
from .errors import ProtocolError
from .frames import decode_response, encode_request

__all__ = [
    "CLOSED",
    "FRAME_ANNOUNCED",
    "NEED_DATA",
    "ClientFraming",
    "FrameReader",
    "FrameSizeError",
    "Response",
]

_SIZE = struct.Struct(">i")
_RECEIVE_BUFFER_BYTES = 64 * 1024  # the default receive buffer; frames that do not fit get their own
_COPY_BELOW_BYTES = 4096  # a frame smaller than this, received into its own buffer, is handed out as bytes
_INT32_MAX = 2**31 - 1


class _Event:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NEED_DATA = _Event("NEED_DATA")  # give it more bytes (data_buffer/data_received or receive_data)
FRAME_ANNOUNCED = _Event("FRAME_ANNOUNCED")  # frame_size is known: accept_frame() when there is room
CLOSED = _Event("CLOSED")  # the stream ended; ``incomplete`` says whether a frame was cut short


class FrameSizeError(ProtocolError):
    """A size prefix outside ``0..max_frame_bytes``; the stream cannot be read further."""


class FrameReader:
    """Bytes in, whole frames out (see the module docstring for the states)."""

    __slots__ = (
        "max_frame_bytes", "_frame_buffer", "_rbuf", "_rview", "_start", "_end", "_size", "_accepted",
        "_frame", "_fview", "_have", "_pending", "_eof",
    )

    def __init__(self, max_frame_bytes: int = _INT32_MAX, receive_buffer=None,
                 frame_buffer: Callable[[int], Any] = bytearray) -> None:
        """``receive_buffer``: writable memory for bytes not yet framed (64 KB bytearray by
        default); ``frame_buffer(size)``: a writable buffer for a frame that does not arrive
        whole in it, called only once the frame is accepted."""
        self.max_frame_bytes = max_frame_bytes
        self._frame_buffer = frame_buffer
        self._rbuf = bytearray(_RECEIVE_BUFFER_BYTES) if receive_buffer is None else receive_buffer
        self._rview = memoryview(self._rbuf)
        self._start = self._end = 0  # received bytes not yet framed: _rbuf[_start:_end]
        self._size = -1  # the current frame's size once its prefix is read, else -1
        self._accepted = False
        self._frame = None  # the current frame's own buffer, while it is received into it
        self._fview: memoryview | None = None
        self._have = 0  # bytes of the current frame in its own buffer
        # receive_data() bytes not yet moved into a buffer; made on first use, since a
        # reader fed through data_buffer() never needs it (an idle broker connection
        # would pay about 600 bytes for an empty deque).
        self._pending: deque | None = None
        self._eof = False

    # -- state ----------------------------------------------------------------------------
    @property
    def frame_size(self) -> int:
        """The announced frame's size (valid after FRAME_ANNOUNCED), else -1."""
        return self._size

    @property
    def at_frame_boundary(self) -> bool:
        """Nothing of a next frame has been received or buffered."""
        return self._size < 0 and self._start == self._end and not self._pending

    @property
    def incomplete(self) -> bool:
        """Part of a frame has been received but not all of it."""
        return not self.at_frame_boundary

    # -- bytes in -------------------------------------------------------------------------
    def data_buffer(self) -> memoryview:
        """Where the next received bytes go (then call ``data_received``)."""
        if self._frame is not None:
            return self._fview[self._have:]
        if self._size >= 0:
            raise RuntimeError("accept the announced frame before receiving more of it")
        if self._start == self._end:
            self._start = self._end = 0
        elif self._end == len(self._rbuf):  # a size prefix cut by the buffer's end
            tail = bytes(self._rview[self._start:self._end])
            self._rbuf[:len(tail)] = tail
            self._start, self._end = 0, len(tail)
        return self._rview[self._end:]

    def data_received(self, nbytes: int) -> None:
        """``nbytes`` landed in the last ``data_buffer()``; 0 means the stream ended."""
        if nbytes == 0:
            self._eof = True
        elif self._frame is not None:
            self._have += nbytes
        else:
            self._end += nbytes

    def receive_data(self, data) -> None:
        """Bytes from a transport that hands out byte strings; ``b""`` means the stream ended."""
        if data:
            if self._pending is None:
                self._pending = deque()
            self._pending.append(data)
        else:
            self._eof = True

    # -- frames out -----------------------------------------------------------------------
    def next_event(self):
        """NEED_DATA, FRAME_ANNOUNCED, CLOSED, or a whole frame (bytes-like, no size prefix)."""
        while True:
            size = self._size
            if size < 0:
                start = self._start
                if self._end - start < 4:
                    if self._pending and self._move_pending():
                        continue
                    return CLOSED if self._eof else NEED_DATA
                (size,) = _SIZE.unpack_from(self._rbuf, start)
                if size < 0 or size > self.max_frame_bytes:
                    # The prefix stays unread: every later call raises again.
                    raise FrameSizeError(f"frame size {size} outside 0..{self.max_frame_bytes}")
                self._size = size
                return FRAME_ANNOUNCED
            if not self._accepted:
                return FRAME_ANNOUNCED
            frame = self._frame
            if self._have < size:
                if self._pending and self._move_pending():
                    continue
                return CLOSED if self._eof else NEED_DATA
            self._frame = self._fview = None
            self._size = -1
            self._accepted = False
            if size < _COPY_BELOW_BYTES:
                return bytes(frame)
            return frame if frame.__class__ is bytearray else memoryview(frame)

    def accept_frame(self):
        """Take the announced frame: the frame itself when it is already whole in the
        receive buffer (copied out of it; the common case, saving a call), else None and
        it comes out of ``next_event`` once the rest is received into its own buffer."""
        size = self._size
        if size < 0 or self._accepted:
            raise RuntimeError("no announced frame to accept")
        begin = self._start + 4
        end = begin + size
        if end <= self._end:
            self._start = end
            self._size = -1
            return bytes(self._rview[begin:end])
        self._accepted = True
        frame = self._frame_buffer(size)
        view = memoryview(frame)
        have = self._end - begin
        view[:have] = self._rview[begin:self._end]
        self._start = self._end = 0
        self._frame, self._fview, self._have = frame, view, have

    def _move_pending(self) -> bool:
        """Move receive_data() bytes into the current buffer; False if none could move."""
        if self._size >= 0 and not self._accepted:
            return False  # the announced frame waits for accept_frame: buffer nothing more
        pending = self._pending
        data = pending.popleft()
        view = self.data_buffer()
        n = min(len(view), len(data))
        view[:n] = data[:n]
        if n < len(data):
            pending.appendleft(memoryview(data)[n:])
        self.data_received(n)
        return True


class Response(NamedTuple):
    correlation_id: int
    api_key: int
    api_version: int
    body: Any


class ClientFraming:
    """The client side: requests out, responses in, matched by correlation id."""

    def __init__(self, client_id: str | None = None, *, max_frame_bytes: int = _INT32_MAX,
                 first_correlation_id: int = 0) -> None:
        self.client_id = client_id
        self._next_correlation_id = first_correlation_id
        self._in_flight: deque[tuple[int, int, int]] = deque()  # (correlation id, api key, version)
        self._reader = FrameReader(max_frame_bytes)

    @property
    def in_flight(self) -> int:
        """Requests sent whose responses have not been received."""
        return len(self._in_flight)

    def send_request(self, api_key: int, api_version: int, body) -> tuple[int, bytes]:
        """(correlation id, the request frame to send, size prefix included)."""
        correlation_id = self._next_correlation_id
        self._next_correlation_id = correlation_id + 1 if correlation_id < _INT32_MAX else 0
        frame = encode_request(api_key, api_version, correlation_id, self.client_id, body)
        if not (api_key == ApiKey.PRODUCE and getattr(body, "acks", None) == 0):
            self._in_flight.append((correlation_id, api_key, api_version))
        return correlation_id, frame

    # Incoming bytes, in either of FrameReader's two ways.
    def receive_data(self, data) -> None:
        self._reader.receive_data(data)

    def data_buffer(self) -> memoryview:
        return self._reader.data_buffer()

    def data_received(self, nbytes: int) -> None:
        self._reader.data_received(nbytes)

    def next_event(self):
        """NEED_DATA, CLOSED, or the next ``Response``; a ``ProtocolError`` for a response
        that does not belong to the oldest request in flight or does not decode."""
        reader = self._reader
        while True:
            event = reader.next_event()
            if event is FRAME_ANNOUNCED:
                event = reader.accept_frame()  # responses are the client's own asking: no admission
                if event is None:
                    continue
            elif event is NEED_DATA or event is CLOSED:
                return event
            return self._decode(event)

    def _decode(self, frame) -> Response:
        if len(frame) < 4:
            raise ProtocolError("truncated response header")
        (correlation_id,) = _SIZE.unpack_from(frame, 0)
        if not self._in_flight:
            raise ProtocolError("a response with no request in flight", correlation_id=correlation_id)
        expected, api_key, api_version = self._in_flight[0]
        if correlation_id != expected:
            raise ProtocolError(f"response for correlation id {correlation_id}, expected {expected}",
                                api_key=api_key, api_version=api_version, correlation_id=correlation_id)
        self._in_flight.popleft()
        _, body = decode_response(api_key, api_version, frame)
        return Response(correlation_id, api_key, api_version, body)

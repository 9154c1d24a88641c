"""Transports: how a connection's bytes move, below the framing and above the socket.

Theory of operation
-------------------
``Connection`` (``connection.py``) speaks Kafka through the sans-IO ``FrameReader``
(``protocol/framing.py``) and moves bytes only through a ``Transport``, which has one job:
receive into memory it is given, send bytes, send a file region. Two implement it:

* ``FdTransport``, the fast path for plain TCP: non-blocking ``os.readv`` straight into
  the reader's buffer, ``os.write``, and ``os.sendfile`` from the segment file for Fetch
  records (with a ``pread`` fallback where the kernel refuses). It parks on the socket only
  when it is empty or full: trio's socket methods add a scheduler round trip to every
  call even when the data is already there (half the broker thread with 200 producer
  connections, measured with py-spy before the reader read this way);
* ``StreamTransport``, over any ``trio.abc.Stream``: ``trio.SSLStream`` (TLS), memory
  streams in tests, and whatever wraps a socket later (SASL framing). It copies: received
  bytes from ``receive_some`` into the reader's buffer, and a file region's bytes read
  with ``pread`` in pieces, since a stream cannot take a ``sendfile``.

Receiving is split in two so the connection can tell a wait on the client from a read
that finds data: ``receive_into_nowait(view)`` returns the bytes read (0 at end of
stream) or None when nothing is there yet, and ``wait_receivable()`` waits until there
is. The connection notes when it starts waiting inside a frame
(``socket.request.incomplete.timeout.ms``). Sending keeps ``send_blocked_since``: since
when a send has made no progress (``socket.response.stall.timeout.ms``); the broker's
deadline sweep reads it.
"""

from __future__ import annotations

import os
from typing import Protocol

import trio

from kafkito.protocol import FileRegion

__all__ = ["FdTransport", "StreamTransport", "Transport"]

_STREAM_RECEIVE_BYTES = 64 * 1024  # one receive_some; as much as the frame reader's receive buffer
_STREAM_SEND_BYTES = 256 * 1024  # a stream send in pieces, so a slow but reading client shows progress


class Transport(Protocol):
    peer: str
    send_blocked_since: float | None  # trio time since which a send has made no progress

    def receive_into_nowait(self, view: memoryview) -> int | None:
        """Bytes received into ``view`` (0: end of stream), or None if none are there yet."""

    async def wait_receivable(self) -> None:
        """Return once ``receive_into_nowait`` has something to give (data or end of stream)."""

    async def send(self, data) -> None:
        """Send all of ``data`` (bytes-like)."""

    async def send_region(self, region: FileRegion) -> None:
        """Send ``region.size`` bytes of ``region``'s file from ``region.position``."""

    async def aclose(self) -> None: ...


def _peer_of(sock) -> str:
    try:
        return "%s:%s" % sock.getpeername()[:2]
    except (OSError, TypeError, ValueError):
        return "?"


def _read_region(region: FileRegion, done: int, nbytes: int) -> bytes:
    data = os.pread(region.fileno(), nbytes, region.position + done)
    if not data:
        raise trio.BrokenResourceError(f"file ended {region.size - done} bytes before the end of its region")
    return data


class FdTransport:
    """A connected TCP socket, read and written with plain non-blocking calls on its fd."""

    __slots__ = ("stream", "peer", "send_blocked_since", "_fd")

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self._fd = stream.socket.fileno()
        self.peer = _peer_of(stream.socket)
        self.send_blocked_since: float | None = None

    def receive_into_nowait(self, view: memoryview) -> int | None:
        try:
            return os.readv(self._fd, (view,))
        except BlockingIOError:
            # Return instead of parking here: an exception kept alive across the wait (with
            # its traceback) cost every idle connection about 500 bytes.
            return None

    async def wait_receivable(self) -> None:
        await trio.lowlevel.wait_readable(self._fd)

    async def send(self, data) -> None:
        fd = self._fd
        total = len(data)
        sent = 0
        view = None
        while True:
            try:
                sent += os.write(fd, data if view is None else view[sent:])
            except BlockingIOError:
                blocked = True
            else:
                blocked = False
            if blocked:  # parked outside the except block (see receive_into_nowait)
                if self.send_blocked_since is None:
                    self.send_blocked_since = trio.current_time()
                await trio.lowlevel.wait_writable(fd)
                continue
            self.send_blocked_since = None
            if sent >= total:
                return
            if view is None:
                view = memoryview(data)

    async def send_region(self, region: FileRegion) -> None:
        """sendfile(2) from the file; falls back to pread+write where unsupported."""
        fd_in, position, remaining = region.fileno(), region.position, region.size
        out = self._fd
        while remaining > 0:
            try:
                sent = os.sendfile(out, fd_in, position, remaining)
            except BlockingIOError:
                if self.send_blocked_since is None:
                    self.send_blocked_since = trio.current_time()
                await trio.lowlevel.wait_writable(out)
                continue
            except OSError:
                done = region.size - remaining
                while remaining > 0:
                    data = _read_region(region, done, min(remaining, _STREAM_SEND_BYTES))
                    await self.send(data)
                    done += len(data)
                    remaining -= len(data)
                return
            if sent == 0:
                raise trio.BrokenResourceError(
                    f"segment file ended {remaining} bytes early while sending to {self.peer}"
                )
            self.send_blocked_since = None
            position += sent
            remaining -= sent
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await self.stream.aclose()


class StreamTransport:
    """Any trio byte stream: TLS (``trio.SSLStream``), in-memory test streams, ..."""

    __slots__ = ("stream", "peer", "send_blocked_since", "_data", "_offset", "_eof")

    def __init__(self, stream: trio.abc.Stream, peer: str | None = None) -> None:
        self.stream = stream
        if peer is None:
            inner = getattr(stream, "transport_stream", stream)  # an SSLStream's socket
            sock = getattr(inner, "socket", None)
            peer = _peer_of(sock) if sock is not None else "stream"
        self.peer = peer
        self.send_blocked_since: float | None = None
        self._data = b""  # received by wait_receivable, not yet taken
        self._offset = 0
        self._eof = False

    def receive_into_nowait(self, view: memoryview) -> int | None:
        data, offset = self._data, self._offset
        if offset < len(data):
            n = min(len(view), len(data) - offset)
            view[:n] = data[offset:offset + n]
            self._offset = offset + n
            return n
        return 0 if self._eof else None

    async def wait_receivable(self) -> None:
        if self._offset < len(self._data) or self._eof:
            return
        data = await self.stream.receive_some(_STREAM_RECEIVE_BYTES)
        if data:
            self._data, self._offset = memoryview(data), 0
        else:
            self._eof = True

    async def send(self, data) -> None:
        view = memoryview(data)
        for start in range(0, len(view), _STREAM_SEND_BYTES):
            self.send_blocked_since = trio.current_time()  # progress is per piece
            await self.stream.send_all(view[start:start + _STREAM_SEND_BYTES])
        self.send_blocked_since = None

    async def send_region(self, region: FileRegion) -> None:
        done, size = 0, region.size
        while done < size:
            data = _read_region(region, done, min(size - done, _STREAM_SEND_BYTES))
            await self.send(data)
            done += len(data)

    async def aclose(self) -> None:
        await self.stream.aclose()

"""One TCP connection to one broker: pipelined requests over the sans-IO ``ClientFraming``.

Theory of operation
-------------------
``protocol.ClientFraming`` does the protocol work: it numbers requests, remembers each
one's API and version, and decodes responses (which do not name their API) in request
order. This module is its thin anyio shell:

* ``request()`` encodes and writes a frame under a lock (frames must not interleave) and
  then waits on a ``_Pending`` slot; any number of requests may be in flight at once, up
  to ``max.in.flight.requests.per.connection``. The write is shielded from cancellation:
  a frame cut in half would desynchronise the stream for every later request.
* one reader task per connection, in the owner's task group, feeds received bytes to the
  framing and fills the slots in order (responses come in request order, Kafka's rule);
* a failure of the stream (EOF, reset, a frame that does not decode) fails every waiting
  slot with ``KafkaConnectionError`` and marks the connection dead; the owner (cluster.py)
  drops it and opens another on the next request. A request that exceeds
  ``request.timeout.ms`` closes the connection too, as Kafka's client does: the broker
  may still answer it later, and nothing else could be trusted to line up.

The first exchange is ApiVersions (KIP-511: if the broker does not know our version it
answers v0 with its ranges, and we ask again at v0). ``version(api, ours_max)`` then
picks the highest version both sides speak.
"""

from __future__ import annotations

import logging
import socket
from collections import deque

import anyio

from kafkito.protocol import CLOSED, NEED_DATA, ApiKey, ClientFraming, ErrorCode, ProtocolError
from kafkito.protocol.messages.api_versions import ApiVersionsRequest

from .errors import KafkaConnectionError, KafkaError, KafkaTimeoutError, error_for

__all__ = ["BrokerConnection"]

log = logging.getLogger("kafkito.client")

_API_VERSIONS_MAX = 3
_RECEIVE_BYTES = 256 * 1024


class _Pending:
    __slots__ = ("event", "result", "error")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.result = None
        self.error: BaseException | None = None


class BrokerConnection:
    def __init__(self, host: str, port: int, *, node_id: int = -1, client_id: str = "kafkito",
                 request_timeout_ms: int = 30000, connect_timeout_ms: int = 10000,
                 max_in_flight: int = 5) -> None:
        self.host = host
        self.port = port
        self.node_id = node_id
        self.client_id = client_id
        self.request_timeout_ms = request_timeout_ms
        self.connect_timeout_ms = connect_timeout_ms
        self._framing = ClientFraming(client_id)
        self._stream: anyio.abc.SocketStream | None = None
        self._pending: deque[_Pending] = deque()
        self._send_lock = anyio.Lock()
        self._slots = anyio.Semaphore(max(1, max_in_flight))
        self._reader_scope: anyio.CancelScope | None = None
        self._error: BaseException | None = None
        self.versions: dict[int, tuple[int, int]] = {}

    def __repr__(self) -> str:
        return f"<BrokerConnection node={self.node_id} {self.host}:{self.port}>"

    @property
    def alive(self) -> bool:
        return self._stream is not None and self._error is None

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    async def connect(self, task_group) -> None:
        """Open the socket, start the reader in ``task_group`` and negotiate versions."""
        try:
            with anyio.fail_after(self.connect_timeout_ms / 1000):
                self._stream = await anyio.connect_tcp(self.host, self.port)
            # Requests are whole frames written at once: Nagle's delay would only add the
            # peer's delayed-ACK time to every request (anyio sets it on asyncio, not on trio).
            sock = self._stream.extra(anyio.abc.SocketAttribute.raw_socket)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, TimeoutError) as exc:
            raise KafkaConnectionError(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        await task_group.start(self._reader)
        await self._negotiate()

    async def _negotiate(self) -> None:
        body = ApiVersionsRequest(client_software_name="kafkito", client_software_version="0.1.0")
        resp = await self.request(ApiKey.API_VERSIONS, _API_VERSIONS_MAX, body)
        if resp.error_code == ErrorCode.UNSUPPORTED_VERSION:
            resp = await self.request(ApiKey.API_VERSIONS, 0, ApiVersionsRequest())
        if resp.error_code:
            raise error_for(resp.error_code, "ApiVersions")
        self.versions = {k.api_key: (k.min_version, k.max_version) for k in resp.api_keys}

    def version(self, api_key: int, ours_max: int, ours_min: int = 0) -> int:
        """The highest version of ``api_key`` both sides speak; UNSUPPORTED_VERSION if none."""
        theirs = self.versions.get(int(api_key))
        if theirs is None or theirs[1] < ours_min or theirs[0] > ours_max:
            raise error_for(ErrorCode.UNSUPPORTED_VERSION,
                            f"{ApiKey(api_key).name} v{ours_min}-{ours_max} not served by {self.host}:{self.port}")
        return min(ours_max, theirs[1])

    def supports(self, api_key: int, min_version: int = 0) -> bool:
        theirs = self.versions.get(int(api_key))
        return theirs is not None and theirs[1] >= min_version

    async def request(self, api_key: int, version: int, body, *, timeout_ms: int | None = None):
        """Send one request and return its decoded response body (None for acks=0 produce)."""
        async with self._slots:
            pending = await self.send(api_key, version, body, timeout_ms=timeout_ms)
            return await self.receive(pending, api_key, timeout_ms=timeout_ms)

    async def send(self, api_key: int, version: int, body, *, timeout_ms: int | None = None) -> _Pending | None:
        """Write one request; returns the slot its answer will fill (None for acks=0 produce).

        Callers that must keep an order between requests (the producer's batches of one
        partition) call this in that order and ``receive`` concurrently."""
        if not self.alive:
            raise self._dead_error()
        expect = not (api_key == ApiKey.PRODUCE and getattr(body, "acks", None) == 0)
        timeout_s = (timeout_ms if timeout_ms is not None else self.request_timeout_ms) / 1000
        pending = _Pending() if expect else None
        with anyio.CancelScope(shield=True):
            async with self._send_lock:
                if not self.alive:
                    raise self._dead_error()
                _, frame = self._framing.send_request(api_key, version, body)
                if pending is not None:
                    self._pending.append(pending)
                try:
                    with anyio.fail_after(timeout_s):
                        await self._stream.send(frame)
                except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError, TimeoutError) as exc:
                    self._fail(KafkaConnectionError(f"send to {self.host}:{self.port} failed: {exc!r}"))
                    raise self._dead_error() from None
        return pending

    async def receive(self, pending: _Pending | None, api_key: int = -1, *, timeout_ms: int | None = None):
        """Wait for the answer of a ``send``; the decoded response body."""
        if pending is None:
            return None
        timeout_s = (timeout_ms if timeout_ms is not None else self.request_timeout_ms) / 1000
        with anyio.move_on_after(timeout_s) as scope:
            await pending.event.wait()
        if scope.cancelled_caught and not pending.event.is_set():
            name = ApiKey(api_key).name if api_key >= 0 else "a request"
            self._fail(KafkaTimeoutError(f"no answer to {name} from {self.host}:{self.port} in {timeout_s:.1f} s"))
        if pending.error is not None:
            raise pending.error
        return pending.result

    def _dead_error(self) -> KafkaError:
        err = self._error
        if isinstance(err, (KafkaConnectionError, KafkaTimeoutError)):
            return type(err)(err.message)
        return KafkaConnectionError(f"connection to {self.host}:{self.port} is closed")

    async def _reader(self, *, task_status=anyio.TASK_STATUS_IGNORED) -> None:
        with anyio.CancelScope() as scope:
            self._reader_scope = scope
            task_status.started()
            framing = self._framing
            stream = self._stream
            try:
                while True:
                    try:
                        data = await stream.receive(_RECEIVE_BYTES)
                    except anyio.EndOfStream:
                        data = b""
                    framing.receive_data(data)
                    while True:
                        event = framing.next_event()
                        if event is NEED_DATA:
                            break
                        if event is CLOSED:
                            raise KafkaConnectionError(f"{self.host}:{self.port} closed the connection")
                        if self._pending:
                            pending = self._pending.popleft()
                            pending.result = event.body
                            pending.event.set()
            except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError, ProtocolError,
                    KafkaConnectionError) as exc:
                self._fail(exc if isinstance(exc, KafkaConnectionError)
                           else KafkaConnectionError(f"{self.host}:{self.port}: {exc!r}"))
            except Exception as exc:  # never let a reader take the owner's task group down
                log.exception("connection reader failed")
                self._fail(KafkaConnectionError(f"{self.host}:{self.port}: {exc!r}"))
            finally:
                if self._error is None:
                    self._fail(KafkaConnectionError(f"connection to {self.host}:{self.port} closed"))
                with anyio.CancelScope(shield=True):
                    try:
                        await stream.aclose()
                    except Exception:
                        pass

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        while self._pending:
            pending = self._pending.popleft()
            pending.error = self._dead_error()
            pending.event.set()
        if self._reader_scope is not None:
            self._reader_scope.cancel()  # the reader closes the stream on its way out

    async def close(self) -> None:
        self._fail(KafkaConnectionError(f"connection to {self.host}:{self.port} closed by the client"))
        if self._reader_scope is None and self._stream is not None:  # the reader never started
            with anyio.CancelScope(shield=True):
                await self._stream.aclose()

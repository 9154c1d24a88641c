"""The HTTP listener's trio shell: accept, read requests through h11, write answers.

Theory of operation. ``HttpListener.open`` binds ``http.listeners`` (a port in use is a
``BrokerStartError``, as for the Kafka listener); ``run`` accepts in the broker's nursery.
Each connection is one task running h11's state machine: bytes from the socket go in,
``Request``/``Data``/``EndOfMessage`` events come out, one request at a time (keep-alive,
no pipelining beyond what h11 buffers). Limits, each named below: a request head larger
than ``HTTP_HEAD_BYTES_MAX`` is 431, a body larger than ``HTTP_BODY_BYTES_MAX`` is 413 (no
route takes a body yet), a connection idle or stalled past ``HTTP_IDLE_TIMEOUT_S`` is
closed, and at most ``HTTP_CONNECTIONS_MAX`` connections are served (more are answered 503
and closed). A handler that raises is answered 500 and logged; the broker keeps running.
"""

from __future__ import annotations

import errno
import logging

import h11
import trio

from .routes import HttpError, HttpResponse, Router

log = logging.getLogger("kafkito.broker.http")

__all__ = ["HttpListener", "default_router"]

HTTP_HEAD_BYTES_MAX = 16 * 1024
HTTP_BODY_BYTES_MAX = 64 * 1024
HTTP_IDLE_TIMEOUT_S = 30.0
HTTP_CONNECTIONS_MAX = 256
_READ_BYTES = 64 * 1024
SERVER_NAME = "kafkito"


def default_router(state) -> Router:
    """Every route the broker serves (one line per area)."""
    from . import keys

    router = Router()
    keys.register(router, state)
    return router


class HttpListener:
    def __init__(self, router: Router) -> None:
        self.router = router
        self.address: tuple[str, int] | None = None
        self._listeners: list = []
        self._connections = 0

    async def open(self, host: str, port: int) -> tuple[str, int]:
        from ..server import BrokerStartError

        try:
            self._listeners = await trio.open_tcp_listeners(port, host=host)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise BrokerStartError(f"cannot listen for HTTP on {host}:{port}: address already "
                                       "in use (set http.listeners, or --http off)") from None
            raise BrokerStartError(f"cannot listen for HTTP on {host}:{port}: "
                                   f"{exc.strerror or exc}") from None
        self.address = (host, self._listeners[0].socket.getsockname()[1])
        return self.address

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            for listener in self._listeners:
                nursery.start_soon(self._accept_loop, listener, nursery)

    async def _accept_loop(self, listener, nursery: trio.Nursery) -> None:
        async with listener:
            while True:
                try:
                    stream = await listener.accept()
                except OSError as exc:  # EMFILE and friends: back off, as the Kafka listener does
                    log.warning("HTTP accept failed: %s", exc)
                    await trio.sleep(0.1)
                    continue
                nursery.start_soon(self._serve, stream)

    async def _serve(self, stream) -> None:
        self._connections += 1
        try:
            async with stream:
                if self._connections > HTTP_CONNECTIONS_MAX:
                    conn = h11.Connection(h11.SERVER)
                    await self._refuse(stream, conn)
                    return
                await self._serve_requests(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
            pass
        finally:
            self._connections -= 1

    async def _refuse(self, stream, conn: h11.Connection) -> None:
        with trio.move_on_after(1):
            data = await stream.receive_some(_READ_BYTES)
            conn.receive_data(data)
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError:
                return
            if isinstance(event, h11.Request):
                await self._send(stream, conn, HttpError(
                    503, "TOO_MANY_CONNECTIONS",
                    f"more than {HTTP_CONNECTIONS_MAX} HTTP connections").response())

    async def _serve_requests(self, stream) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=HTTP_HEAD_BYTES_MAX)
        while True:
            request = None
            ended = False
            body = 0
            too_large = False
            with trio.move_on_after(HTTP_IDLE_TIMEOUT_S):
                try:
                    while True:
                        event = conn.next_event()
                        if event is h11.NEED_DATA:
                            data = await stream.receive_some(_READ_BYTES)
                            conn.receive_data(data)  # b"" marks the end of the stream
                            continue
                        if isinstance(event, h11.Request):
                            request = event
                            # h11 caps only a head still incomplete; one read may hold more
                            head = len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers)
                            if head > HTTP_HEAD_BYTES_MAX:
                                raise h11.RemoteProtocolError(
                                    f"request head over {HTTP_HEAD_BYTES_MAX} bytes", 431)
                        elif isinstance(event, h11.Data):
                            body += len(event.data)
                            too_large = too_large or body > HTTP_BODY_BYTES_MAX
                        elif isinstance(event, h11.EndOfMessage):
                            ended = True
                            break
                        elif isinstance(event, h11.ConnectionClosed):
                            return
                except h11.RemoteProtocolError as exc:
                    status = exc.error_status_hint
                    code = "REQUEST_HEADER_FIELDS_TOO_LARGE" if status == 431 else "BAD_REQUEST"
                    if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                        await self._send(stream, conn, HttpError(status, code, str(exc)).response())
                    return
            if request is None or not ended:
                return  # idle or stalled past the timeout
            if too_large:
                response = HttpError(413, "PAYLOAD_TOO_LARGE",
                                     f"request bodies are limited to {HTTP_BODY_BYTES_MAX} bytes").response()
            else:
                response = await self._dispatch(request)
            await self._send(stream, conn, response)
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()

    async def _dispatch(self, request: h11.Request) -> HttpResponse:
        method = request.method.decode("ascii", "replace")
        target = request.target.decode("ascii", "replace")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
        try:
            return await self.router.dispatch(method, target, headers)
        except Exception:
            log.exception("HTTP %s %s failed", method, target)
            return HttpError(500, "INTERNAL_ERROR", "the broker failed to answer; see its log").response()

    async def _send(self, stream, conn: h11.Connection, response: HttpResponse) -> None:
        headers = [("server", SERVER_NAME), ("content-length", str(len(response.body)))]
        headers += response.headers
        out = conn.send(h11.Response(status_code=response.status, headers=headers))
        out += conn.send(h11.Data(data=response.body))
        out += conn.send(h11.EndOfMessage())
        await stream.send_all(out)

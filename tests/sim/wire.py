"""The request path of broker/connection.py without a socket.

A request is encoded to a frame with our codec, decoded the way the connection decodes
it, handed to the broker's own handler with a ``RequestContext``, its ``Deferred`` (if any)
awaited, and the response encoded to bytes (file regions read through the log's FileIO,
as ``sendfile`` would send them) and decoded again as a client would. So every request
and response crosses the real codec and the real handler, in both directions.
"""

from __future__ import annotations

from kafkito.broker.context import RequestContext, resolve
from kafkito.protocol import RecordsRef, decode_request, decode_response, encode_request, encode_response


class HandlerCrashed(Exception):
    """A handler raised: the connection layer would log it and drop the connection."""


class Wire:
    def __init__(self, state, client_id: str) -> None:
        self.state = state
        self.client_id = client_id
        self.correlation_id = 0

    async def call(self, api_key: int, version: int, body):
        self.correlation_id += 1
        cid = self.correlation_id
        frame = encode_request(api_key, version, cid, self.client_id, body)
        header, request = decode_request(memoryview(frame)[4:])
        handler = self.state.handlers[header.api_key]
        assert handler.MIN_VERSION <= version <= handler.MAX_VERSION, (api_key, version)
        try:
            response = await resolve(await handler.handle(RequestContext(header, self.state, "sim"), request))
        except Exception as exc:  # what Connection._settle turns into a closed connection
            raise HandlerCrashed(f"{type(exc).__name__}: {exc}") from exc
        if response is None:  # acks=0
            return None
        chunks = encode_response(api_key, version, cid, response)
        data = b"".join(c.region.tobytes() if isinstance(c, RecordsRef) else bytes(c) for c in chunks)
        got_cid, decoded = decode_response(api_key, version, memoryview(data)[4:])
        assert got_cid == cid
        return decoded

"""kafkito.protocol: Kafka's binary protocol as a sans-IO codec.

Bytes in, typed messages out, and the reverse; no sockets, no trio. The pieces:

- ``primitives``: varints, strings, bytes, records, uuids, tagged-field sections.
- ``types`` / ``schema``: the declaration language; ``messages/<api>.py`` declare each
  API's request and response once, as data, and ``messages.SPECS`` indexes them by key.
- ``codec``: derives (and caches) an encoder and a decoder per struct and version.
- ``frames``: size prefix, request/response headers, whole-frame encode/decode; the
  functions the broker and the client call.
- ``framing``: the byte stream as a state machine, both ends: ``FrameReader`` (bytes in,
  whole frames out; the server side) and ``ClientFraming`` (requests out, responses in,
  matched by correlation id). No I/O: the broker's transports feed it.
- ``errors`` (``ProtocolError``, the only exception decoders raise), ``error_codes``
  (``ErrorCode``), ``api_keys`` (``ApiKey``).
"""

from .api_keys import ApiKey
from .error_codes import ErrorCode
from .errors import ProtocolError
from .framing import CLOSED, FRAME_ANNOUNCED, NEED_DATA, ClientFraming, FrameReader, FrameSizeError, Response
from .frames import (
    RequestHeader,
    decode_frame_size,
    decode_request,
    decode_request_body,
    decode_request_header,
    decode_response,
    decode_response_body,
    encode_request,
    encode_request_body,
    encode_response,
    encode_response_body,
    encode_response_bytes,
)
from .messages import SPECS
from .primitives import FileRegion, RecordsRef
from .schema import ApiSpec, Message

__all__ = [
    "CLOSED",
    "FRAME_ANNOUNCED",
    "NEED_DATA",
    "SPECS",
    "ApiKey",
    "ApiSpec",
    "ClientFraming",
    "ErrorCode",
    "FileRegion",
    "FrameReader",
    "FrameSizeError",
    "Message",
    "ProtocolError",
    "RecordsRef",
    "RequestHeader",
    "Response",
    "decode_frame_size",
    "decode_request",
    "decode_request_body",
    "decode_request_header",
    "decode_response",
    "decode_response_body",
    "encode_request",
    "encode_request_body",
    "encode_response",
    "encode_response_body",
    "encode_response_bytes",
]

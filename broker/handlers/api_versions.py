"""ApiVersions (key 18): versions 0-4.

Lists exactly the APIs the broker has handlers for, with the version ranges those
handlers declare (the hand-kept table: each handler module's MIN_VERSION/MAX_VERSION).

A request of a version newer than we serve cannot be decoded reliably, so it is answered
in v0 with UNSUPPORTED_VERSION and our ranges; the client then retries with a version we
know (KIP-511). Optional tagged fields (features) are left unset, as Kafka does when it
has none: older librdkafka releases reject a response that carries them.

Produce is advertised from v0 although v0-v2 are rejected on use, as Kafka 4 does: some
librdkafka versions stop compressing when Produce v0 is not listed.
"""

from __future__ import annotations

from kafkito.protocol import ApiKey, ErrorCode, encode_response
from kafkito.protocol.messages.api_versions import ApiVersion, ApiVersionsResponse

API_KEY = ApiKey.API_VERSIONS
MIN_VERSION = 0
MAX_VERSION = 4


def advertised(state) -> list[ApiVersion]:
    out = []
    for key in sorted(state.handlers):
        handler = state.handlers[key]
        low = getattr(handler, "ADVERTISED_MIN_VERSION", handler.MIN_VERSION)
        out.append(ApiVersion(api_key=key, min_version=low, max_version=handler.MAX_VERSION))
    return out


async def handle(ctx, request) -> ApiVersionsResponse:
    return ApiVersionsResponse(error_code=ErrorCode.NONE, api_keys=advertised(ctx.broker), throttle_time_ms=0)


def unsupported_version(state, correlation_id: int) -> list:
    """The v0 answer to an ApiVersions request of a version we do not serve (or cannot decode)."""
    body = ApiVersionsResponse(error_code=ErrorCode.UNSUPPORTED_VERSION, api_keys=advertised(state))
    return encode_response(ApiKey.API_VERSIONS, 0, correlation_id, body)

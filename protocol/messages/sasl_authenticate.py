"""SaslAuthenticate (key 36): Carry SASL authentication bytes in a Kafka frame.

Declared v0-2, flexible from v2.
v1 session_lifetime_ms; v2 is flexible.
"""

from ..schema import ApiSpec, field, struct
from ..types import BYTES, INT16, INT64, STRING


SaslAuthenticateRequest = struct(
    "SaslAuthenticateRequest",
    field("auth_bytes", BYTES),
)


SaslAuthenticateResponse = struct(
    "SaslAuthenticateResponse",
    field("error_code", INT16),
    field("error_message", STRING, nullable="0+"),
    field("auth_bytes", BYTES),
    field("session_lifetime_ms", INT64, "1+"),
)

SPEC = ApiSpec(36, "SaslAuthenticate", "0-2", "2+", SaslAuthenticateRequest, SaslAuthenticateResponse)

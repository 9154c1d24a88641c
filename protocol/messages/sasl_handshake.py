"""SaslHandshake (key 17): Choose a SASL mechanism before authenticating.

Declared v0-1, never flexible.
v1 means the SASL bytes then travel in SaslAuthenticate frames. Never flexible.
"""

from ..schema import ApiSpec, field, struct
from ..types import INT16, STRING, array


SaslHandshakeRequest = struct(
    "SaslHandshakeRequest",
    field("mechanism", STRING),
)


SaslHandshakeResponse = struct(
    "SaslHandshakeResponse",
    field("error_code", INT16),
    field("mechanisms", array(STRING)),
)

SPEC = ApiSpec(17, "SaslHandshake", "0-1", "none", SaslHandshakeRequest, SaslHandshakeResponse)

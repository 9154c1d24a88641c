"""The one exception the decoders raise.

Everything that can go wrong while reading untrusted bytes (a truncated frame, a length
that points past the end, an unknown API key or version, a varint longer than its type, a
negative length that is not the null marker, a string that is not UTF-8, trailing bytes)
surfaces as ``ProtocolError``. It carries whatever of the request header had been read
when the problem was found, so the broker can still answer (UNSUPPORTED_VERSION for
ApiVersions) or close the connection and log a reason that names the request.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Undecodable input. Attributes are None when the decoder had not read them yet."""

    def __init__(
        self,
        reason: str,
        *,
        api_key: int | None = None,
        api_version: int | None = None,
        correlation_id: int | None = None,
        client_id: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.api_key = api_key
        self.api_version = api_version
        self.correlation_id = correlation_id
        self.client_id = client_id

    def __str__(self) -> str:
        where = []
        if self.api_key is not None:
            where.append(f"api_key={self.api_key}")
        if self.api_version is not None:
            where.append(f"api_version={self.api_version}")
        if self.correlation_id is not None:
            where.append(f"correlation_id={self.correlation_id}")
        if self.client_id is not None:
            where.append(f"client_id={self.client_id!r}")
        return f"{self.reason} ({', '.join(where)})" if where else self.reason

"""Routing: (method, path pattern) -> async handler, and the JSON answers handlers return.

A pattern is a path with ``{name}`` placeholders, each matching one percent-encoded path
segment; handlers get the segments still percent-encoded (``params``) so they decide how to
decode them (a record key may be any bytes). A path that matches no route is 404; a
path that matches with another method is 405 with an ``Allow`` header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Awaitable, Callable
from urllib.parse import parse_qs

import msgspec

__all__ = ["HttpError", "HttpRequest", "HttpResponse", "Router"]


@dataclass
class HttpRequest:
    method: str
    path: str  # still percent-encoded
    query: dict[str, list[str]]
    headers: dict[str, str]
    params: dict[str, str] = field(default_factory=dict)

    def one(self, name: str) -> str | None:
        """A query parameter given at most once (a repeat is a 400)."""
        values = self.query.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise HttpError(400, "INVALID_REQUEST", f"query parameter {name!r} given {len(values)} times")
        return values[0]


@dataclass
class HttpResponse:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, status: int, obj, headers: list[tuple[str, str]] | None = None) -> "HttpResponse":
        return cls(status, msgspec.json.encode(obj) + b"\n",
                   [("content-type", "application/json")] + (headers or []))


class HttpError(Exception):
    """Raised by a handler: answered as ``{"error": code, "message": message}``."""

    def __init__(self, status: int, code: str, message: str, headers: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or []

    def response(self) -> HttpResponse:
        return HttpResponse.json(self.status, {"error": self.code, "message": self.message},
                                 self.headers)


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


class Router:
    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern, Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(pattern))
        self._routes.append((method.upper(), re.compile(f"^{regex}$"), handler))

    async def dispatch(self, method: str, target: str, headers: dict[str, str]) -> HttpResponse:
        path, _, query = target.partition("?")
        allowed = []
        for route_method, regex, handler in self._routes:
            m = regex.match(path)
            if m is None:
                continue
            if route_method != method:
                allowed.append(route_method)
                continue
            request = HttpRequest(method, path, parse_qs(query, keep_blank_values=True), headers,
                                  m.groupdict())
            try:
                return await handler(request)
            except HttpError as e:
                return e.response()
        if allowed:
            return HttpError(405, "METHOD_NOT_ALLOWED", f"{method} is not allowed on {path}",
                             [("allow", ", ".join(sorted(set(allowed))))]).response()
        return HttpError(404, "NOT_FOUND", f"no such resource: {path}").response()

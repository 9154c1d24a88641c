"""Helpers shared by the group coordinator's handlers (join_group.py, offset_commit.py, ...).

The coordinator itself lives in ``kafkito.broker.group``; these handlers only translate
wire structs to coordinator calls and back, version by version.
"""

from __future__ import annotations

from kafkito.protocol import ErrorCode


def unavailable(ctx) -> ErrorCode | None:
    """The error every group request gets while the coordinator cannot serve it."""
    groups = ctx.broker.groups
    if groups is None:
        return ErrorCode.COORDINATOR_NOT_AVAILABLE
    if groups.loading:
        return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
    return None


def client_host(ctx) -> str:
    """The member's address as Kafka shows it (InetAddress.toString(): "/127.0.0.1").

    The connection names its peer "host:port"; the port is not part of it."""
    host, sep, _port = ctx.client_host.rpartition(":")
    return f"/{host if sep else ctx.client_host}" if ctx.client_host else ""


def client_id(ctx) -> str:
    return ctx.header.client_id or ""

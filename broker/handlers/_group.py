"""Helpers shared by the group coordinator's handlers (join_group.py, offset_commit.py, ...).

The coordinator itself lives in ``kafkito.broker.group``; these handlers only translate
wire structs to coordinator calls and back, version by version.
"""

from __future__ import annotations

from collections.abc import Callable

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


def split_commit(ctx, topics, down: ErrorCode | None, entry: Callable) -> tuple[dict, list]:
    """An OffsetCommit/TxnOffsetCommit request's partitions: (errors answered without the
    coordinator, by (topic, partition): ``down`` for all when the request cannot be served,
    UNKNOWN_TOPIC_OR_PARTITION for a partition that does not exist, as in Kafka; and
    [(topic, [entry(partition)])] for the rest)."""
    errors: dict[tuple[str, int], ErrorCode] = {}
    to_commit: list = []
    for topic in topics:
        meta = ctx.broker.logs.topic(topic.name)
        entries = []
        for p in topic.partitions:
            if down is not None:
                errors[(topic.name, p.partition_index)] = down
            elif meta is None or not 0 <= p.partition_index < meta.num_partitions:
                errors[(topic.name, p.partition_index)] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            else:
                entries.append(entry(p))
        if entries:
            to_commit.append((topic.name, entries))
    return errors, to_commit


async def commit_answered(groups, waiter, errors: dict) -> dict:
    """``errors`` completed with the coordinator's per-partition answers, once it gives them
    (the commit's fsync), parked off the connection's turn."""
    for topic_name, rows in await groups.wait(waiter):
        for partition, error in rows:
            errors[(topic_name, partition)] = error
    return errors

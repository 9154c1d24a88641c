"""``kafkito groups list|describe|reset-offsets|delete`` (as kafka-consumer-groups.sh).

``describe`` shows, per partition, the committed offset, the log end offset, the lag and
the member that owns it. ``reset-offsets`` computes new offsets for a group's partitions
of ``--topic`` (``--to-earliest``, ``--to-latest``, ``--to-offset N``, ``--to-datetime
ISO-8601``, ``--shift-by N``, clamped to the log's range) and prints them; only with
``--execute`` does it commit them, and only while the group has no active members (Kafka's
rule: a live member would overwrite them).
"""

from __future__ import annotations

from datetime import datetime, timezone

from ..admin import Admin
from ..errors import KafkaError
from ..types import OffsetAndMetadata, TopicPartition
from .common import add_common, client_kwargs, emit, emit_json


def add_parser(sub) -> None:
    p = sub.add_parser("groups", help="list, describe, reset and delete consumer groups")
    gsub = p.add_subparsers(dest="action", required=True)
    ls = gsub.add_parser("list", help="every group")
    de = gsub.add_parser("describe", help="offsets, lag and members of a group")
    de.add_argument("group")
    rs = gsub.add_parser("reset-offsets", help="move a group's committed offsets (dry run unless --execute)")
    rs.add_argument("group")
    rs.add_argument("--topic", required=True, action="append", help="topic or topic:partition (repeatable)")
    how = rs.add_mutually_exclusive_group(required=True)
    how.add_argument("--to-earliest", action="store_true")
    how.add_argument("--to-latest", action="store_true")
    how.add_argument("--to-offset", type=int)
    how.add_argument("--to-datetime", help="e.g. 2026-01-31T12:00:00 (UTC unless an offset is given)")
    how.add_argument("--shift-by", type=int)
    rs.add_argument("--execute", action="store_true", help="commit the new offsets (default: dry run)")
    dl = gsub.add_parser("delete", help="delete groups (they must be empty)")
    dl.add_argument("groups", nargs="+")
    for sp in (ls, de, rs, dl):
        add_common(sp)


async def run(args) -> int:
    async with Admin(args.bootstrap_server, **client_kwargs(args)) as admin:
        if args.action == "list":
            groups = await admin.list_groups()
            emit(args, [{"group": g, "protocol_type": t, "state": s} for g, t, s in groups],
                 (f"{g}\t{s}" for g, _t, s in groups))
        elif args.action == "describe":
            return await _describe(admin, args)
        elif args.action == "reset-offsets":
            return await _reset(admin, args)
        elif args.action == "delete":
            await admin.delete_groups(args.groups)
            emit(args, {"deleted": args.groups}, (f"deleted group {g}" for g in args.groups))
    return 0


async def _describe(admin: Admin, args) -> int:
    desc = (await admin.describe_groups([args.group]))[args.group]
    committed = await admin.list_group_offsets(args.group)
    owner = {}
    for m in desc.members:
        for tp in m.assignment:
            owner[tp] = m
    tps = sorted(set(committed) | set(owner))
    ends = await admin.list_offsets({tp: "latest" for tp in tps}) if tps else {}
    rows = []
    for tp in tps:
        cur = committed.get(tp)
        end = ends.get(tp)
        end_offset = end.offset if end is not None else None
        lag = end_offset - cur.offset if cur is not None and end_offset is not None else None
        m = owner.get(tp)
        rows.append({"topic": tp.topic, "partition": tp.partition,
                     "current_offset": cur.offset if cur else None, "log_end_offset": end_offset, "lag": lag,
                     "metadata": cur.metadata if cur else None,
                     "member_id": m.member_id if m else None, "client_id": m.client_id if m else None,
                     "host": m.host if m else None})
    if args.format == "json":
        emit_json({"group": args.group, "state": desc.state, "protocol": desc.protocol,
                   "members": len(desc.members), "partitions": rows})
        return 0
    print(f"GROUP {args.group}  STATE {desc.state}  MEMBERS {len(desc.members)}")
    print("TOPIC\tPARTITION\tCURRENT-OFFSET\tLOG-END-OFFSET\tLAG\tCONSUMER-ID\tHOST\tCLIENT-ID")
    for r in rows:
        cells = [r["topic"], r["partition"], r["current_offset"], r["log_end_offset"], r["lag"],
                 r["member_id"], r["host"], r["client_id"]]
        print("\t".join("-" if c is None else str(c) for c in cells))
    return 0


def _parse_time(text: str) -> int:
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


async def _reset(admin: Admin, args) -> int:
    tps: list[TopicPartition] = []
    described = await admin.describe_topics(sorted({t.split(":")[0] for t in args.topic}))
    for spec in args.topic:
        topic, _, parts = spec.partition(":")
        all_parts = [p.partition for p in described[topic].partitions]
        chosen = [int(x) for x in parts.split(",")] if parts else all_parts
        tps += [TopicPartition(topic, p) for p in chosen]
    earliest = await admin.list_offsets({tp: "earliest" for tp in tps})
    latest = await admin.list_offsets({tp: "latest" for tp in tps})
    lo = {tp: v.offset for tp, v in earliest.items()}
    hi = {tp: v.offset for tp, v in latest.items()}
    current = await admin.list_group_offsets(args.group, tps)
    if args.to_earliest:
        target = dict(lo)
    elif args.to_latest:
        target = dict(hi)
    elif args.to_offset is not None:
        target = {tp: args.to_offset for tp in tps}
    elif args.to_datetime is not None:
        found = await admin.list_offsets({tp: _parse_time(args.to_datetime) for tp in tps})
        target = {tp: (found[tp].offset if found.get(tp) is not None else hi[tp]) for tp in tps}
    else:
        target = {tp: (current[tp].offset if tp in current else hi[tp]) + args.shift_by for tp in tps}
    target = {tp: max(lo[tp], min(hi[tp], off)) for tp, off in target.items()}
    if args.execute:
        desc = (await admin.describe_groups([args.group]))[args.group]
        if desc.state not in ("Empty", "Dead") or desc.members:
            raise KafkaError(f"group {args.group} has active members ({desc.state}): stop them before resetting")
        await admin.alter_group_offsets(args.group, {tp: OffsetAndMetadata(o) for tp, o in target.items()})
    rows = [{"topic": tp.topic, "partition": tp.partition,
             "previous_offset": current[tp].offset if tp in current else None, "new_offset": off}
            for tp, off in sorted(target.items())]
    if args.format == "json":
        emit_json({"group": args.group, "executed": bool(args.execute), "partitions": rows})
    else:
        if not args.execute:
            print("dry run: nothing committed (add --execute to apply)")
        print("GROUP\tTOPIC\tPARTITION\tNEW-OFFSET")
        for r in rows:
            print(f"{args.group}\t{r['topic']}\t{r['partition']}\t{r['new_offset']}")
    return 0

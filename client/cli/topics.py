"""``kafkito topics list|create|describe|alter|delete``."""

from __future__ import annotations

from ..admin import Admin
from .common import add_common, client_kwargs, emit, emit_json


def _kv(text: str) -> tuple[str, str]:
    import argparse

    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def add_parser(sub) -> None:
    p = sub.add_parser("topics", help="list, create, describe, alter and delete topics")
    tsub = p.add_subparsers(dest="action", required=True)
    ls = tsub.add_parser("list", help="topic names")
    ls.add_argument("--internal", action="store_true", help="include internal topics")
    cr = tsub.add_parser("create", help="create a topic")
    cr.add_argument("topic")
    cr.add_argument("--partitions", type=int, default=-1, help="partition count (default: the broker's num.partitions)")
    cr.add_argument("--replication-factor", type=int, default=-1)
    cr.add_argument("--config", action="append", type=_kv, default=[], metavar="NAME=VALUE",
                    help="a topic config, e.g. retention.ms=86400000 (repeatable)")
    de = tsub.add_parser("describe", help="partitions, leaders and configs")
    de.add_argument("topics", nargs="*")
    al = tsub.add_parser("alter", help="add partitions or change configs")
    al.add_argument("topic")
    al.add_argument("--partitions", type=int, help="the new, larger, partition count")
    al.add_argument("--config", action="append", type=_kv, default=[], metavar="NAME=VALUE")
    al.add_argument("--delete-config", action="append", default=[], metavar="NAME")
    dl = tsub.add_parser("delete", help="delete topics")
    dl.add_argument("topics", nargs="+")
    for sp in (ls, cr, de, al, dl):
        add_common(sp)


async def run(args) -> int:
    async with Admin(args.bootstrap_server, **client_kwargs(args)) as admin:
        if args.action == "list":
            names = await admin.list_topics(internal=args.internal)
            emit(args, names, names)
        elif args.action == "create":
            await admin.create_topics({args.topic: {"num_partitions": args.partitions,
                                                    "replication_factor": args.replication_factor,
                                                    "configs": dict(args.config)}})
            emit(args, {"created": args.topic}, [f"created topic {args.topic}"])
        elif args.action == "describe":
            described = await admin.describe_topics(args.topics or None)
            configs = await admin.describe_configs(list(described), include_defaults=False) if described else {}
            out = []
            for name, d in described.items():
                out.append({"topic": name, "internal": d.internal,
                            "configs": {k: v["value"] for k, v in configs.get(("topic", name), {}).items()},
                            "partitions": [{"partition": p.partition, "leader": p.leader, "leader_epoch": p.leader_epoch,
                                            "replicas": list(p.replicas), "isr": list(p.isr)} for p in d.partitions]})
            if args.format == "json":
                emit_json(out)
            else:
                for t in out:
                    cfg = ",".join(f"{k}={v}" for k, v in sorted(t["configs"].items()))
                    print(f"Topic: {t['topic']}\tPartitionCount: {len(t['partitions'])}\tConfigs: {cfg}")
                    for p in t["partitions"]:
                        print(f"\tPartition: {p['partition']}\tLeader: {p['leader']}\t"
                              f"Replicas: {','.join(map(str, p['replicas']))}\tIsr: {','.join(map(str, p['isr']))}")
        elif args.action == "alter":
            if args.partitions is not None:
                await admin.create_partitions({args.topic: args.partitions})
            if args.config or args.delete_config:
                await admin.alter_configs(args.topic, dict(args.config), args.delete_config)
            emit(args, {"altered": args.topic}, [f"altered topic {args.topic}"])
        elif args.action == "delete":
            await admin.delete_topics(args.topics)
            emit(args, {"deleted": args.topics}, (f"deleted topic {t}" for t in args.topics))
    return 0

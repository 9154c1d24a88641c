"""``kafkito mirror``: continuous replication between two clusters (see kafkito.client.mirror)."""

from __future__ import annotations

import re
import sys

from .common import client_kwargs


def add_parser(sub) -> None:
    p = sub.add_parser("mirror", help="replicate topics and group offsets from one cluster to another")
    p.add_argument("--from", dest="source", required=True, metavar="BOOTSTRAP", help="source cluster")
    p.add_argument("--to", dest="target", required=True, metavar="BOOTSTRAP", help="target cluster")
    p.add_argument("--topics", required=True, metavar="REGEX", help="topics to mirror (full match)")
    p.add_argument("--groups", metavar="REGEX", help="groups whose committed offsets are translated")
    p.add_argument("--name", default="kafkito-mirror", help="names this mirror's progress on the target")
    p.add_argument("--once", action="store_true", help="stop once caught up (default: run until interrupted)")
    p.add_argument("--request-timeout-ms", type=int, default=10000)
    p.add_argument("--format", choices=("text", "json"), default="text", help="lag report format")


async def run(args) -> int:
    from ..mirror import Mirror
    from .common import interruptible

    try:
        topics = re.compile(args.topics)
        groups = re.compile(args.groups) if args.groups else None
    except re.error as exc:
        raise ValueError(f"bad regular expression: {exc}") from None
    mirror = Mirror(args.source, args.target, topics, groups, name=args.name, client_kwargs=client_kwargs(args),
                    report=sys.stderr, report_json=args.format == "json")
    await interruptible(mirror.run, args.once)
    return 0

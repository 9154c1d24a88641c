"""``kafkito consume TOPIC``: print records, like kcat -C.

Without ``--group`` every partition (or ``--partition``) is assigned and read from
``--offset`` (earliest, latest, a number, or ``--from-beginning``); the default is latest.
With ``--group`` the consumer joins the group and commits what it printed (on exit too,
Ctrl-C included). ``--max-messages`` stops after N records; ``--timeout`` stops after that
many seconds without a record. Text output is the value, optionally preceded by the
partition/offset, timestamp, key and headers (``--print-*``), separated by
``--field-separator`` (tab); ``--format json`` prints one object per record.
A progress line on stderr (terminals only) shows how far a scan is from the end offsets.
"""

from __future__ import annotations

import sys
import time

from ..consumer import Consumer
from ..errors import KafkaError, UnknownTopicOrPartitionError
from ..types import TopicPartition
from .common import Progress, add_common, client_kwargs, decode_bytes, emit_json, interruptible


def add_parser(sub) -> None:
    p = sub.add_parser("consume", help="print records of a topic")
    p.add_argument("topic")
    p.add_argument("--from-beginning", action="store_true", help="start at the earliest offset")
    p.add_argument("--offset", help="earliest, latest, or an offset (with --partition or for every partition)")
    p.add_argument("--partition", type=int, action="append", help="read only this partition (repeatable)")
    p.add_argument("--group", help="consume as a member of this group (commits what was printed)")
    p.add_argument("--max-messages", type=int, help="exit after this many records")
    p.add_argument("--timeout", type=float, help="exit after this many seconds without a record")
    p.add_argument("--isolation-level", default="read_uncommitted", choices=("read_uncommitted", "read_committed"))
    p.add_argument("--print-key", action="store_true")
    p.add_argument("--print-headers", action="store_true")
    p.add_argument("--print-offset", action="store_true", help="print partition and offset")
    p.add_argument("--print-timestamp", action="store_true")
    p.add_argument("--field-separator", default="\t")
    add_common(p)


def _text(rec, args) -> str:
    fields = []
    if args.print_offset:
        fields.append(f"{rec.partition}:{rec.offset}")
    if args.print_timestamp:
        fields.append(str(rec.timestamp_ms))
    if args.print_key:
        fields.append("" if rec.key is None else rec.key.decode("utf-8", "replace"))
    if args.print_headers:
        fields.append(",".join(f"{k}={'' if v is None else v.decode('utf-8', 'replace')}" for k, v in rec.headers))
    fields.append("" if rec.value is None else rec.value.decode("utf-8", "replace"))
    return args.field_separator.join(fields)


async def run(args) -> int:
    if args.offset is not None and args.offset not in ("earliest", "latest"):
        try:
            int(args.offset)
        except ValueError:
            raise ValueError(f"--offset must be earliest, latest or a number, not {args.offset!r}") from None
    reset = "earliest" if args.from_beginning or args.offset == "earliest" else "latest"
    consumer = Consumer(args.bootstrap_server, group_id=args.group, auto_offset_reset=reset,
                        isolation_level=args.isolation_level, enable_auto_commit=args.group is not None,
                        auto_commit_interval_ms=1000, **client_kwargs(args))
    async with consumer:
        try:
            parts = await consumer.cluster.partitions_for(args.topic, wait_ms=0)
        except UnknownTopicOrPartitionError:
            raise UnknownTopicOrPartitionError(f"topic {args.topic!r} does not exist") from None
        chosen = sorted(args.partition or parts)
        for p in chosen:
            if p not in parts:
                raise UnknownTopicOrPartitionError(f"topic {args.topic!r} has no partition {p}")
        tps = [TopicPartition(args.topic, p) for p in chosen]
        if args.group is not None and not args.partition:
            consumer.subscribe([args.topic])
        else:
            consumer.assign(tps)
            if args.offset not in (None, "earliest", "latest"):
                for tp in tps:
                    consumer.seek(tp, int(args.offset))
            elif args.group is None or args.offset is not None or args.from_beginning:
                if reset == "earliest":
                    consumer.seek_to_beginning(*tps)
                else:
                    consumer.seek_to_end(*tps)
        progress = None
        if sys.stderr.isatty() and (args.from_beginning or args.offset is not None):
            ends = await consumer.end_offsets(tps)
            starts = await consumer.beginning_offsets(tps)
            progress = Progress(f"{args.topic}", sum(ends.values()) - sum(starts.values()))
        count = 0

        async def loop():
            nonlocal count
            last = time.monotonic()
            while args.max_messages is None or count < args.max_messages:
                limit = None if args.max_messages is None else args.max_messages - count
                recs = await consumer.poll(timeout=0.5, max_records=limit)
                for rec in recs:
                    if args.format == "json":
                        emit_json({"topic": rec.topic, "partition": rec.partition, "offset": rec.offset,
                                   "timestamp": rec.timestamp_ms, "key": decode_bytes(rec.key),
                                   "value": decode_bytes(rec.value),
                                   "headers": [[k, decode_bytes(v)] for k, v in rec.headers]})
                    else:
                        sys.stdout.write(_text(rec, args) + "\n")
                if recs:
                    sys.stdout.flush()
                    count += len(recs)
                    last = time.monotonic()
                    if progress is not None:
                        progress.advance(len(recs))
                elif args.timeout is not None and time.monotonic() - last >= args.timeout:
                    return

        try:
            await interruptible(loop)
        finally:
            if progress is not None:
                progress.close()
        if args.group is not None:
            try:
                await consumer.commit()
            except KafkaError as exc:
                print(f"kafkito: commit failed: {exc}", file=sys.stderr)
                return 1
    return 0

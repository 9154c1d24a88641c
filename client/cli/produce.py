"""``kafkito produce TOPIC``: one record per input line (stdin or ``--file``).

``--key-separator SEP`` splits each line into key and value at the first SEP; ``--header
k=v`` (repeatable) adds headers to every record. With ``--format json`` one line per
record reports where it landed. Records are sent as they are read (linger.ms batches
them), and the command exits non-zero if any record was not delivered.
"""

from __future__ import annotations

import argparse
import sys

import anyio

from ..producer import Producer
from .common import add_common, client_kwargs, emit_json


def header(text: str) -> tuple[str, bytes]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"malformed header {text!r}: expected KEY=VALUE")
    return name, value.encode()


def add_parser(sub) -> None:
    p = sub.add_parser("produce", help="produce lines from stdin or a file")
    p.add_argument("topic")
    p.add_argument("--file", help="read lines from this file instead of stdin")
    p.add_argument("--key-separator", help="split each line into KEY SEP VALUE at the first SEP")
    p.add_argument("--header", action="append", type=header, default=[], metavar="KEY=VALUE",
                   help="a header on every record (repeatable)")
    p.add_argument("--partition", type=int, help="send every record to this partition")
    p.add_argument("--acks", default="all", choices=("all", "1", "0", "-1"))
    p.add_argument("--compression", default="none", choices=("none", "gzip", "snappy", "lz4", "zstd"))
    p.add_argument("--linger-ms", type=float, default=5)
    add_common(p)


async def run(args) -> int:
    stream = open(args.file, "rb") if args.file else sys.stdin.buffer
    acks = args.acks if args.acks in ("all", "-1") else int(args.acks)
    failed = 0
    sent = 0
    try:
        async with Producer(args.bootstrap_server, acks=acks, compression=args.compression,
                            linger_ms=args.linger_ms, max_block_ms=args.request_timeout_ms,
                            **client_kwargs(args)) as producer:
            # Fail fast on an unknown topic instead of on the first line.
            await producer.partitions(args.topic)
            pending = []
            while True:
                line = await anyio.to_thread.run_sync(stream.readline)
                if not line:
                    break
                line = line.rstrip(b"\r\n") if line.endswith(b"\n") else line
                key = None
                if args.key_separator is not None:
                    sep = args.key_separator.encode()
                    if sep in line:
                        key, line = line.split(sep, 1)
                pending.append(await producer.produce(args.topic, value=line, key=key,
                                                      headers=list(args.header) or None,
                                                      partition=args.partition))
                sent += 1
                if len(pending) >= 10000:
                    failed += await _report(pending, args)
                    pending = []
            await producer.flush()
            failed += await _report(pending, args)
    finally:
        if args.file:
            stream.close()
    if failed:
        print(f"kafkito: {failed} of {sent} records were not delivered", file=sys.stderr)
        return 1
    return 0


async def _report(pending, args) -> int:
    failed = 0
    for d in pending:
        try:
            md = await d
        except Exception as exc:  # noqa: BLE001 - reported per record
            failed += 1
            if failed == 1:
                print(f"kafkito: {exc}", file=sys.stderr)
            continue
        if args.format == "json":
            emit_json({"topic": md.topic, "partition": md.partition, "offset": md.offset,
                       "timestamp": md.timestamp_ms})
    return failed

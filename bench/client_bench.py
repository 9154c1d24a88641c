"""``python -m bench client``: kafkito's client against kafka-python, aiokafka and
confluent-kafka, produce and consume throughput, 100 B and 1 KB records, in one run.

Theory of operation. One ``kafkito serve`` broker is started in a process of its own (so
no client shares its interpreter) on a fresh data directory. For each record size and
each client, a worker process produces N records to a new topic (acks=1, no compression,
linger.ms=5, each client's own default batch size) and reports the time from the first
send to the last delivery; another worker then consumes the same N records from the
beginning (no group) and reports the time until the last one arrived. Clients take turns
on the same broker, so the ratios compare clients, not machines. Figures are records/s
and MB/s of record values; each case is run ``--repeat`` times and the best kept (the
machine is shared, so the best is the least disturbed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLIENTS = ("kafkito", "kafka-python", "aiokafka", "confluent-kafka")
SIZES = {"100B": 100, "1KB": 1024}
COUNTS = {"100B": 200_000, "1KB": 100_000}


# ----------------------------------------------------------------------------- workers
def _payload(size: int) -> bytes:
    return (b"0123456789abcdef" * (size // 16 + 1))[:size]


def produce_kafkito(bootstrap, topic, n, size):
    import anyio

    from kafkito.client import Producer

    value = _payload(size)

    async def main():
        async with Producer(bootstrap, acks=1, linger_ms=5) as p:
            await p.partitions(topic)
            start = time.perf_counter()
            last = None
            for _ in range(n):
                last = await p.produce(topic, value=value, partition=0)
            await last
            return time.perf_counter() - start

    return anyio.run(main)


def consume_kafkito(bootstrap, topic, n, size):
    import anyio

    from kafkito.client import Consumer, TopicPartition

    async def main():
        async with Consumer(bootstrap) as c:
            tp = TopicPartition(topic, 0)
            c.assign([tp])
            c.seek(tp, 0)
            start = time.perf_counter()
            got = 0
            while got < n:
                got += len(await c.poll(timeout=1.0))
            return time.perf_counter() - start

    return anyio.run(main)


def produce_kafka_python(bootstrap, topic, n, size):
    from kafka import KafkaProducer

    value = _payload(size)
    p = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=5)
    p.partitions_for(topic)
    start = time.perf_counter()
    for _ in range(n):
        fut = p.send(topic, value=value, partition=0)
    fut.get(60)
    elapsed = time.perf_counter() - start
    p.close()
    return elapsed


def consume_kafka_python(bootstrap, topic, n, size):
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek(tp, 0)
    start = time.perf_counter()
    got = 0
    while got < n:
        for recs in c.poll(timeout_ms=1000).values():
            got += len(recs)
    elapsed = time.perf_counter() - start
    c.close()
    return elapsed


def produce_aiokafka(bootstrap, topic, n, size):
    import asyncio

    from aiokafka import AIOKafkaProducer

    value = _payload(size)

    async def main():
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=5)
        await p.start()
        try:
            await p.partitions_for(topic)
            start = time.perf_counter()
            last = None
            for _ in range(n):
                last = await p.send(topic, value=value, partition=0)
            await last
            return time.perf_counter() - start
        finally:
            await p.stop()

    return asyncio.run(main())


def consume_aiokafka(bootstrap, topic, n, size):
    import asyncio

    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def main():
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
        await c.start()
        try:
            tp = TopicPartition(topic, 0)
            c.assign([tp])
            c.seek(tp, 0)
            start = time.perf_counter()
            got = 0
            while got < n:
                for recs in (await c.getmany(timeout_ms=1000)).values():
                    got += len(recs)
            return time.perf_counter() - start
        finally:
            await c.stop()

    return asyncio.run(main())


def produce_confluent_kafka(bootstrap, topic, n, size):
    from confluent_kafka import Producer

    value = _payload(size)
    p = Producer({"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 5})
    p.list_topics(topic, timeout=10)
    start = time.perf_counter()
    for _ in range(n):
        while True:
            try:
                p.produce(topic, value=value, partition=0)
                break
            except BufferError:
                p.poll(0.001)
        p.poll(0)
    p.flush(60)
    return time.perf_counter() - start


def consume_confluent_kafka(bootstrap, topic, n, size):
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-unused", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    start = time.perf_counter()
    got = 0
    while got < n:
        got += len(c.consume(10000, 1.0))
    elapsed = time.perf_counter() - start
    c.close()
    return elapsed


WORKERS = {(c, op): globals()[f"{op}_{c.replace('-', '_')}"] for c in CLIENTS for op in ("produce", "consume")}


# ------------------------------------------------------------------------------ driver
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_broker(data_dir: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    exe = shutil.which("kafkito", path=str(Path(sys.executable).parent)) or "kafkito"
    proc = subprocess.Popen([exe, "serve", "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{port}",
                             "--set", "num.partitions=1", "--log-level", "WARNING"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the broker did not start")


def _worker(client: str, op: str, bootstrap: str, topic: str, n: int, size: int) -> float:
    out = subprocess.run([sys.executable, "-m", "bench.client_bench", "worker", client, op, bootstrap, topic,
                          str(n), str(size)], capture_output=True, text=True, timeout=600,
                         cwd=str(Path(__file__).resolve().parent.parent))
    if out.returncode != 0:
        raise RuntimeError(f"{client} {op} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


def run(args) -> dict:
    data = Path(tempfile.mkdtemp(prefix="kafkito-client-bench-"))
    broker, bootstrap = _start_broker(data)
    results: dict = {}
    try:
        for label, size in SIZES.items():
            n = int(COUNTS[label] * args.scale)
            for client in args.clients:
                for rep in range(args.repeat):
                    topic = f"bench-{label}-{client}-{rep}-{os.getpid()}"
                    p = _worker(client, "produce", bootstrap, topic, n, size)
                    c = _worker(client, "consume", bootstrap, topic, n, size)
                    best = results.setdefault((label, client), {"produce": p, "consume": c, "n": n, "size": size})
                    best["produce"] = min(best["produce"], p)
                    best["consume"] = min(best["consume"], c)
                    print(f"{label:5} {client:16} produce {n / p:>10,.0f} rec/s  consume {n / c:>10,.0f} rec/s",
                          file=sys.stderr)
    finally:
        broker.terminate()
        broker.wait(30)
        shutil.rmtree(data, ignore_errors=True)
    return results


def table(results: dict) -> str:
    lines = ["| records | client | produce rec/s | produce MB/s | consume rec/s | consume MB/s | "
             "kafkito/this produce | kafkito/this consume |", "|---|---|---|---|---|---|---|---|"]
    for (label, client), r in results.items():
        ours = results.get((label, "kafkito"))
        prod, cons = r["n"] / r["produce"], r["n"] / r["consume"]
        mb = r["size"] / 1e6
        rp = f"{(ours['n'] / ours['produce']) / prod:.2f}" if ours else "-"
        rc = f"{(ours['n'] / ours['consume']) / cons:.2f}" if ours else "-"
        lines.append(f"| {label} | {client} | {prod:,.0f} | {prod * mb:,.1f} | {cons:,.0f} | {cons * mb:,.1f} | "
                     f"{rp} | {rc} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench client", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd")
    w = sub.add_parser("worker")
    w.add_argument("client", choices=CLIENTS)
    w.add_argument("op", choices=("produce", "consume"))
    w.add_argument("bootstrap")
    w.add_argument("topic")
    w.add_argument("n", type=int)
    w.add_argument("size", type=int)
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the record counts")
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    args = parser.parse_args(argv)
    if args.cmd == "worker":
        seconds = WORKERS[(args.client, args.op)](args.bootstrap, args.topic, args.n, args.size)
        print(json.dumps({"seconds": seconds}))
        return 0
    args.clients = [c for c in args.clients.split(",") if c]
    results = run(args)
    md = table(results)
    print(md)
    if args.out:
        args.out.write_text(md + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Log cleaner throughput, and produce throughput and latency while the cleaner runs, each
as a ratio to a baseline measured in the same run.

    .venv/bin/python bench/cleaner_bench.py [--mb 64] [--reps 3] [--throttles none,20]
        [--codec none] [--set NAME=VALUE] [--embedded] [--skip-clean] [--skip-produce]
        [--json bench/results/cleaner.json]

1. *Clean*: for 1 KB and 100 B records, with 1% and 50% of the records' keys unique, a
   compacted log of about ``--mb`` MB (16 KiB batches, 8 MiB segments) is cleaned once by
   ``storage.cleaner.Cleaner`` (a map big enough for one pass). The figure is MB/s of input
   (the segments' bytes) against reading the same segment files raw (sequential 1 MiB
   ``pread``s, page cache warm as the cleaner finds it). Goal: 50 MB/s at 1 KB.
2. *While cleaning*: ``kafkito serve`` in its own process (as users run it) and one client
   session in another (``_session_child``): a saturating producer (1 KB, acks=1), then a
   one-at-a-time acks=all producer, then a producer and a consumer (produce-to-fetch
   latency). Two seconds into each session the dirty topic (4 x ``--mb`` MB of
   ``--codec`` batches, written with the broker stopped) is turned compact, and the broker
   cleans it, unthrottled and throttled (``log.cleaner.io.max.bytes.per.second``). The
   figure is the session's rate (or p50/p99) inside the clean, whose end and duration the
   broker logs, against outside it; medians of ``--reps`` sessions. Goal: produce at least
   0.8x. ``--embedded`` runs the broker in the bench's own process and the session in its
   main thread: the client's Python loop, the event loop and the cleaner share one GIL (a
   harsher setting than any deployment).

A benchmark, not a test: the machine is shared, compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import statistics
import sys
import tempfile
import time

from kafkito.records import build_batch
from kafkito.storage import LogConfig, ManualClock, PartitionLog
from kafkito.storage.cleaner import Cleaner

MB = 1024 * 1024
SEGMENT_BYTES = 8 * MB  # Kafka's default is 1 GiB; small enough for several segments here
T0 = 1_700_000_000_000


CODEC = "none"  # of the dirty batches (--codec)


def fill(path: str, record_bytes: int, unique: float, total_mb: int) -> PartitionLog:
    clock = ManualClock(T0)
    config = LogConfig(cleanup_policy=("compact",), segment_bytes=SEGMENT_BYTES)
    plog = PartitionLog.open(path, "bench", 0, config, clock=clock)
    per_batch = max(1, 16 * 1024 // (record_bytes + 20))
    records = total_mb * MB // (record_bytes + 12)
    keys = max(1, int(records * unique))
    rng = random.Random(7)
    # Values are slices of random bytes at random places; compressed, of 16 letters at
    # random, which compress about 2:1 as text does.
    n = record_bytes - 12
    pool = os.urandom(1 << 20)
    if CODEC != "none":
        pool = pool.translate(bytes(b"abcdefghijklmnop"[i % 16] for i in range(256)))
    written = 0
    while written < records:
        batch = build_batch([(b"key-%07d" % rng.randrange(keys), pool[(o := rng.randrange(len(pool) - n)):o + n],
                              [], T0) for _ in range(per_batch)], compression=CODEC)
        plog.append(batch, clock.now_ms())
        written += per_batch
    plog.flush()
    plog.roll(clock.now_ms())
    return plog


def raw_read_s(plog: PartitionLog) -> tuple[float, int]:
    total = 0
    t0 = time.perf_counter()
    for seg in plog.segments[:-1]:
        fd = os.open(seg.log_path, os.O_RDONLY)
        try:
            pos = 0
            while chunk := os.pread(fd, MB, pos):
                pos += len(chunk)
                total += len(chunk)
        finally:
            os.close(fd)
    return time.perf_counter() - t0, total


def clean_case(record_bytes: int, unique: float, total_mb: int) -> dict:
    tmp = tempfile.mkdtemp(prefix="kafkito-cleaner-bench-")
    try:
        plog = fill(os.path.join(tmp, "log"), record_bytes, unique, total_mb)
        raw_read_s(plog)  # warm the cache as the cleaner will find it
        raw_s, nbytes = min(raw_read_s(plog) for _ in range(3))
        t0 = time.perf_counter()
        result = Cleaner(10_000_000).clean(plog, T0)
        clean_s = time.perf_counter() - t0
        plog.close()
        row = {"record_bytes": record_bytes, "unique": unique, "input_mb": nbytes / MB,
               "clean_mb_s": nbytes / MB / clean_s, "raw_read_mb_s": nbytes / MB / raw_s,
               "kept_records": result.records_kept, "read_records": result.records_read,
               "output_mb": result.bytes_written / MB}
        row["ratio"] = row["clean_mb_s"] / row["raw_read_mb_s"]
        return row
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _session_child(bootstrap: str, log_path: str, log_from: int, after_s: float, max_s: float,
                   kind: str, out) -> None:
    """One client session (in a process of its own) on ``plain`` until the broker's log
    (past ``log_from``) says the dirty log was cleaned, then ``after_s`` more. Sends back
    samples and (the time the clean's line was seen, the clean's duration in seconds).

    - ``throughput``: 1 KB records (acks=1) as fast as they go; (time, records delivered)
      samples every 20 ms.
    - ``ack``: 100 B records (acks=all) one at a time; (send time, seconds to the ack).
    - ``e2e``: a 100 B record (acks=1) every 2 ms and a consumer fetching them; (send time,
      seconds until the consumer had it): fetch latency, flush included."""
    import re

    from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition

    config = {"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 5,
              "batch.size": 256 * 1024, "queue.buffering.max.kbytes": 262144}
    if kind == "ack":
        config.update({"acks": "all", "linger.ms": 0})
    elif kind == "e2e":
        config.update({"linger.ms": 0})
    producer = Producer(config)
    consumer = None
    if kind == "e2e":
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "cleaner-bench",
                             "enable.auto.commit": False})
        consumer.assign([TopicPartition("plain", 0, OFFSET_END)])
    value = os.urandom(1000 if kind == "throughput" else 100)
    delivered = [0]

    def cb(err, msg):
        if err is None:
            delivered[0] += 1

    line = re.compile(rb"dirty-0: cleaned offsets up to .* in (\d+) ms")
    samples: list[tuple[float, float]] = []
    seen = None
    start = time.perf_counter()
    stop_at = start + max_s
    next_sample = start
    n = 0
    while True:
        now = time.perf_counter()
        if now >= stop_at:
            break
        if kind == "ack":
            producer.produce("plain", value=value, key=b"k")
            producer.flush(10)
            samples.append((now, time.perf_counter() - now))
        elif kind == "e2e":
            if now >= next_sample:
                producer.produce("plain", value=repr(now).encode(), key=b"k")
                next_sample = now + 0.002
            producer.poll(0)
            msg = consumer.poll(0.0005)
            if msg is not None and msg.error() is None:
                sent = float(msg.value())
                samples.append((sent, time.perf_counter() - sent))
        else:
            if now >= next_sample:
                samples.append((now, delivered[0]))
                next_sample += 0.02
            try:
                producer.produce("plain", value=value, key=b"k", on_delivery=cb)
            except BufferError:
                producer.poll(0.001)
            producer.poll(0)
        n += 1
        if seen is None and n % (2048 if kind == "throughput" else 16) == 0:
            with open(log_path, "rb") as f:
                f.seek(log_from)
                m = line.search(f.read())
            if m:
                seen = (now, int(m.group(1)) / 1000)
                stop_at = min(stop_at, now + after_s)
    producer.flush(30)
    if consumer is not None:
        consumer.close()
    out.put((samples, seen))


def _delivered_at(samples: list[tuple[float, int]], t: float) -> float:
    """Records delivered by time ``t``, linear between samples."""
    for (t0, d0), (t1, d1) in zip(samples, samples[1:]):
        if t0 <= t <= t1:
            return d0 + (d1 - d0) * (t - t0) / (t1 - t0) if t1 > t0 else d0
    return samples[-1][1] if t > samples[-1][0] else samples[0][1]


def _percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


class _Box:
    """The session's ``out`` when it runs in this process."""

    def put(self, value) -> None:
        self.value = value


class _EmbeddedBroker:
    """``kafkito.testing.broker`` in this process, with the interface of bench.harness's
    ``Kafkito``; the cleaner's log lines go to ``workdir/kafkito.log`` as serve's do."""

    def __init__(self, workdir, settings: dict[str, str]):
        self.workdir, self.settings = workdir, settings
        self.data_dir = workdir / "kafkito-data"
        self._running = self._handler = None
        self._logger = logging.getLogger("kafkito.broker.log_cleaner")

    def start(self, *, keep_data: bool = False) -> None:
        from kafkito.testing import broker

        if not keep_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        self._handler = logging.FileHandler(self.workdir / "kafkito.log")
        self._logger.setLevel(logging.INFO)
        self._logger.addHandler(self._handler)
        self._running = broker(self.data_dir, settings=self.settings)
        self.bootstrap = self._running.__enter__().bootstrap_servers

    def stop(self, *, keep_data: bool = False) -> None:
        if self._running is not None:
            self._running.__exit__(None, None, None)
            self._running = None
        if self._handler is not None:
            self._logger.removeHandler(self._handler)
            self._handler.close()
            self._handler = None
        if not keep_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def session_case(warmup_s: float, dirty_mb: int, throttle: float | None, reps: int,
                 settings: dict[str, str], kind: str = "throughput", embedded: bool = False) -> dict:
    """Each rep is one steady client session (``_session_child``) with a clean of
    ``dirty_mb`` MB of dirty data started ``warmup_s`` into it (IncrementalAlterConfigs turns
    the dirty topic's cleanup.policy to compact); the figure is the session's throughput or
    latency during the clean against outside it (after the first second, the client's
    start). The broker is ``kafkito serve`` in its own process and the session another
    process; ``embedded``: both in this process, one GIL."""
    import multiprocessing
    import threading
    from pathlib import Path

    from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,
                                       ConfigResource, NewTopic)

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from bench.harness.brokers import Kafkito

    workdir = Path(tempfile.mkdtemp(prefix="kafkito-cleaner-bench-"))
    cleaning = {"log.cleaner.backoff.ms": "100", **settings}
    if throttle:
        cleaning["log.cleaner.io.max.bytes.per.second"] = str(throttle)
    broker = (_EmbeddedBroker if embedded else Kafkito)(workdir, settings=cleaning)
    ctx = multiprocessing.get_context("spawn")

    def policy(admin, value: str) -> None:
        entry = ConfigEntry("cleanup.policy", value, incremental_operation=AlterConfigOpType.SET)
        resource = ConfigResource("topic", "dirty", incremental_configs=[entry])
        for f in admin.incremental_alter_configs([resource]).values():
            f.result(30)

    inside, outside, ratios, windows = [], [], [], []
    try:
        broker.start()
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        for f in admin.create_topics([
                NewTopic("plain", 1, 1),
                NewTopic("dirty", 1, 1, config={"cleanup.policy": "delete", "retention.ms": "-1",
                                                "segment.bytes": str(SEGMENT_BYTES)})]).values():
            f.result(30)
        broker.stop(keep_data=True)
        log_path = workdir / "kafkito.log"
        for _ in range(reps):
            # Each session starts from the same disk state: empty logs but the dirty one, and
            # no dirty pages of earlier runs left for the kernel to write back meanwhile.
            for name in ("plain-0", "dirty-0"):
                directory = broker.data_dir / name
                for f in os.listdir(directory):
                    os.unlink(directory / f)
            fill(str(broker.data_dir / "dirty-0"), 1000, 0.01, dirty_mb).close()
            os.sync()
            log_from = log_path.stat().st_size
            broker.start(keep_data=True)
            admin = AdminClient({"bootstrap.servers": broker.bootstrap})
            args = (broker.bootstrap, str(log_path), log_from, 1.0, warmup_s + 60, kind)
            if embedded:
                timer = threading.Timer(warmup_s, policy, (admin, "compact"))
                timer.start()
                box = _Box()
                _session_child(*args, box)
                timer.join()
                samples, seen = box.value
            else:
                out = ctx.Queue()
                child = ctx.Process(target=_session_child, args=(*args, out))
                child.start()
                time.sleep(warmup_s)
                policy(admin, "compact")
                samples, seen = out.get(timeout=warmup_s + 120)
                child.join(30)
            policy(admin, "delete")
            broker.stop(keep_data=True)
            if seen is None:
                raise RuntimeError("the clean did not end within a minute")
            w1 = seen[0]
            w0 = w1 - seen[1]
            ws, we = samples[0][0] + 1.0, samples[-1][0]
            if kind != "throughput":  # latency p50 and p99 (ms) outside and inside the clean
                lat_in = [d * 1000 for t, d in samples if w0 <= t <= w1]
                lat_out = [d * 1000 for t, d in samples if ws <= t < w0 or t > w1]
                outside.append((_percentile(lat_out, 0.5), _percentile(lat_out, 0.99)))
                inside.append((_percentile(lat_in, 0.5), _percentile(lat_in, 0.99)))
                windows.append(w1 - w0)
                continue
            rate_in = (_delivered_at(samples, w1) - _delivered_at(samples, w0)) / (w1 - w0)
            rate_out = ((_delivered_at(samples, w0) - _delivered_at(samples, ws))
                        + (_delivered_at(samples, we) - _delivered_at(samples, w1))) / ((w0 - ws) + (we - w1))
            inside.append(rate_in * 1000 / MB)
            outside.append(rate_out * 1000 / MB)
            ratios.append(rate_in / rate_out)
            windows.append(w1 - w0)
        if kind != "throughput":
            return {"throttle_bytes_s": throttle, "kind": kind,
                    "p50_ms_outside": statistics.median(o[0] for o in outside),
                    "p99_ms_outside": statistics.median(o[1] for o in outside),
                    "p50_ms_inside": statistics.median(i[0] for i in inside),
                    "p99_ms_inside": statistics.median(i[1] for i in inside),
                    "window_s": statistics.median(windows)}
        return {"throttle_bytes_s": throttle, "produce_alone_mb_s": statistics.median(outside),
                "produce_while_cleaning_mb_s": statistics.median(inside),
                "ratio": statistics.median(ratios), "ratios": ratios,
                "window_s": statistics.median(windows)}
    finally:
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=64, help="MB of log per clean case (default 64)")
    ap.add_argument("--skip-produce", action="store_true", help="only the clean cases")
    ap.add_argument("--reps", type=int, default=3, help="sessions per case (medians)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--skip-clean", action="store_true", help="only the produce cases")
    ap.add_argument("--throttles", default="none,20",
                    help="cleaner throttles for the produce cases, MB/s or none (default none,20)")
    ap.add_argument("--codec", default="none", choices=["none", "gzip", "snappy", "lz4", "zstd"],
                    help="compression of the dirty log's batches (default none)")
    ap.add_argument("--embedded", action="store_true",
                    help="the broker in the bench's process (one GIL with the producer)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="a broker setting for the sessions")
    args = ap.parse_args(argv)
    global CODEC
    CODEC = args.codec
    out: dict = {"clean": [], "produce": []}
    print(f"{'records':>8} {'unique':>7} {'input MB':>9} {'clean MB/s':>11} {'raw read MB/s':>14} "
          f"{'ratio':>7} {'kept':>9}")
    for record_bytes in () if args.skip_clean else (1000, 100):
        for unique in (0.01, 0.5):
            mb = args.mb if record_bytes == 1000 else max(4, args.mb // 4)
            row = clean_case(record_bytes, unique, mb)
            out["clean"].append(row)
            print(f"{record_bytes:>7}B {unique:>7.0%} {row['input_mb']:>9.1f} {row['clean_mb_s']:>11.1f} "
                  f"{row['raw_read_mb_s']:>14.0f} {row['ratio']:>7.3f} {row['kept_records']:>9}")
            sys.stdout.flush()
    if not args.skip_produce:
        extra = dict(item.split("=", 1) for item in args.set)
        throttles = [None if t == "none" else int(float(t) * MB) for t in args.throttles.split(",")]
        print(f"\n{'throttle':>12} {'alone MB/s':>11} {'cleaning MB/s':>14} {'ratio':>6} {'window s':>9}")
        for throttle in throttles:
            row = session_case(2.0, 4 * args.mb, throttle, args.reps, extra, embedded=args.embedded)
            out["produce"].append(row)
            label = "none" if throttle is None else f"{throttle // MB} MB/s"
            print(f"{label:>12} {row['produce_alone_mb_s']:>11.1f} {row['produce_while_cleaning_mb_s']:>14.1f} "
                  f"{row['ratio']:>6.2f} {row['window_s']:>9.1f}   each: "
                  + ", ".join(f"{r:.2f}" for r in row["ratios"]))
            sys.stdout.flush()
        print(f"\n{'latency':>12} {'throttle':>9} {'p50 ms':>7} {'while cleaning':>15} "
              f"{'p99 ms':>7} {'while cleaning':>15} {'window s':>9}")
        for kind in ("ack", "e2e"):
            for throttle in throttles:
                row = session_case(2.0, 4 * args.mb, throttle, args.reps, extra, kind=kind,
                                   embedded=args.embedded)
                out.setdefault("latency", []).append(row)
                label = "none" if throttle is None else f"{throttle // MB} MB/s"
                name = "acks=all" if kind == "ack" else "fetch e2e"
                print(f"{name:>12} {label:>9} {row['p50_ms_outside']:>7.2f} {row['p50_ms_inside']:>15.2f} "
                      f"{row['p99_ms_outside']:>7.2f} {row['p99_ms_inside']:>15.2f} {row['window_s']:>9.1f}")
                sys.stdout.flush()
    if args.json:
        os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

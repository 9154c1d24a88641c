"""What the open-file cache costs: the consume path and the start-up of many partitions.

    .venv/bin/python bench/handles_bench.py [--partitions 2000] [--json PATH]

Runs against whichever kafkito is imported, so the same script measures an older checkout
(``PYTHONPATH=/path/to/old python bench/handles_bench.py``); run both alternately and
compare best-of figures, as the machine's other load moves every number.

- consume: ``PartitionLog.read`` + ``os.sendfile`` to /dev/null over a warm log of 1 KiB
  batches, once with one batch per read (``max_bytes`` 1: the per-call cost, where a pin
  and an unpin per slice would show) and once with 1 MiB reads; reads per CPU second.
- start-up: a data directory of ``--partitions`` one-segment partitions (a few batches
  each), opened by ``LogManager.startup`` after a clean shutdown; wall and CPU seconds
  (best of 3), and the descriptors the process holds once started. ``--nofile N`` first
  sets ``ulimit -n`` to N (an older kafkito then fails with EMFILE past N/3 partitions).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

from kafkito.records import build_batch
from kafkito.storage import LogConfig, LogManager, ManualClock, PartitionLog


TS = 1_700_000_000_000  # record timestamps, and the append clock (validation checks both)


def best_of(n: int, fn) -> float:
    return min(fn() for _ in range(n))


def consume(base: str, max_bytes: int, batches: int = 20_000) -> float:
    path = os.path.join(base, f"consume-{max_bytes}")
    plog = PartitionLog.open(path, "bench", 0, LogConfig(), clock=ManualClock())
    batch = build_batch([(b"k", os.urandom(1000), [], TS)])
    for _ in range(batches):
        plog.append(batch, TS)
    plog.flush()
    sink = os.open(os.devnull, os.O_WRONLY)

    def run() -> float:
        # CPU time of this process: what the code costs, less moved by the machine's other load.
        t0 = time.process_time()
        offset, reads = 0, 0
        while offset < plog.log_end_offset:
            s = plog.read(offset, max_bytes)
            os.sendfile(sink, s.fileno(), s.position, s.size)
            offset = s.next_offset
            reads += 1
            if hasattr(s, "close"):
                s.close()
        return (time.process_time() - t0) / reads

    try:
        return 1 / best_of(5, run)
    finally:
        os.close(sink)
        plog.close()
        shutil.rmtree(path)


def startup(base: str, partitions: int) -> tuple[float, float, int]:
    data = os.path.join(base, "startup")
    clock = ManualClock()
    with LogManager(data, LogConfig(), clock) as m:
        m.create_topic("wide", partitions)
        batch = build_batch([(b"k", b"v" * 100, [], TS)])
        for p in range(partitions):
            for _ in range(3):
                m.log("wide", p).append(batch, TS)
        m.flush_all()
    fds = 0
    cpu: list[float] = []

    def run() -> float:
        nonlocal fds
        m = LogManager(data, LogConfig(), clock)
        t0, c0 = time.perf_counter(), time.process_time()
        m.startup()
        elapsed = time.perf_counter() - t0
        cpu.append(time.process_time() - c0)
        fds = len(os.listdir("/proc/self/fd"))
        m.shutdown()
        return elapsed

    try:
        return best_of(3, run), min(cpu), fds
    finally:
        shutil.rmtree(data)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=2000)
    parser.add_argument("--only", choices=("consume", "startup"), default=None)
    parser.add_argument("--nofile", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.nofile:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (args.nofile, args.nofile))
    base = tempfile.mkdtemp(prefix="kafkito-handles-bench-")
    result: dict = {}
    try:
        if args.only != "startup":
            result["consume_1_batch_reads_s"] = consume(base, 1)
            result["consume_1MiB_reads_s"] = consume(base, 1 << 20)
        if args.only != "consume":
            result["startup_s"], result["startup_cpu_s"], result["fds_after_startup"] = \
                startup(base, args.partitions)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    import kafkito

    result["kafkito"] = os.path.dirname(kafkito.__file__)
    print(json.dumps(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

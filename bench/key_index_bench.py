"""The per-key index (storage/key_index.py): look-up speed against a partition scan, and
its cost on the append path, measured in the same run.

    .venv/bin/python bench/key_index_bench.py [--events 1000000] [--sessions 10000]
                                              [--append-events 200000] [--json PATH]

1. Look-up: one partition holding ``--events`` agent events (one JSON record of ~220 bytes
   per batch, as a tracer sends them, keyed by one of ``--sessions`` session ids, the
   sessions interleaved at random; 64 MiB segments by default, so most of the data sits in
   sealed segments served from their mapped sidecars; ``--segment-mb 1024`` keeps it all in
   the active segment's in-memory index, the slowest case). "The last 50 events of session X" is
   answered through the index (``read_key_records(last=50)``: the index names the batches,
   only those are read) and by a scan of the whole partition (every batch read, every
   record decoded, the key compared: what a Kafka consumer must do without the index),
   for several sessions; median times and their ratio.
2. Append: ``PartitionLog.append`` of the same events into a topic with
   ``key.index.enable`` on and one with it off, alternated, best of five rounds each, in
   CPU seconds of the process (user + system, so other load on the machine counts less);
   the ratio on/off (goal: at least 0.9).

A benchmark, not a test: the figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time

from kafkito.records import build_batch
from kafkito.storage import LogConfig, ManualClock, PartitionLog
from kafkito.storage.key_index import full_scan_key_records, read_key_records

T0 = 1_700_000_000_000


def events(n: int, sessions: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        s = rng.randrange(sessions)
        value = json.dumps({
            "event_id": f"e-{i}", "session_id": f"session-{s:05d}", "agent_id": "bench",
            "timestamp": T0 + i, "event_type": "tool_call",
            "payload": {"tool": "search", "latency_ms": 12, "cost_usd": 0.001},
            "context": {"parent_event_id": f"e-{i - 1}"}}).encode()
        out.append(build_batch([(f"session-{s:05d}".encode(), value, [], T0 + i)]))
    return out


def fill(path: str, batches: list[bytes], index: bool,
         segment_bytes: int = 64 * 1024 * 1024) -> tuple[PartitionLog, float]:
    config = LogConfig(segment_bytes=segment_bytes, key_index_enable=index,
                       retention_ms=-1, message_timestamp_before_max_ms=2**62)
    plog = PartitionLog.open(path, "bench", 0, config, clock=ManualClock(T0))
    append = plog.append
    # CPU seconds of this process (user + system): on a shared machine wall time mostly
    # measures the neighbours; the index's cost is CPU.
    started = time.process_time()
    for b in batches:
        append(b, T0)
    plog.flush()  # inside the measure: the index folds its backlog here (fsync waits cost no CPU)
    elapsed = time.process_time() - started
    return plog, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--append-events", type=int, default=200_000)
    parser.add_argument("--lookups", type=int, default=20)
    parser.add_argument("--scans", type=int, default=3)
    parser.add_argument("--segment-mb", type=int, default=64,
                        help="segment.bytes of the look-up log in MiB (1024: Kafka's default, "
                             "so every event sits in the active segment's in-memory index)")
    parser.add_argument("--dir", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="kafkito-keyindex-", dir=args.dir)
    results: dict = {"events": args.events, "sessions": args.sessions}
    try:
        # -- append overhead: on and off alternated, best of five
        batches = events(args.append_events, args.sessions, seed=2)
        best = {True: float("inf"), False: float("inf")}
        for round_ in range(5):
            for index in (False, True):
                path = os.path.join(root, f"append-{round_}-{index}")
                plog, elapsed = fill(path, batches, index)
                plog.close()
                shutil.rmtree(path)
                best[index] = min(best[index], elapsed)
        on, off = len(batches) / best[True], len(batches) / best[False]
        results["append"] = {"events": len(batches), "on_per_s": round(on), "off_per_s": round(off),
                             "ratio_on_off": round(on / off, 3)}
        print(f"append: index off {off:,.0f} events/s, on {on:,.0f} events/s, "
              f"ratio {on / off:.3f} (goal >= 0.9)")

        # -- look-up versus partition scan
        print(f"building {args.events:,} events from {args.sessions:,} sessions ...", flush=True)
        batches = events(args.events, args.sessions)
        plog, elapsed = fill(os.path.join(root, "lookup"), batches, True, args.segment_mb * 1024 * 1024)
        del batches
        print(f"  built in {elapsed:.1f} s, {len(plog.segments)} segments, "
              f"{plog.size_bytes / 1e6:.0f} MB", flush=True)
        rng = random.Random(3)
        keys = [f"session-{rng.randrange(args.sessions):05d}".encode() for _ in range(args.lookups)]
        index_ms = []
        for key in keys:
            started = time.perf_counter()
            got = read_key_records(plog, key, last=50)
            index_ms.append((time.perf_counter() - started) * 1000)
            assert got.records, key
        scan_ms = []
        for key in keys[: args.scans]:
            started = time.perf_counter()
            want = full_scan_key_records(plog, key, last=50)
            scan_ms.append((time.perf_counter() - started) * 1000)
            assert want == read_key_records(plog, key, last=50).records  # same answer
        plog.close()
        i_med, s_med = statistics.median(index_ms), statistics.median(scan_ms)
        results["lookup"] = {"last": 50, "index_ms_median": round(i_med, 3),
                             "index_ms_max": round(max(index_ms), 3),
                             "scan_ms_median": round(s_med, 1), "speedup": round(s_med / i_med)}
        print(f"last 50 events of one session: index {i_med:.2f} ms (median of {len(index_ms)}, "
              f"max {max(index_ms):.2f}), partition scan {s_med:,.0f} ms (median of "
              f"{len(scan_ms)}): {s_med / i_med:,.0f}x (goals: >= 100x, < 20 ms)")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The cost of transactions to a clean: a log whose cleaned part holds transactional
batches, cleaned by this tree's cleaner and by a baseline one (another git revision's
``storage/cleaner.py``, by default the merge base with main), as a ratio in the same run.

    .venv/bin/python bench/cleaner_txn_bench.py [--mb 64] [--reps 3] [--batch-records 50]
                                                [--baseline REV] [--json FILE]

The log (uncompressed batches of ``--batch-records`` records of about 200 B, 8 MiB segments): 70% of the
batches come from 8 transactional producers (transactions of 1-3 batches, one in ten
aborted), the rest are plain; keys are drawn from ``--unique`` x the records. Three
quarters of ``--mb`` are written and cleaned once (so the clean section holds transactional
batches), then another quarter is written: the timed clean is the next one, the one every
later clean looks like. ``--map-keys`` makes that clean one pass of several (a map that
fills ends it early, the rest of the dirty log lying past its end).
Each timed clean starts from a copy of that log, alternating the two cleaners; the figure
is the median clean time of each and their ratio. Both cleaners' output is compared batch
for batch: a speed-up that changed what is kept would not count.

Before this change (``_MarkerBook`` scanning control batches) a transactional batch below
the map's range made the clean read every batch of the rest of the log once more; now the
``.txnindex`` answers (``marker_scan_batches`` says what was still read for markers).

A benchmark, not a test: the machine is shared, compare the ratio.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import random
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

from kafkito.records import build_batch
from kafkito.storage import LogConfig, ManualClock, PartitionLog
from kafkito.storage import cleaner as current
from kafkito.storage.log import ORIGIN_COORDINATOR

MB = 1024 * 1024
SEGMENT_BYTES = 8 * MB
T0 = 1_700_000_000_000
VALUE_BYTES = 180
PRODUCERS = 8
ABORT, COMMIT = 0, 1


def load_baseline(rev: str):
    """``storage/cleaner.py`` of ``rev`` as a module of this package (its relative imports
    resolve to this tree's modules, which both cleaners share)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    source = subprocess.run(["git", "-C", root, "show", f"{rev}:storage/cleaner.py"],
                            check=True, capture_output=True).stdout
    path = os.path.join(tempfile.mkdtemp(prefix="kafkito-baseline-"), "cleaner_baseline.py")
    with open(path, "wb") as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location("kafkito.storage.cleaner_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def merge_base() -> str:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return subprocess.run(["git", "-C", root, "merge-base", "HEAD", "main"], check=True,
                          capture_output=True, text=True).stdout.strip()


def marker(producer_id: int, kind: int, ts: int) -> bytes:
    return build_batch([(struct.pack(">hh", 0, kind), struct.pack(">hi", 0, 0), [], ts)],
                       is_control=True, is_transactional=True, producer_id=producer_id,
                       producer_epoch=0, base_sequence=-1)


class Writer:
    """Transactional and plain batches into one log, as ``fill`` describes."""

    def __init__(self, plog: PartitionLog, clock: ManualClock, keys: int, per_batch: int):
        self.plog, self.clock, self.keys, self.per_batch = plog, clock, keys, per_batch
        self.rng = random.Random(7)
        self.value = os.urandom(VALUE_BYTES)
        self.seq = {1000 + i: 0 for i in range(PRODUCERS)}
        self.open: dict[int, int] = {}  # producer -> batches left in its transaction

    def batch(self, **kw) -> bytes:
        now = self.clock.now_ms()
        return build_batch([(b"key-%07d" % self.rng.randrange(self.keys), self.value, [], now)
                            for _ in range(self.per_batch)], **kw)

    def write(self, nbytes: int) -> None:
        target = self.plog.size_bytes + nbytes
        while self.plog.size_bytes < target:
            now = self.clock.now_ms()
            if self.rng.random() < 0.3:
                self.plog.append(self.batch(), now)
                continue
            pid = 1000 + self.rng.randrange(PRODUCERS)
            self.plog.append(self.batch(producer_id=pid, producer_epoch=0,
                                        base_sequence=self.seq[pid], is_transactional=True), now)
            self.seq[pid] += self.per_batch
            left = self.open.get(pid, self.rng.randint(1, 3)) - 1
            if left:
                self.open[pid] = left
                continue
            self.open.pop(pid, None)
            kind = ABORT if self.rng.random() < 0.1 else COMMIT
            self.plog.append(marker(pid, kind, now), now, origin=ORIGIN_COORDINATOR)

    def close_all(self) -> None:
        now = self.clock.now_ms()
        for pid in list(self.open):
            self.plog.append(marker(pid, COMMIT, now), now, origin=ORIGIN_COORDINATOR)
        self.open.clear()


def build(path: str, total_mb: int, per_batch: int, unique: float) -> dict:
    clock = ManualClock(T0)
    config = LogConfig(cleanup_policy=("compact",), segment_bytes=SEGMENT_BYTES,
                       min_cleanable_dirty_ratio=0.0)
    plog = PartitionLog.open(path, "bench", 0, config, clock=clock)
    records = total_mb * MB // (VALUE_BYTES + 30)
    writer = Writer(plog, clock, max(1, int(records * unique)), per_batch)
    writer.write(total_mb * MB * 3 // 4)
    writer.close_all()
    plog.flush()
    plog.roll(clock.now_ms())
    first = current.Cleaner(10_000_000).clean(plog, clock.now_ms())
    writer.write(total_mb * MB // 4)
    writer.close_all()
    plog.flush()
    plog.roll(clock.now_ms())
    batches = sum(1 for seg in plog.segments for _ in seg.headers_from(0, seg.size))
    info = {"log_mb": plog.size_bytes / MB, "offsets": plog.log_end_offset, "batches": batches,
            "first_clean_end": first.end_offset, "segments": len(plog.segments)}
    plog.close()
    return info


def timed_clean(module, template: str, work: str, map_keys: int) -> tuple[float, object, str]:
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(template, work)
    plog = PartitionLog.open(work, "bench", 0, LogConfig(
        cleanup_policy=("compact",), segment_bytes=SEGMENT_BYTES, min_cleanable_dirty_ratio=0.0),
        clock=ManualClock(T0 + 10_000))
    t0 = time.perf_counter()
    result = module.Cleaner(map_keys).clean(plog, T0 + 10_000)
    elapsed = time.perf_counter() - t0
    digest = hashlib.sha256()
    for seg in plog.segments:
        for _p, _f, view in seg.bodies_from(0, seg.size):
            digest.update(view)
    plog.close()
    return elapsed, result, digest.hexdigest()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=64, help="MB of log (default 64)")
    ap.add_argument("--reps", type=int, default=3, help="timed cleans of each (medians)")
    ap.add_argument("--batch-records", type=int, default=50, help="records per batch (default 50)")
    ap.add_argument("--unique", type=float, default=0.5, help="keys / records (default 0.5)")
    ap.add_argument("--map-keys", type=int, default=10_000_000,
                    help="the timed clean's map capacity (default: one pass); a smaller map "
                         "ends the clean early, the rest of the log lying past its end")
    ap.add_argument("--baseline", help="git revision of the baseline cleaner (default: the "
                                       "merge base of HEAD and main)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    rev = args.baseline or merge_base()
    baseline = load_baseline(rev)
    tmp = tempfile.mkdtemp(prefix="kafkito-cleaner-txn-bench-")
    try:
        template = os.path.join(tmp, "template")
        info = build(template, args.mb, args.batch_records, args.unique)
        print(f"log: {info['log_mb']:.1f} MB, {info['offsets']} offsets, {info['batches']} batches, "
              f"{info['segments']} segments, clean section up to offset {info['first_clean_end']}")
        times: dict[str, list[float]] = {"baseline": [], "current": []}
        digests, results = {}, {}
        for _ in range(args.reps):
            for name, module in (("baseline", baseline), ("current", current)):
                elapsed, result, digest = timed_clean(module, template, os.path.join(tmp, "work"),
                                                      args.map_keys)
                times[name].append(elapsed)
                digests.setdefault(name, digest)
                assert digests[name] == digest, f"{name}: two cleans of one log differ"
                results[name] = result
        if digests["baseline"] != digests["current"]:
            print("the two cleaners' outputs differ", file=sys.stderr)
            return 1
        before, after = statistics.median(times["baseline"]), statistics.median(times["current"])
        r = results["current"]
        out = {**info, "batch_records": args.batch_records, "unique": args.unique,
               "map_keys": args.map_keys,
               "baseline_rev": rev, "baseline_clean_s": before, "current_clean_s": after,
               "ratio": before / after, "times": times, "input_mb": r.bytes_read / MB,
               "map_mb": r.map_bytes_read / MB, "aborted_removed": r.aborted_removed,
               "marker_scan_batches": r.marker_scan_batches, "same_output": True}
        print(f"clean (first dirty {r.first_dirty}, end {r.end_offset}, {r.aborted_removed} aborted "
              f"records removed): baseline {before:.2f} s, current {after:.2f} s, "
              f"ratio {before / after:.2f}x; marker scan batches now {r.marker_scan_batches}; "
              f"outputs identical")
        if args.json:
            os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
            with open(args.json, "w") as f:
                json.dump(out, f, indent=2)
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())

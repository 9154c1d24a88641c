"""Storage engine throughput next to the raw disk, measured in the same run.

    .venv/bin/python bench/storage_bench.py [--dir PATH] [--mb 256] [--fsync-seconds 3]
                                            [--json bench/results/storage.json]

For 1 KiB, 16 KiB and 1 MiB record batches (uncompressed, so the figure is the engine's
own cost, not a codec's):

- append without fsync: ``PartitionLog.append`` of the same client batch, over and over,
  against a raw ``os.write`` loop of the same bytes to a plain file (what ``dd bs=<batch>``
  does); both end with one fdatasync, included in the time;
- append with fsync: ``append`` + ``flush()`` per batch, against ``write`` + ``fdatasync``
  per batch (``dd oflag=dsync``);
- read: the whole log through ``PartitionLog.read`` (1 MiB max_bytes) + ``FileSlice``
  pread, and through ``os.sendfile`` of the slices, against a plain sequential 1 MiB
  ``pread`` of the same file; once warm (page cache) and once cold (the files' pages
  dropped with posix_fadvise(DONTNEED), which touches no other file).

Prints a table with MB/s, batches/s and the ratio to the raw figure. A benchmark, not a
test: numbers depend on the machine and on whoever else uses its disk.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from kafkito.records import build_batch
from kafkito.storage import LogConfig, ManualClock, PartitionLog

MB = 1024 * 1024
SIZES = [("1KB", 1024), ("16KB", 16 * 1024), ("1MB", 1024 * 1024)]


def client_batch(total_bytes: int) -> bytes:
    """An uncompressed batch of about ``total_bytes`` (1 KiB records, or one smaller)."""
    value_bytes = min(1000, total_bytes - 100)
    n = max(1, (total_bytes - 61) // (value_bytes + 20))
    value = os.urandom(value_bytes)
    return build_batch([(b"key-%06d" % i, value, [], 1_700_000_000_000 + i) for i in range(n)])


def drop_cache(path: str) -> None:
    for p in Path(path).rglob("*") if os.path.isdir(path) else [Path(path)]:
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fdatasync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def raw_write(path: str, chunk: bytes, count: int, fsync_each: bool) -> float:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        t0 = time.perf_counter()
        for _ in range(count):
            os.write(fd, chunk)
            if fsync_each:
                os.fdatasync(fd)
        os.fdatasync(fd)
        return time.perf_counter() - t0
    finally:
        os.close(fd)


def log_append(path: str, batch: bytes, count: int, fsync_each: bool) -> tuple[float, PartitionLog]:
    clock = ManualClock(1_700_000_000_000)  # the batches' timestamps: valid for the validator
    plog = PartitionLog.open(path, "bench", 0, LogConfig(), clock=clock)
    t0 = time.perf_counter()
    for _ in range(count):
        plog.append(batch, clock.now_ms())
        if fsync_each:
            plog.flush()
    plog.flush()
    return time.perf_counter() - t0, plog


def raw_read(path: str) -> tuple[float, int]:
    fd = os.open(path, os.O_RDONLY)
    try:
        t0 = time.perf_counter()
        pos = 0
        while True:
            data = os.pread(fd, MB, pos)
            if not data:
                break
            pos += len(data)
        return time.perf_counter() - t0, pos
    finally:
        os.close(fd)


def log_read(plog: PartitionLog, use_sendfile: bool) -> tuple[float, int]:
    sink = os.open(os.devnull, os.O_WRONLY)
    try:
        t0 = time.perf_counter()
        offset, total = plog.log_start_offset, 0
        while offset < plog.log_end_offset:
            s = plog.read(offset, MB)
            if use_sendfile:
                sent = 0
                while sent < s.size:
                    sent += os.sendfile(sink, s.fileno(), s.position + sent, s.size - sent)
            else:
                s.tobytes()
            total += s.size
            offset = s.next_offset
        return time.perf_counter() - t0, total
    finally:
        os.close(sink)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=None, help="directory on the disk to measure (default: a temp dir)")
    parser.add_argument("--mb", type=int, default=256, help="MiB written per no-fsync case")
    parser.add_argument("--fsync-seconds", type=float, default=3.0,
                        help="rough time budget per fsync-per-batch case")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    base = tempfile.mkdtemp(prefix="kafkito-storage-bench-", dir=args.dir)
    rows = []
    try:
        for name, size in SIZES:
            batch = client_batch(size)
            n_batch = len(batch)
            count = max(1, args.mb * MB // n_batch)
            raw_path = os.path.join(base, f"raw-{name}")
            log_path = os.path.join(base, f"log-{name}")

            raw_s = raw_write(raw_path, batch, count, False)
            log_s, plog = log_append(log_path, batch, count, False)
            rows.append(("append", name, "no fsync", count, n_batch, log_s, raw_s))

            # Reads over what was just written: warm, then cold.
            for cache in ("warm", "cold"):
                if cache == "cold":
                    drop_cache(raw_path)
                    drop_cache(log_path)
                raw_r, nbytes = raw_read(raw_path)
                if cache == "cold":
                    drop_cache(log_path)
                lr, lbytes = log_read(plog, use_sendfile=False)
                rows.append(("read pread", name, cache, count, lbytes / count, lr, raw_r * lbytes / nbytes))
                if cache == "cold":
                    drop_cache(log_path)
                ls, lbytes = log_read(plog, use_sendfile=True)
                rows.append(("read sendfile", name, cache, count, lbytes / count, ls, raw_r * lbytes / nbytes))
            plog.close()
            shutil.rmtree(log_path)
            os.unlink(raw_path)

            # fsync per batch: calibrate the count on the raw disk, then run both.
            probe = raw_write(raw_path, batch, 20, True) / 20
            fcount = max(20, min(count, int(args.fsync_seconds / max(probe, 1e-6))))
            raw_s = raw_write(raw_path, batch, fcount, True)
            log_s, plog = log_append(log_path, batch, fcount, True)
            rows.append(("append", name, "fsync each", fcount, n_batch, log_s, raw_s))
            plog.close()
            shutil.rmtree(log_path)
            os.unlink(raw_path)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    print(f"{'operation':<14}{'batch':>6}  {'mode':<11}{'batches':>9}{'kafkito MB/s':>14}"
          f"{'batches/s':>12}{'raw MB/s':>11}{'ratio':>8}")
    results = []
    for op, name, mode, count, nbytes, t_log, t_raw in rows:
        total = count * nbytes
        log_mbs = total / MB / t_log
        raw_mbs = total / MB / t_raw
        ratio = log_mbs / raw_mbs
        print(f"{op:<14}{name:>6}  {mode:<11}{count:>9}{log_mbs:>14.1f}{count / t_log:>12.0f}"
              f"{raw_mbs:>11.1f}{ratio:>8.2f}")
        results.append({"operation": op, "batch": name, "mode": mode, "batches": count,
                        "batch_bytes": nbytes, "kafkito_mb_s": log_mbs,
                        "kafkito_batches_s": count / t_log, "raw_mb_s": raw_mbs, "ratio": ratio})
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"python": sys.version.split()[0], "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

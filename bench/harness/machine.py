"""The machine's own limits, measured in the same run as the brokers.

A broker cannot move bytes faster than loopback TCP, nor make acks=all faster than the
disk's fsync, so these figures sit beside the broker table: loopback MB/s (one sender
process, one receiver process, 1 MiB sendall), sequential disk write MB/s (buffered
writes then one fsync, on the filesystem that holds kafkito's data) and the latency of a
small write + fsync (what one acks=all round trip costs at least).
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import socket
import statistics
import time
from pathlib import Path

import psutil

CHUNK = 1024 * 1024


def _sink(port_queue, done_queue) -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port_queue.put(srv.getsockname()[1])
    conn, _ = srv.accept()
    buf = bytearray(CHUNK)
    total = 0
    while True:
        n = conn.recv_into(buf)
        if not n:
            break
        total += n
    done_queue.put(total)
    conn.close()
    srv.close()


def loopback_mb_s(duration_s: float = 1.5) -> float:
    ctx = multiprocessing.get_context("spawn")
    port_q, done_q = ctx.Queue(), ctx.Queue()
    proc = ctx.Process(target=_sink, args=(port_q, done_q), daemon=True)
    proc.start()
    port = port_q.get(timeout=30)
    data = memoryview(bytes(CHUNK))
    with socket.create_connection(("127.0.0.1", port)) as s:
        start = time.perf_counter()
        sent = 0
        while time.perf_counter() - start < duration_s:
            s.sendall(data)
            sent += CHUNK
        s.shutdown(socket.SHUT_WR)
        received = done_q.get(timeout=60)
        elapsed = time.perf_counter() - start
    proc.join(10)
    return received / elapsed / 1e6


def disk_write_mb_s(directory: Path, total_bytes: int) -> float:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "disk-probe.bin"
    data = os.urandom(CHUNK)
    try:
        start = time.perf_counter()
        with open(path, "wb", buffering=0) as f:
            for _ in range(total_bytes // CHUNK):
                f.write(data)
            os.fsync(f.fileno())
        return total_bytes / (time.perf_counter() - start) / 1e6
    finally:
        path.unlink(missing_ok=True)


def fsync_latency_ms(directory: Path, count: int = 200) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "fsync-probe.bin"
    data = os.urandom(4096)
    samples = []
    try:
        with open(path, "wb", buffering=0) as f:
            for _ in range(count):
                t0 = time.perf_counter()
                f.write(data)
                os.fsync(f.fileno())
                samples.append((time.perf_counter() - t0) * 1000)
    finally:
        path.unlink(missing_ok=True)
    samples.sort()
    return {"p50_ms": statistics.median(samples), "p99_ms": samples[int(0.99 * len(samples)) - 1]}


def facts(directory: Path, *, disk_bytes: int, quick: bool) -> dict:
    """Everything the closing note puts beside the table."""
    du = psutil.disk_usage(str(directory if directory.exists() else directory.parent))
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "disk_free_gb": round(du.free / 1e9, 1),
        "loopback_mb_s": round(loopback_mb_s(1.0 if quick else 2.0), 1),
        "disk_write_mb_s": round(disk_write_mb_s(directory, disk_bytes), 1),
        "fsync_4k_ms": fsync_latency_ms(directory, 100 if quick else 300),
        "load_avg_at_start": os.getloadavg(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"

"""Startup time: `kafkito serve` and the embedded broker, to the first accepted connection.

    python bench/startup_bench.py [--runs 10]

Measures wall time from process spawn (serve) or from ``kafkito.testing.broker()`` entry
(embedded) until a TCP connect to the listener succeeds, on a fresh data directory each
run. Prints median and max in milliseconds. A benchmark, not a test: the figures go in
closing notes, as measured on the machine at hand.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _connects(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.05)
        return s.connect_ex(("127.0.0.1", port)) == 0


def serve_once() -> float:
    port = _free_port()
    with tempfile.TemporaryDirectory() as data:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "kafkito.broker.cli", "serve", "--data-dir", data,
                                 "--listen", f"127.0.0.1:{port}", "--log-level", "WARNING"])
        try:
            while not _connects(port):
                if proc.poll() is not None:
                    raise RuntimeError("kafkito serve exited")
                time.sleep(0.001)
            return (time.perf_counter() - start) * 1000
        finally:
            proc.terminate()
            proc.wait(10)


def embedded_once() -> float:
    from kafkito.testing import broker

    with tempfile.TemporaryDirectory() as data:
        start = time.perf_counter()
        with broker(data) as b:
            port = b.port
            while not _connects(port):
                time.sleep(0.0005)
            elapsed = (time.perf_counter() - start) * 1000
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    embedded_once()  # warm imports: the embedded figure is for a process that already has kafkito loaded
    for name, fn in (("kafkito serve", serve_once), ("embedded", embedded_once)):
        times = [fn() for _ in range(args.runs)]
        print(f"{name:14} median {statistics.median(times):7.1f} ms   max {max(times):7.1f} ms   ({args.runs} runs)")


if __name__ == "__main__":
    main()

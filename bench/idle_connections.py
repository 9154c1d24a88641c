"""``python -m bench.idle_connections``: what one idle connection costs `kafkito serve` in RSS.

    .venv/bin/python -m bench.idle_connections [--connections 2000] [--base DIR]

Starts `kafkito serve`, opens N connections that each do one ApiVersions (as a client
does on connect) and then sit idle, waits for the broker's idle sweep, and reports the
broker's RSS growth per connection. ``--base DIR`` measures a second source tree too
(a directory holding a ``kafkito`` package, e.g. ``git archive`` of an older commit),
in the same run, so the two figures compare like with like.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# ApiVersions v0 with client id "idle", encoded by hand so that any Kafka-compatible
# broker (the peers of bench/harness too) can be measured without our codec.
_CLIENT_ID = b"idle"
API_VERSIONS_V0 = struct.pack(">ihhih", 10 + len(_CLIENT_ID), 18, 0, 1, len(_CLIENT_ID)) + _CLIENT_ID


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _recv_frame(sock: socket.socket) -> None:
    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data
    exactly(struct.unpack(">i", exactly(4))[0])


def open_idle_connections(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` connections that each did one ApiVersions, as a client does on connect."""
    socks = []
    try:
        for _ in range(count):
            s = socket.create_connection((host, port))
            socks.append(s)
            s.sendall(API_VERSIONS_V0)
            _recv_frame(s)
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


def measure(connections: int, pythonpath: str | None, settle_s: float) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="idle-conn-"))
    port = _free_port()
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    log = open(workdir / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "kafkito.broker.cli", "serve", "--data-dir", str(workdir / "data"),
                             "--listen", f"127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT, env=env,
                            cwd=workdir)
    socks: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 30
        while b"listening on" not in (workdir / "serve.log").read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((workdir / "serve.log").read_text())
            time.sleep(0.02)
        warm = socket.create_connection(("127.0.0.1", port))
        for _ in range(20):
            warm.sendall(API_VERSIONS_V0)
            _recv_frame(warm)
        time.sleep(settle_s)
        before = _rss(proc.pid)
        socks = open_idle_connections("127.0.0.1", port, connections)
        time.sleep(settle_s)
        after = _rss(proc.pid)
        return {"before_mb": before / 2**20, "after_mb": after / 2**20,
                "per_connection_kb": (after - before) / connections / 1024}
    finally:
        for s in socks:
            s.close()
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.idle_connections", description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--base", help="also measure the kafkito package found in this directory")
    parser.add_argument("--settle-s", type=float, default=3.0, help="wait before each RSS reading (the idle sweep)")
    args = parser.parse_args(argv)
    runs = [("base", args.base)] if args.base else []
    runs.append(("this tree", None))
    for name, path in runs:
        r = measure(args.connections, path, args.settle_s)
        print(f"{name}: {args.connections} idle connections: RSS {r['before_mb']:.1f} -> {r['after_mb']:.1f} MB, "
              f"{r['per_connection_kb']:.1f} KB per connection")
    return 0


if __name__ == "__main__":
    sys.exit(main())

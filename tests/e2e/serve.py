"""`kafkito serve` in a child process, as a user would run it (shared by e2e tests)."""

from __future__ import annotations

import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    """``settings``: ``--set name=value`` pairs; ``nofile``: the child's RLIMIT_NOFILE (soft
    and hard), as ``ulimit -n`` would set it."""

    def __init__(self, data_dir: Path, *, settings: dict[str, str] | None = None,
                 nofile: int | None = None, start_timeout_s: float = 20) -> None:
        self.port = free_port()
        self.log = data_dir.parent / f"serve-{self.port}.log"
        args = [sys.executable, "-m", "kafkito.broker.cli", "serve", "--data-dir", str(data_dir),
                "--listen", f"127.0.0.1:{self.port}"]
        for name, value in (settings or {}).items():
            args += ["--set", f"{name}={value}"]

        def limit_files() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(self.log, "wb"),
                                     preexec_fn=limit_files if nofile else None)
        deadline = time.monotonic() + start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"kafkito serve exited: {self.log.read_text()}")
            if b"listening on" in self.log.read_bytes():
                return
            time.sleep(0.02)
        self.proc.kill()
        raise AssertionError("kafkito serve did not start")

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, sig=signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(30)

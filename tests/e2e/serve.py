"""`kafkito serve` in a child process, as a user runs it (imported as ``e2e.serve``)."""

from __future__ import annotations

import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Mapping


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    """Starts `kafkito serve` and waits for its "listening on" line; stderr goes to ``log``
    (outside the data directory, which may be a full disk). ``nofile``: the child's
    RLIMIT_NOFILE (soft and hard), as ``ulimit -n`` would set it."""

    def __init__(self, data_dir: Path, settings: Mapping[str, object] | None = None,
                 log_dir: Path | None = None, *, nofile: int | None = None,
                 start_timeout_s: float = 20) -> None:
        self.port = free_port()
        self.log = (log_dir or data_dir.parent) / f"serve-{self.port}.log"
        settings = {"http.listeners": "off", **(settings or {})}  # no fight over its fixed port
        sets = [arg for name, value in settings.items() for arg in ("--set", f"{name}={value}")]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kafkito.broker.cli", "serve", "--data-dir", str(data_dir),
             "--listen", f"127.0.0.1:{self.port}", *sets],
            stdout=subprocess.DEVNULL, stderr=open(self.log, "wb"),
            preexec_fn=(lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile)))
            if nofile else None,
        )
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

    def rss_bytes(self) -> int:
        """The broker process's resident set size, from /proc."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS in /proc status")

    def stop(self, sig=signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(30)

    def __enter__(self) -> "ServeProcess":
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

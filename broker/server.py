"""Broker: opens the data directory, listens, and runs until asked to stop.

Theory of operation
-------------------
``Broker.run`` is one trio task that owns everything: it starts the log manager
(recovering the logs), binds the listener (a port in use is a ``BrokerStartError``
with a plain message), attaches the group coordinator, starts the background work
(retention, offsets expiry) and accepts connections, each served by a ``Connection``.
``task_status.started`` reports the bound address once clients can connect.

``Broker.stop`` (thread-safe through ``request_stop``) shuts down in Kafka's order: stop
accepting, let connections answer what they already accepted (bounded by
``shutdown_grace_s``), flush every log, write the clean-shutdown marker, release the
data-directory lock.
"""

from __future__ import annotations

import errno
import logging
import time

import trio

from kafkito.storage import LogManager, SystemClock

from .config import BrokerConfig, advertised_address, listen_address, log_config_from
from .connection import Connection
from .context import BrokerState
from .group.service import GroupService
from .handlers import load_handlers
from .partitions import PartitionManager
from .producer_ids import ProducerIdManager

log = logging.getLogger("kafkito.broker")

__all__ = ["Broker", "BrokerStartError"]


class BrokerStartError(RuntimeError):
    """The broker could not start (port in use, data directory locked, ...)."""


class Broker:
    def __init__(self, config: BrokerConfig, *, clock=None, shutdown_grace_s: float = 5.0) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.shutdown_grace_s = shutdown_grace_s
        self.state: BrokerState | None = None
        self.address: tuple[str, int] | None = None
        self._stop = trio.Event()
        self.trio_token: trio.lowlevel.TrioToken | None = None
        self._connections: set[Connection] = set()
        self._all_closed = trio.Event()

    # -- control -------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask a running broker to shut down (call from inside its trio run)."""
        self._stop.set()

    def request_stop(self) -> None:
        """Thread-safe ``stop`` for embedding and signal handling from other threads."""
        if self.trio_token is None:
            return
        try:
            trio.from_thread.run_sync(self._stop.set, trio_token=self.trio_token)
        except trio.RunFinishedError:
            pass

    # -- run -----------------------------------------------------------------------------
    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        started = time.perf_counter()
        self.trio_token = trio.lowlevel.current_trio_token()
        config = self.config
        logs = LogManager(config.log_dirs, log_config_from(config), self.clock,
                          open_files_max=config.log_open_files_max or None,
                          partitions_max=config.max_partitions)
        try:
            logs.startup()
        except Exception as exc:
            raise BrokerStartError(f"cannot open data directory {config.log_dirs}: {exc}") from exc
        try:
            host, port = listen_address(config)
            try:
                listeners = await trio.open_tcp_listeners(port, host=host)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise BrokerStartError(f"cannot listen on {host}:{port}: address already in use") from None
                raise BrokerStartError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
            bound_port = listeners[0].socket.getsockname()[1]
            adv_host, adv_port = advertised_address(config, bound_port)
            partitions = PartitionManager(logs, self.clock, flush_interval_ms=config.log_flush_interval_ms)
            state = self.state = BrokerState(
                config=config,
                logs=logs,
                clock=self.clock,
                partitions=partitions,
                node_id=config.node_id,
                cluster_id=logs.cluster_id,
                advertised_host=adv_host,
                advertised_port=adv_port,
                handlers=load_handlers(),
                producer_ids=ProducerIdManager(config.log_dirs),
            )
            state.groups = GroupService(state)
            async with trio.open_nursery() as nursery:
                partitions.attach(nursery)
                await state.groups.load()
                nursery.start_soon(state.groups.run)
                nursery.start_soon(self._retention_loop, state)
                async with trio.open_nursery() as conn_nursery:
                    accept_scope = trio.CancelScope()
                    conn_nursery.start_soon(self._accept, listeners, state, conn_nursery, accept_scope)
                    self.address = (host, bound_port)
                    log.info(
                        "listening on %s:%d (advertised %s:%d, data %s, started in %.0f ms)",
                        host, bound_port, adv_host, adv_port, config.log_dirs,
                        (time.perf_counter() - started) * 1000,
                    )
                    task_status.started(self.address)
                    await self._stop.wait()
                    log.info("shutting down")
                    accept_scope.cancel()
                    self._all_closed = trio.Event()
                    for conn in list(self._connections):
                        conn.stop_reading()
                    with trio.move_on_after(self.shutdown_grace_s):
                        if self._connections:
                            await self._all_closed.wait()
                    conn_nursery.cancel_scope.cancel()
                await state.groups.shutdown()
                with trio.CancelScope(shield=True):
                    await partitions.flush_all()
                nursery.cancel_scope.cancel()
        finally:
            logs.shutdown()
            log.info("stopped")

    async def _accept(self, listeners, state: BrokerState, nursery: trio.Nursery, scope: trio.CancelScope) -> None:
        with scope:
            await trio.serve_listeners(lambda stream: self._serve(stream, state), listeners, handler_nursery=nursery)

    async def _serve(self, stream: trio.SocketStream, state: BrokerState) -> None:
        conn = Connection(stream, state)
        self._connections.add(conn)
        try:
            await conn.run()
        finally:
            self._connections.discard(conn)
            if not self._connections:
                self._all_closed.set()

    async def _retention_loop(self, state: BrokerState) -> None:
        interval_s = state.config.log_retention_check_interval_ms / 1000
        while True:
            await trio.sleep(interval_s)
            try:
                await trio.to_thread.run_sync(state.logs.apply_retention, self.clock.now_ms())
            except Exception:
                log.exception("retention pass failed")
            for topic in state.logs.topics():
                for p in range(topic.num_partitions):
                    state.partitions.refresh(topic.name, p)

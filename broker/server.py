"""Broker: opens the data directory, listens, and runs until asked to stop.

Theory of operation
-------------------
``Broker.run`` is one trio task that owns everything: it starts the log manager
(recovering the logs), binds the listener (a port in use is a ``BrokerStartError``
with a plain message), attaches the group coordinator, starts the background work
(retention, offsets expiry, the log cleaner of broker/log_cleaner.py) and accepts
connections, each served by a ``Connection``.
``task_status.started`` reports the bound address once clients can connect.

Connections are admitted by ``ConnectionQuotas`` (``connection_quotas.py``): the accept
loop waits as ``max.connection.creation.rate`` requires, and closes a connection right
after accept when ``max.connections`` or ``max.connections.per.ip`` is reached, logging
the refusals at most once per ``_REFUSAL_LOG_INTERVAL_S`` with their count. All
connections share one ``RequestMemoryPool`` (``queued.max.request.bytes``), and one
sweep task applies every connection's deadlines (idle, incomplete frame, unread
answers) a few times per shortest deadline, instead of a watchdog task per connection.

``Broker.stop`` (thread-safe through ``request_stop``) shuts down in Kafka's order: stop
accepting, let connections answer what they already accepted (bounded by
``shutdown_grace_s``), flush every log, write the clean-shutdown marker, release the
data-directory lock.

A full or failing disk changes neither order nor outcome unless data is at stake: the log
manager skips derived files it cannot write (and then claims no clean shutdown) with a
warning; only data that could not be flushed ends ``run`` with ``BrokerShutdownError``,
whose message names the logs (the CLI prints it and exits 1, no traceback). On start-up
the broker needs no free space: it serves reads, and writes fail with
KAFKA_STORAGE_ERROR until there is room again (no restart needed).
"""

from __future__ import annotations

import errno
import logging
import sys
import time

import trio

from kafkito.records import recordscan
from kafkito.storage import offset_map
from kafkito.storage import DEFAULT_IO, FileIO, LogManager, StorageError, SystemClock

from .config import (
    BrokerConfig,
    advertised_address,
    http_listen_address,
    listen_address,
    log_config_from,
)
from .connection import Connection
from .connection_quotas import ConnectionQuotas
from .context import BrokerState
from .group.service import GroupService
from .txn.service import TransactionService
from .handlers import load_handlers
from .log_cleaner import LogCleanerService
from .partitions import PartitionManager
from .producer_ids import ProducerIdManager
from .remote_offload import offload_loop, remote_log_manager_from
from .request_pool import RequestMemoryPool
from .transport import FdTransport

log = logging.getLogger("kafkito.broker")

__all__ = ["Broker", "BrokerShutdownError", "BrokerStartError"]

_REFUSAL_LOG_INTERVAL_S = 10.0  # refused connections are logged at most this often (with a count)
_SWEEP_MIN_S, _SWEEP_MAX_S = 0.01, 1.0  # bounds of the deadline sweep's tick


class BrokerStartError(RuntimeError):
    """The broker could not start (port in use, data directory locked, ...)."""


class BrokerShutdownError(RuntimeError):
    """The broker stopped, but some data could not be flushed to disk (the message says which)."""


class Broker:
    def __init__(self, config: BrokerConfig, *, clock=None, shutdown_grace_s: float = 5.0,
                 io: FileIO = DEFAULT_IO) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.io = io  # storage's file-call seam (tests inject faults through it)
        self.shutdown_grace_s = shutdown_grace_s
        self.state: BrokerState | None = None
        self.log_cleaner: LogCleanerService | None = None
        self.address: tuple[str, int] | None = None
        self.http_address: tuple[str, int] | None = None  # the HTTP listener's, when on
        self._stop = trio.Event()
        self.trio_token: trio.lowlevel.TrioToken | None = None
        self._connections: set[Connection] = set()
        self._all_closed = trio.Event()
        self.quotas = ConnectionQuotas(
            config.max_connections, config.max_connections_per_ip, config.max_connection_creation_rate
        )
        self.request_pool = RequestMemoryPool(
            config.queued_max_request_bytes, config.queued_max_request_bytes_per_connection
        )
        self._refused = 0  # connections refused since the last refusal log line
        self._refused_logged_s = -_REFUSAL_LOG_INTERVAL_S
        self._refused_reason = ""

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
        logs = LogManager(config.log_dirs, log_config_from(config), self.clock, io=self.io,
                          decompressed_bytes_max=config.message_decompressed_max_bytes,
                          flush_interval_ms=config.log_flush_interval_ms,
                          flush_interval_messages=config.log_flush_interval_messages,
                          open_files_max=config.log_open_files_max or None,
                          partitions_max=config.max_partitions,
                          remote=remote_log_manager_from(config))
        try:
            # Recovery and producer-state rebuilds read segments: off the event loop (it
            # serves nothing yet, but trio's clock and signal handling keep running).
            await trio.to_thread.run_sync(logs.startup)
        except Exception as exc:
            raise BrokerStartError(f"cannot open data directory {config.log_dirs}: {exc}") from exc
        try:
            host, port = listen_address(config)
            listeners, bound_port = await self._listen(host, port)
            adv_host, adv_port = advertised_address(config, bound_port)
            partitions = PartitionManager(logs, self.clock)
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
                producer_ids=ProducerIdManager(config.log_dirs, self.io),
                request_pool=self.request_pool,
                request_pool_lot=trio.lowlevel.ParkingLot(),
            )
            state.groups = GroupService(state)
            state.txns = TransactionService(state)
            http = await self._open_http(state)
            try:  # before the nursery, so a failure is this error and not a group of them
                await state.groups.load()
                await state.txns.load()
            except StorageError as exc:
                raise BrokerStartError(f"cannot load the consumer groups or transactions: {exc}") from None
            self.log_cleaner = LogCleanerService(logs, config, self.clock.now_ms, partitions.refresh)
            async with trio.open_nursery() as nursery:
                partitions.attach(nursery)
                nursery.start_soon(state.groups.run)
                nursery.start_soon(state.txns.run)
                nursery.start_soon(self.log_cleaner.run)
                nursery.start_soon(self._retention_loop, state)
                nursery.start_soon(self._recovery_point_loop, state)
                nursery.start_soon(self._sweep_deadlines)
                if http is not None:
                    nursery.start_soon(http.run)
                if logs.remote is not None:
                    nursery.start_soon(offload_loop, state, self.clock)
                async with trio.open_nursery() as conn_nursery:
                    accept_scope = trio.CancelScope()
                    conn_nursery.start_soon(self._accept, listeners, state, conn_nursery, accept_scope)
                    self.address = (host, bound_port)
                    log.info(
                        "listening on %s:%d (advertised %s:%d, data %s, started in %.0f ms)",
                        host, bound_port, adv_host, adv_port, config.log_dirs,
                        (time.perf_counter() - started) * 1000,
                    )
                    if not recordscan.ACCELERATED:
                        log.warning("the C record walk (records/_recscan.c) is not built: produce "
                                    "validation runs in Python, ~50x slower; `pip install -e .` "
                                    "builds it")
                    if not offset_map.ACCELERATED and self.log_cleaner.enabled:
                        log.warning("the cleaner's C offset map (storage/_offsetmap.c) is not "
                                    "built: compaction runs in Python, holding the GIL for "
                                    "every record; `pip install -e .` builds it")
                    task_status.started(self.address)
                    await self._stop.wait()
                    log.info("shutting down")
                    self.log_cleaner.request_stop()
                    accept_scope.cancel()
                    self._all_closed = trio.Event()
                    for conn in list(self._connections):
                        conn.stop_reading()
                    with trio.move_on_after(self.shutdown_grace_s):
                        if self._connections:
                            await self._all_closed.wait()
                    conn_nursery.cancel_scope.cancel()
                await state.groups.shutdown()
                await state.txns.shutdown()
                with trio.CancelScope(shield=True):
                    await partitions.flush_all()
                nursery.cancel_scope.cancel()
        finally:
            self._shutdown_storage(logs)

    @staticmethod
    def _shutdown_storage(logs: LogManager) -> None:
        failing = sys.exception()  # the broker is already stopping on an error
        try:
            logs.shutdown()
        except StorageError as exc:
            log.error("stopped, but %s", exc)
            if failing is None:
                raise BrokerShutdownError(f"shutdown incomplete: {exc}") from None
            return
        log.info("stopped")

    async def _open_http(self, state: BrokerState):
        """The HTTP listener (broker/http/), bound, or None when ``http.listeners`` is off."""
        address = http_listen_address(self.config)
        if address is None:
            return None
        from .http import HttpListener, default_router

        http = HttpListener(default_router(state))
        self.http_address = await http.open(*address)
        log.info("HTTP listening on %s:%d", *self.http_address)
        return http

    async def _listen(self, host: str, port: int) -> tuple[list, int]:
        """The listeners and the bound port. A seam: the simulation (tests/sim) serves no
        sockets and drives the handlers itself."""
        try:
            listeners = await trio.open_tcp_listeners(port, host=host)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise BrokerStartError(f"cannot listen on {host}:{port}: address already in use") from None
            raise BrokerStartError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        return listeners, listeners[0].socket.getsockname()[1]

    async def _accept(self, listeners, state: BrokerState, nursery: trio.Nursery, scope: trio.CancelScope) -> None:
        with scope:
            async with trio.open_nursery() as accepting:
                for listener in listeners:
                    accepting.start_soon(self._accept_loop, listener, state, nursery)

    async def _accept_loop(self, listener, state: BrokerState, nursery: trio.Nursery) -> None:
        quotas = self.quotas
        while True:
            delay_s = quotas.accept_delay_s(trio.current_time())
            if delay_s > 0:  # max.connection.creation.rate: the rest wait in the backlog
                await trio.sleep(delay_s)
                continue
            try:
                stream = await listener.accept()
            except OSError as exc:
                # EMFILE/ENFILE and friends: back off instead of spinning (trio's own
                # serve_listeners does the same).
                log.error("accept failed: %s; retrying in 100 ms", exc)
                await trio.sleep(0.1)
                continue
            try:
                ip = stream.socket.getpeername()[0]
            except OSError:
                await stream.aclose()
                continue
            refusal = quotas.admit(ip)
            if refusal is not None:
                self._log_refusal(refusal)
                await stream.aclose()
                continue
            nursery.start_soon(self._serve, stream, state, ip)

    def _log_refusal(self, reason: str | None = None) -> None:
        """Count a refused connection (``reason``), logging at most once per interval.

        Called with no reason by the sweep, so refusals counted since the last line are
        logged even when no further connection comes.
        """
        if reason is not None:
            self._refused += 1
            self._refused_reason = reason
        now = trio.current_time()
        if self._refused and now - self._refused_logged_s >= _REFUSAL_LOG_INTERVAL_S:
            log.warning("closed %d new connection(s) right after accept: %s", self._refused, self._refused_reason)
            self._refused = 0
            self._refused_logged_s = now

    async def _serve(self, stream: trio.SocketStream, state: BrokerState, ip: str) -> None:
        conn = Connection(FdTransport(stream), state)
        self._connections.add(conn)
        try:
            await conn.run()
        finally:
            self._connections.discard(conn)
            self.quotas.release(ip)
            if not self._connections:
                self._all_closed.set()

    async def _sweep_deadlines(self) -> None:
        """Apply every connection's deadlines a few times per shortest deadline."""
        config = self.config
        shortest_ms = min(
            config.connections_max_idle_ms,
            config.socket_request_incomplete_timeout_ms,
            config.socket_response_stall_timeout_ms,
        )
        tick_s = min(_SWEEP_MAX_S, max(_SWEEP_MIN_S, shortest_ms / 4000))
        while True:
            await trio.sleep(tick_s)
            now = trio.current_time()
            for conn in list(self._connections):
                conn.expire(now)
            self._log_refusal()

    async def _recovery_point_loop(self, state: BrokerState) -> None:
        while True:
            await trio.sleep(state.config.log_flush_offset_checkpoint_interval_ms / 1000)
            try:
                await trio.to_thread.run_sync(state.logs.checkpoint_recovery_points)
            except Exception:
                log.exception("recovery-point checkpoint failed")

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

"""The offload task: the trio shell of the remote tier (storage/remote/).

Theory of operation
-------------------
Storage decides everything about the remote tier and never imports trio; this module only
supplies threads and time. Every ``remote.log.manager.task.interval.ms`` it runs one pass:
each tiered partition that is not backing off gets ``RemoteLogManager.run_partition``
(upload closed segments, commit the manifest, retention over both tiers, then local
retention) in a worker thread, at most ``remote.log.manager.thread.pool.size`` at once;
then the remote objects of deleted topics are removed (``run_deletions``), after the
partition passes, so a pass that was uploading for a topic deleted meanwhile has finished
before its directory is listed and removed. Partitions whose log start moved have their
waiting fetches woken, as the retention loop does.

Uploads read closed segments and talk to the store in threads, so the event loop keeps
serving produce and fetch; a store outage costs only log lines (one per state change) and
offload lag (storage/remote/remote_log_manager.py).
"""

from __future__ import annotations

import logging
import weakref

import trio

from kafkito.storage.remote import RemoteLogManager

log = logging.getLogger("kafkito.broker.remote_offload")

__all__ = ["offload_loop", "offload_once", "remote_log_manager_from", "remote_read_limiter"]

_read_limiters: "weakref.WeakKeyDictionary[RemoteLogManager, trio.CapacityLimiter]" = (
    weakref.WeakKeyDictionary())


def remote_read_limiter(state) -> trio.CapacityLimiter:
    """The worker threads remote reads may use at once (``remote.log.reader.threads``):
    their own pool, so a slow or hanging store never holds the threads fsyncs need."""
    rlm = state.logs.remote
    limiter = _read_limiters.get(rlm)
    if limiter is None:
        limiter = _read_limiters[rlm] = trio.CapacityLimiter(state.config.remote_log_reader_threads)
    return limiter


def remote_log_manager_from(config) -> RemoteLogManager | None:
    """The remote tier the settings ask for, or None (no tiered storage)."""
    if not config.remote_log_storage_system_enable:
        return None
    if not config.remote_log_storage_url:
        log.warning("remote.log.storage.system.enable is set but remote.log.storage.url is "
                    "empty: tiered storage is off")
        return None
    return RemoteLogManager(
        config.remote_log_storage_url,
        cache_bytes=config.remote_log_reader_cache_bytes,
        chunk_bytes=config.remote_log_reader_chunk_bytes,
        readahead_chunks=config.remote_log_reader_readahead_chunks,
        retry_backoff_ms=config.remote_log_manager_task_retry_backoff_ms,
        retry_backoff_max_ms=config.remote_log_manager_task_retry_backoff_max_ms)


async def offload_once(state, clock, limiter: trio.CapacityLimiter) -> int:
    """One pass over every tiered partition; returns segments uploaded."""
    rlm = state.logs.remote
    now = clock.now_ms()
    uploaded = 0

    async def one(plog) -> None:
        nonlocal uploaded
        before = plog.log_start_offset
        try:
            uploaded += await trio.to_thread.run_sync(rlm.run_partition, plog, now,
                                                      limiter=limiter)
        except Exception:  # a bug must not end the task: the next pass tries again
            log.exception("offload of %s failed", plog.name)
        if plog.log_start_offset != before:
            state.partitions.refresh(plog.topic, plog.partition)

    async with trio.open_nursery() as nursery:
        for plog in state.logs.logs():
            if plog.tier is not None and plog.config.remote_storage_enable and rlm.due(plog, now):
                nursery.start_soon(one, plog)
    if rlm.pending_deletes:
        await trio.to_thread.run_sync(rlm.run_deletions, limiter=limiter)
    if rlm.recovery_pending:  # the store was down at start-up: recover its topics now
        await trio.to_thread.run_sync(rlm.retry_recovery, limiter=limiter)
    return uploaded


async def offload_loop(state, clock) -> None:
    config = state.config
    limiter = trio.CapacityLimiter(config.remote_log_manager_thread_pool_size)
    interval_s = config.remote_log_manager_task_interval_ms / 1000
    while True:
        await trio.sleep(interval_s)
        try:
            await offload_once(state, clock, limiter)
        except Exception:
            log.exception("offload pass failed")

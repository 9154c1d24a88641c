"""The blocking facade: the same Producer, Consumer and Admin for plain scripts.

Theory of operation. Each facade object owns an event loop in a background thread (anyio's
blocking portal, asyncio by default) and the async client living in it. The async client is
entered with the portal's ``wrap_async_context_manager`` so that its task group is opened
and closed by one task, as structured concurrency requires. Every method call is forwarded
to the loop thread and waited for: coroutine methods return their result, plain methods
(``assign``, ``seek``, ``pause``) run in the loop thread too, so the async objects are
only ever touched by their own loop and need no locks.

``Producer.produce`` returns a ``concurrent.futures.Future`` (``.result(timeout)``) so a
script can keep many records in flight (records are handed to the loop in bulk, in
order); ``send`` blocks until the record is delivered.
Iterating a blocking Consumer yields records until it is closed (or Ctrl-C).
"""

from __future__ import annotations

import concurrent.futures
import inspect
import threading

import anyio

from anyio.from_thread import start_blocking_portal

from . import admin as _admin
from . import consumer as _consumer
from . import producer as _producer
from .errors import KafkaError, KafkaConnectionError, KafkaTimeoutError  # noqa: F401  (re-exported)
from .types import ConsumerRecord, OffsetAndMetadata, RecordMetadata, TopicPartition  # noqa: F401

__all__ = ["Admin", "Consumer", "ConsumerRecord", "KafkaError", "Producer", "RecordMetadata", "TopicPartition"]


class _Facade:
    _async_cls: type

    def __init__(self, *args, backend: str = "asyncio", **kwargs) -> None:
        self._portal_cm = start_blocking_portal(backend)
        self._portal = self._portal_cm.__enter__()
        try:
            self._async = self._portal.call(lambda: self._async_cls(*args, **kwargs))
            self._cm = self._portal.wrap_async_context_manager(self._async)
            self._cm.__enter__()
        except BaseException as exc:
            self._portal_cm.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._open = True

    def __getattr__(self, name: str):
        attr = getattr(self._async, name)
        if not callable(attr):
            return attr
        portal = self._portal
        if inspect.iscoroutinefunction(attr):
            def call(*args, **kwargs):
                return portal.call(lambda: attr(*args, **kwargs))
        else:
            def call(*args, **kwargs):
                return portal.call(lambda: _sync(attr, args, kwargs))
        call.__name__ = name
        call.__doc__ = attr.__doc__
        return call

    def close(self) -> None:
        if not self._open:
            return
        self._open = False
        try:
            self._cm.__exit__(None, None, None)
        finally:
            self._portal_cm.__exit__(None, None, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort for scripts that forget close()
        if getattr(self, "_open", False):
            try:
                self.close()
            except Exception:
                pass


async def _sync(fn, args, kwargs):
    return fn(*args, **kwargs)


class Producer(_Facade):
    """Blocking producer: ``send`` waits for delivery, ``produce`` returns a Future.

    ``produce`` does not wait for the event loop: records are queued here, in the caller's
    thread, and handed to the loop in bulk (one hand-over per burst, under an anyio lock
    that keeps them in order), so a script's loop of ``produce`` calls costs microseconds
    per record rather than a thread round trip. More than ``_HANDOVER_MAX`` queued records
    make ``produce`` wait for the hand-over (backpressure)."""

    _async_cls = _producer.Producer
    _HANDOVER_MAX = 10_000

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._queued: list = []
        self._queued_lock = threading.Lock()
        self._handover_lock = self._portal.call(anyio.Lock)

    def produce(self, topic: str, value=None, key=None, headers=None, partition=None, timestamp_ms=None,
                on_delivery=None) -> concurrent.futures.Future:
        """Queue one record; the Future resolves to its RecordMetadata. ``on_delivery(md, err)``
        runs in the client's thread."""
        fut: concurrent.futures.Future = concurrent.futures.Future()
        with self._queued_lock:
            self._queued.append(((topic, value, key, headers, partition, timestamp_ms), fut, on_delivery))
            first, backlog = len(self._queued) == 1, len(self._queued)
        if backlog > self._HANDOVER_MAX:
            self._portal.call(self._hand_over)
        elif first:
            self._portal.start_task_soon(self._hand_over)
        return fut

    async def _hand_over(self) -> None:
        async with self._handover_lock:
            with self._queued_lock:
                batch, self._queued = self._queued, []
            for args, fut, on_delivery in batch:
                try:
                    delivery = await self._async.produce(*args)
                except Exception as exc:  # reported on the record's own future
                    fut.set_exception(exc)
                    if on_delivery is not None:
                        on_delivery(None, exc)
                    continue
                delivery.add_callback(_resolver(fut, on_delivery))

    def send(self, topic: str, value=None, key=None, headers=None, partition=None, timestamp_ms=None):
        """Send one record and wait until it is delivered (or raise its error)."""
        return self.produce(topic, value, key, headers, partition, timestamp_ms).result()

    def flush(self, timeout: float | None = None) -> None:
        self._portal.call(self._hand_over)
        self._portal.call(self._async.flush)

    def close(self) -> None:
        if self._open:
            self._portal.call(self._hand_over)
        super().close()


def _resolver(fut: concurrent.futures.Future, on_delivery):
    def done(md, err):
        if err is not None:
            fut.set_exception(err)
        else:
            fut.set_result(md)
        if on_delivery is not None:
            on_delivery(md, err)
    return done


class Consumer(_Facade):
    """Blocking consumer: ``poll(timeout)``, ``for record in consumer``."""

    _async_cls = _consumer.Consumer

    def __iter__(self):
        while self._open:
            for rec in self._portal.call(lambda: self._async.poll(1.0)):
                yield rec


class Admin(_Facade):
    _async_cls = _admin.Admin

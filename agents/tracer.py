"""The tracer SDK: an agent's tool calls, LLM calls and decisions as events on a topic.

    from kafkito.agents import Tracer

    tracer = Tracer("127.0.0.1:9092", "agent-events", agent_id="planner")
    with tracer.session("checkout-42") as s:
        s.decision("search before answering", confidence=0.8)
        with s.tool_call("search", input={"q": "blue shoes"}) as call:
            call.output = search("blue shoes")
        with s.llm_call(model="gpt-x", input=prompt) as call:
            call.output, call.cost_usd, call.tokens = answer, 0.0031, {"input": 900, "output": 120}

    @tracer.tool("fetch")            # sync or async functions; input, output, latency, errors
    async def fetch(url): ...
    tracer.close()                   # or: with Tracer(...) as tracer / async with Tracer(...)

Theory of operation. Recording never blocks and never awaits: an event is appended to an
in-memory buffer and a sender thread (one per Tracer) produces it with kafkito's client
(``acks=all``, idempotence on), keyed by the session id, so the same code works in async
and blocking agents. Nesting comes from ``contextvars``: a span (``tool_call``,
``llm_call``, a decorated function) sets itself as the current parent, so anything recorded
inside it (in the same task or thread) gets its ``parent_event_id``; an asyncio or trio
task inherits the parent it was started under. A span's event is recorded when it ends
(with its latency, output and error), with the start time as its ``timestamp``; children
therefore reach the log before their parent, and replay nests them by the links. Each
event carries a W3C ``traceparent`` header (one trace id per session, the event's span id).

*Broker unreachable.* The sender keeps the unsent events and retries with backoff. The
buffer is bounded: ``buffer_max_events`` events (recording one more raises
``TracerBufferFull``) and ``buffer_max_age_s`` (once the oldest unsent event is that old,
the tracer fails: every later call raises ``TracerError`` naming the broker and how many
events were not delivered). Delivery is at least once: a batch whose outcome is unknown is
sent again after a reconnect.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextvars
import functools
import inspect
import json
import threading
import time
import uuid
from typing import Any, Callable

from .errors import SourceError, leaf_exception

__all__ = ["Span", "Tracer", "TracerBufferFull", "TracerError", "TracerSession"]

BUFFER_MAX_EVENTS = 10_000
BUFFER_MAX_AGE_S = 60.0
SEND_BATCH_MAX = 500
RETRY_BACKOFF_S = (0.1, 2.0)  # first and largest pause between attempts to reach the broker
DELIVERY_WAIT_S = 30.0

_session: contextvars.ContextVar["TracerSession | None"] = contextvars.ContextVar("kafkito_session", default=None)
_parent: contextvars.ContextVar[str | None] = contextvars.ContextVar("kafkito_parent", default=None)


class TracerError(SourceError):
    """The tracer cannot record (the broker was unreachable too long, or it is closed)."""


class TracerBufferFull(TracerError):
    """``buffer_max_events`` events are waiting for the broker already."""


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return json.loads(json.dumps(value, default=repr))


class Span:
    """One step being recorded; set ``output``, ``cost_usd``, ``tokens``, ``reasoning``,
    ``confidence`` or ``payload[...]`` on it before it ends. An exception leaving the span
    is recorded as its ``error`` (type and message) and propagates."""

    def __init__(self, session: "TracerSession", event_type: str, tool: str | None = None,
                 input: Any = None, model: str | None = None, reasoning: str | None = None,
                 confidence: float | None = None):
        self.session = session
        self.event_type, self.tool, self.input, self.model = event_type, tool, input, model
        self.reasoning, self.confidence = reasoning, confidence
        self.output: Any = None
        self.cost_usd: float | None = None
        self.tokens: Any = None
        self.payload: dict = {}
        self.event_id = uuid.uuid4().hex
        self._token = None
        self._started_ms = 0
        self._t0 = 0.0

    def __enter__(self) -> "Span":
        self._started_ms = self.session.tracer.clock_ms()
        self._t0 = time.perf_counter()
        self._parent = _parent.get()
        self._token = _parent.set(self.event_id)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        _parent.reset(self._token)
        latency = round((time.perf_counter() - self._t0) * 1000, 3)
        payload = dict(self.payload)
        for name, value in (("tool", self.tool), ("input", self.input), ("output", self.output),
                            ("cost_usd", self.cost_usd), ("tokens", self.tokens)):
            if value is not None:
                payload[name] = _jsonable(value)
        payload["latency_ms"] = latency
        if exc is not None:
            payload["error"] = {"type": exc_type.__name__, "message": str(exc)}
        self.session._emit(self.event_type, payload, event_id=self.event_id, parent=self._parent,
                           timestamp=self._started_ms, model=self.model,
                           reasoning=self.reasoning, confidence=self.confidence)

    async def __aenter__(self) -> "Span":
        return self.__enter__()

    async def __aexit__(self, exc_type, exc, tb) -> None:
        self.__exit__(exc_type, exc, tb)


class TracerSession:
    """One agent session: the key of its events. Enter it (``with``/``async with``) to make
    it the current session for decorated functions; ``session_end`` is recorded on exit."""

    def __init__(self, tracer: "Tracer", session_id: str):
        self.tracer = tracer
        self.session_id = session_id
        self.trace_id = uuid.uuid5(uuid.NAMESPACE_URL, f"kafkito-session:{session_id}").hex
        self._tokens: list = []

    # ------------------------------------------------------------------- recording
    def tool_call(self, tool: str, input: Any = None) -> Span:
        return Span(self, "tool_call", tool=tool, input=input)

    def llm_call(self, model: str | None = None, input: Any = None) -> Span:
        return Span(self, "llm_call", input=input, model=model)

    def decision(self, reasoning: str, *, output: Any = None, confidence: float | None = None,
                 model: str | None = None) -> str:
        """Record a decision now; returns its event id."""
        payload = {} if output is None else {"output": _jsonable(output)}
        return self._emit("decision", payload, reasoning=reasoning, confidence=confidence, model=model)

    def error(self, error_type: str, message: str = "", **payload) -> str:
        payload = {"error": {"type": error_type, "message": message}, **payload}
        return self._emit("error", payload)

    def event(self, event_type: str, **payload) -> str:
        """Any other event type."""
        return self._emit(event_type, {k: _jsonable(v) for k, v in payload.items()})

    def _emit(self, event_type: str, payload: dict, *, event_id: str | None = None,
              parent: str | None | type = ..., timestamp: int | None = None, model=None,
              reasoning=None, confidence=None) -> str:
        event_id = event_id or uuid.uuid4().hex
        if parent is ...:
            parent = _parent.get()
        context = {k: v for k, v in (("parent_event_id", parent), ("reasoning", reasoning),
                                     ("model", model), ("confidence", confidence)) if v is not None}
        ts = timestamp if timestamp is not None else self.tracer.clock_ms()
        event = {"event_id": event_id, "session_id": self.session_id, "agent_id": self.tracer.agent_id,
                 "timestamp": ts, "event_type": event_type, "payload": payload, "context": context}
        traceparent = f"00-{self.trace_id}-{event_id[:16]}-01"
        self.tracer._enqueue(self.session_id.encode(), json.dumps(event).encode(),
                             [("traceparent", traceparent.encode())], ts)
        return event_id

    # ------------------------------------------------------------------- scope
    def __enter__(self) -> "TracerSession":
        self._tokens.append(_session.set(self))
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        payload = {}
        if exc is not None:
            payload["error"] = {"type": exc_type.__name__, "message": str(exc)}
        self._emit("session_end", payload, parent=None)
        _session.reset(self._tokens.pop())

    async def __aenter__(self) -> "TracerSession":
        return self.__enter__()

    async def __aexit__(self, exc_type, exc, tb) -> None:
        self.__exit__(exc_type, exc, tb)


class Tracer:
    def __init__(self, bootstrap: str, topic: str, agent_id: str, *,
                 buffer_max_events: int = BUFFER_MAX_EVENTS, buffer_max_age_s: float = BUFFER_MAX_AGE_S,
                 clock_ms: Callable[[], int] | None = None, producer_config: dict | None = None):
        self.bootstrap, self.topic, self.agent_id = bootstrap, topic, agent_id
        self.buffer_max_events = buffer_max_events
        self.buffer_max_age_s = buffer_max_age_s
        self.clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        # Each attempt to reach the broker is bounded well inside the buffer's time limit.
        attempt_ms = max(1000, min(10_000, int(buffer_max_age_s * 500)))
        self.producer_config = {"acks": "all", "enable_idempotence": True,
                                "connect_timeout_ms": attempt_ms, "request_timeout_ms": attempt_ms,
                                "delivery_timeout_ms": int(DELIVERY_WAIT_S * 1000), **(producer_config or {})}
        self._buffer: collections.deque = collections.deque()  # (enqueued monotonic, key, value, headers, ts)
        self._cond = threading.Condition()
        self._failed: TracerError | None = None
        self._closing = False
        self._closed = False
        self.delivered = 0
        self._thread = threading.Thread(target=self._sender, name=f"kafkito-tracer-{agent_id}", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- public API
    def session(self, session_id: str) -> TracerSession:
        return TracerSession(self, session_id)

    def tool(self, name: str | None = None):
        """Decorator: each call of the function is a ``tool_call`` of the current session."""
        return self._decorator(lambda fn: ("tool_call", name or fn.__name__, None))

    def llm(self, model: str | None = None):
        """Decorator: each call is an ``llm_call`` (set cost/tokens through ``current_span()``)."""
        return self._decorator(lambda fn: ("llm_call", None, model))

    def flush(self, timeout_s: float = DELIVERY_WAIT_S) -> None:
        """Wait until every recorded event is delivered; TracerError if that cannot happen."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._buffer and self._failed is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TracerError(f"{len(self._buffer)} events not delivered to {self.bootstrap} "
                                      f"within {timeout_s:g} s")
                self._cond.wait(min(remaining, 0.1))
            if self._failed is not None:
                raise self._failed

    async def aflush(self, timeout_s: float = DELIVERY_WAIT_S) -> None:
        import anyio

        await anyio.to_thread.run_sync(self.flush, timeout_s)

    def close(self, timeout_s: float = DELIVERY_WAIT_S) -> None:
        """Deliver what is buffered (up to ``timeout_s``), then stop the sender."""
        if self._closed:
            return
        try:
            if self._failed is None:
                self.flush(timeout_s)
        finally:
            with self._cond:
                self._closing = True
                self._cond.notify_all()
            self._thread.join(timeout_s)
            self._closed = True

    async def aclose(self, timeout_s: float = DELIVERY_WAIT_S) -> None:
        import anyio

        await anyio.to_thread.run_sync(self.close, timeout_s)

    def __enter__(self) -> "Tracer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    async def __aenter__(self) -> "Tracer":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    # ---------------------------------------------------------------- internals
    def _decorator(self, describe):
        def wrap(fn):
            event_type, tool, model = describe(fn)

            def span_for(args, kwargs) -> Span:
                session = _session.get()
                if session is None or session.tracer is not self:
                    raise TracerError(f"{fn.__name__} was called outside a session: wrap it in "
                                      "`with tracer.session(session_id):`")
                call_input = {"args": list(args), "kwargs": kwargs} if kwargs else list(args)
                return Span(session, event_type, tool=tool, input=call_input, model=model)

            if inspect.iscoroutinefunction(fn):
                @functools.wraps(fn)
                async def async_wrapper(*args, **kwargs):
                    with span_for(args, kwargs) as span:
                        span.output = await fn(*args, **kwargs)
                        return span.output
                return async_wrapper

            @functools.wraps(fn)
            def wrapper(*args, **kwargs):
                with span_for(args, kwargs) as span:
                    span.output = fn(*args, **kwargs)
                    return span.output
            return wrapper
        return wrap

    def _enqueue(self, key: bytes, value: bytes, headers: list, ts: int) -> None:
        with self._cond:
            if self._failed is not None:
                raise self._failed
            if self._closing or self._closed:
                raise TracerError("the tracer is closed")
            if len(self._buffer) >= self.buffer_max_events:
                raise TracerBufferFull(f"{len(self._buffer)} events are waiting for the broker at "
                                       f"{self.bootstrap} (buffer_max_events={self.buffer_max_events})")
            self._buffer.append((time.monotonic(), key, value, headers, ts))
            self._cond.notify_all()

    def _wait_delivery(self, future, oldest: float) -> None:
        """Wait for one delivery, but never past the buffer's time limit (the client's own
        delivery timeout may be longer)."""
        while True:
            try:
                future.result(0.2)
                return
            except concurrent.futures.TimeoutError:
                if time.monotonic() - oldest > self.buffer_max_age_s:
                    raise TimeoutError("no delivery within buffer_max_age_s") from None

    def _sender(self) -> None:
        producer = None
        backoff = RETRY_BACKOFF_S[0]
        last_error = "no attempt yet"
        try:
            while True:
                with self._cond:
                    while not self._buffer and not self._closing:
                        self._cond.wait()
                    if not self._buffer and self._closing:
                        return
                    batch = [self._buffer[i] for i in range(min(SEND_BATCH_MAX, len(self._buffer)))]
                try:
                    if producer is None:
                        from kafkito.client.blocking import Producer

                        producer = Producer(self.bootstrap, **self.producer_config)
                    futures = [producer.produce(self.topic, value=v, key=k, headers=h, timestamp_ms=ts)
                               for _t, k, v, h, ts in batch]
                    for f in futures:
                        self._wait_delivery(f, batch[0][0])
                except Exception as e:  # the broker is unreachable or refused: keep and retry
                    e = leaf_exception(e)
                    last_error = f"{type(e).__name__}: {e}"
                    if producer is not None:
                        try:
                            producer.close()
                        except Exception:
                            pass
                        producer = None
                    with self._cond:
                        oldest = self._buffer[0][0] if self._buffer else time.monotonic()
                        if time.monotonic() - oldest > self.buffer_max_age_s or self._closing:
                            self._failed = TracerError(
                                f"the broker at {self.bootstrap} was unreachable for more than "
                                f"{self.buffer_max_age_s:g} s ({last_error}); {len(self._buffer)} "
                                "events were not delivered")
                            self._cond.notify_all()
                            return
                        self._cond.wait(backoff)
                    backoff = min(backoff * 2, RETRY_BACKOFF_S[1])
                    continue
                backoff = RETRY_BACKOFF_S[0]
                with self._cond:
                    for _ in batch:
                        self._buffer.popleft()
                    self.delivered += len(batch)
                    self._cond.notify_all()
        finally:
            if producer is not None:
                try:
                    producer.close()
                except Exception:
                    pass


def current_span_parent() -> str | None:
    """The event id new events are recorded under in this context (None at the top)."""
    return _parent.get()

"""What every client command shares: common flags, running a coroutine with one-line
errors, JSON/text output, and a progress line on stderr (only when it is a terminal)."""

from __future__ import annotations

import base64
import json
import signal
import sys
import time

import anyio

from ..errors import KafkaError

__all__ = ["add_common", "decode_bytes", "emit", "emit_json", "guarded", "interruptible", "Progress"]


def add_common(parser) -> None:
    parser.add_argument("--bootstrap-server", "-b", default="127.0.0.1:9092", metavar="HOST:PORT[,HOST:PORT]",
                        help="broker(s) to start from (default 127.0.0.1:9092)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    parser.add_argument("--request-timeout-ms", type=int, default=10000,
                        help="how long to wait for a broker before giving up (default 10000)")


def client_kwargs(args) -> dict:
    return {"request_timeout_ms": args.request_timeout_ms,
            "connect_timeout_ms": min(args.request_timeout_ms, 10000)}


def guarded(fn, args) -> int:
    """Run ``fn(args)`` (a coroutine function) and turn failures into one line on stderr."""
    try:
        return anyio.run(fn, args) or 0
    except KeyboardInterrupt:
        return 130
    except KafkaError as exc:
        print(f"kafkito: {_one_line(exc)}", file=sys.stderr)
        return 1
    except BaseExceptionGroup as group:  # noqa: F821 - Python 3.11
        for exc in group.exceptions:
            if isinstance(exc, KafkaError):
                print(f"kafkito: {_one_line(exc)}", file=sys.stderr)
                return 1
        raise
    except (ValueError, OSError) as exc:
        print(f"kafkito: {exc}", file=sys.stderr)
        return 1


def _one_line(exc: KafkaError) -> str:
    text = exc.message or exc.name
    if exc.name == "NETWORK_EXCEPTION":
        return text.splitlines()[0]
    return f"{text} ({exc.name})" if exc.message else text


def decode_bytes(data: bytes | None):
    """UTF-8 text when it decodes, else {"base64": ...}; None stays None (JSON output)."""
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode()}


def emit_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")


def emit(args, payload, lines) -> None:
    """One command's answer: ``payload`` as JSON with ``--format json``, else ``lines``."""
    if args.format == "json":
        emit_json(payload)
    else:
        for line in lines:
            print(line)


async def interruptible(main, *args):
    """Run ``main(*args)`` until it ends or SIGINT/SIGTERM arrives; True if interrupted.
    The signal cancels ``main`` cleanly, so its ``async with`` blocks close (and commit)."""
    interrupted = False
    async with anyio.create_task_group() as tg:
        async def watch():
            nonlocal interrupted
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    interrupted = True
                    work.cancel()
                    return

        work = anyio.CancelScope()
        tg.start_soon(watch)
        with work:
            await main(*args)
        tg.cancel_scope.cancel()
    return interrupted


class Progress:
    """``done/total`` on one stderr line, redrawn at most 5 times a second; silent unless
    stderr is a terminal (so pipes and logs stay clean)."""

    def __init__(self, label: str, total: int | None = None, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.label = label
        self.total = total
        self.done = 0
        self._drawn = 0.0

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and now - self._drawn > 0.2:
            self._drawn = now
            if self.total:
                pct = min(100.0, 100.0 * self.done / self.total)
                bar = "#" * int(pct / 5)
                self.stream.write(f"\r{self.label} [{bar:<20}] {self.done}/{self.total} ({pct:.0f}%)")
            else:
                self.stream.write(f"\r{self.label} {self.done}")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\n")
            self.stream.flush()

"""``kafkito replay | diff | sessions | watch``: agent sessions from the command line.

Each command works against any Kafka-compatible broker (it scans only what it must: the
partition a session's key hashes to, or every partition for ``sessions``) and, against
kafkito with ``key.index.enable``, reads one session through the broker's key index over
HTTP (source.py). Text by default, ``--format json`` for programs.

Exit codes: 0 done; 1 ``diff`` found a divergence; 2 bad arguments; 3 the topic or the
session does not exist, or the topic holds nothing to analyse; 4 no broker could be
reached. Messages go to stderr, one line, no traceback.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time

from kafkito.records.jsonview import parse_time_ms

from . import diff as diff_mod
from . import patterns, timeline
from .errors import SourceError

__all__ = ["add_commands"]

EXIT_DIVERGED, EXIT_USAGE, EXIT_NOT_FOUND = 1, 2, 3
WATCH_EXEC_TIMEOUT_S = 30.0  # an --exec command running longer is killed (and reported)
PROGRESS_INTERVAL_S = 0.2
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_duration_ms(raw: str) -> int:
    """``90s``, ``15m``, ``2h``, ``7d``, ``500ms`` (a bare number is seconds)."""
    m = _DURATION.match(raw)
    if not m:
        raise argparse.ArgumentTypeError(f"expected a duration like 30s, 15m, 2h or 7d, got {raw!r}")
    unit = {"ms": 1, "s": 1000, None: 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}[m.group(2)]
    return int(float(m.group(1)) * unit)


def _time(raw: str) -> int:
    try:
        return parse_time_ms(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected epoch milliseconds or an ISO-8601 time, got {raw!r}") from None


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bootstrap-server", "-b", default="127.0.0.1:9092", metavar="HOST:PORT",
                   help="broker(s) to read from (default 127.0.0.1:9092)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                   help="give up on an unresponsive broker after this long (default 30)")


def _session_source(p: argparse.ArgumentParser) -> None:
    p.add_argument("--http", default="auto", metavar="auto|off|URL",
                   help="kafkito's HTTP listener for the key index (auto: the bootstrap host on "
                        "port 9080, falling back to a partition scan; off: always scan)")
    p.add_argument("--from", dest="from_ms", type=_time, metavar="TIME",
                   help="only events at or after TIME (epoch ms or ISO-8601)")
    p.add_argument("--to", dest="to_ms", type=_time, metavar="TIME",
                   help="only events at or before TIME")


def add_commands(sub) -> None:
    """Register the commands on the ``kafkito`` parser's subparsers (broker/cli.py)."""
    p = sub.add_parser("replay", help="one agent session as a timeline tree, with totals")
    p.add_argument("topic")
    p.add_argument("session")
    p.add_argument("--last", type=int, metavar="N", help="only the newest N events")
    _session_source(p)
    _common(p)
    p.set_defaults(run=_run(_replay))

    p = sub.add_parser("diff", help="align two sessions step by step and name the first divergence")
    p.add_argument("topic")
    p.add_argument("session_a")
    p.add_argument("session_b")
    _session_source(p)
    _common(p)
    p.set_defaults(run=_run(_diff))

    p = sub.add_parser("sessions", help="patterns across sessions: rankings, retry loops, errors")
    p.add_argument("topic")
    p.add_argument("--since", type=parse_duration_ms, metavar="DURATION",
                   help="only events of the last DURATION (e.g. 2h, 7d)")
    p.add_argument("--retry-threshold", type=int, default=patterns.DEFAULT_RETRY_THRESHOLD,
                   metavar="N", help="a tool called more than N times in a session is a retry "
                                     f"loop (default {patterns.DEFAULT_RETRY_THRESHOLD})")
    p.add_argument("--top", type=int, default=10, metavar="K", help="sessions per ranking (default 10)")
    _common(p)
    p.set_defaults(run=_run(_sessions))

    p = sub.add_parser("watch", help="follow a topic live and alert when a session crosses a threshold")
    p.add_argument("topic")
    p.add_argument("--max-cost", type=float, metavar="USD", help="alert when a session's cost exceeds USD")
    p.add_argument("--max-tool-calls", type=int, metavar="N", help="alert when a session makes more than N tool calls")
    p.add_argument("--exec", dest="exec_cmd", metavar="CMD",
                   help="run CMD (through the shell) for each alert, the alert as JSON on stdin")
    p.add_argument("--from-beginning", action="store_true",
                   help="also judge the events already in the topic (default: only new ones)")
    p.add_argument("--duration", type=parse_duration_ms, metavar="DURATION",
                   help="stop after DURATION (default: until Ctrl-C)")
    _common(p)
    p.set_defaults(run=_run(_watch))


def _run(command):
    def run(args: argparse.Namespace) -> int:
        import anyio

        try:
            return anyio.run(command, args)
        except SourceError as e:
            print(f"kafkito {args.command}: {e}", file=sys.stderr)
            return e.exit_code
        except KeyboardInterrupt:
            return 130

    return run


def _emit(args, text: str, obj) -> None:
    if args.format == "json":
        sys.stdout.write(json.dumps(obj, sort_keys=False) + "\n")
    else:
        sys.stdout.write(text)
    sys.stdout.flush()


async def _read(args, session: str):
    from .source import read_session

    got = await read_session(args.bootstrap_server, args.topic, session, http=args.http,
                             from_ms=args.from_ms, to_ms=args.to_ms,
                             last=getattr(args, "last", None), timeout_s=args.timeout)
    if got.note:
        print(f"kafkito {args.command}: {got.note}", file=sys.stderr)
    if not got.events:
        where = (f"partition {got.partition}" if got.partition is not None else "its partition")
        window = " in the given time range" if args.from_ms is not None or args.to_ms is not None else ""
        raise _NotFound(f"session {session!r} not found in topic {args.topic!r}{window} "
                        f"(searched {where} via {got.via})")
    _warn_raw(args, got.events)
    return got


class _NotFound(SourceError):
    exit_code = EXIT_NOT_FOUND


def _warn_raw(args, events) -> None:
    raw = sum(1 for e in events if e.data is None)
    if raw:
        print(f"kafkito {args.command}: {raw} record(s) are not agent events (not JSON with "
              "event_type); shown raw", file=sys.stderr)


async def _replay(args) -> int:
    got = await _read(args, args.session)
    obj = timeline.to_json(args.session, got.events)
    obj["via"] = got.via
    _emit(args, timeline.render_text(args.session, got.events), obj)
    return 0


async def _diff(args) -> int:
    a = (await _read(args, args.session_a)).events
    b = (await _read(args, args.session_b)).events
    result = diff_mod.diff_sessions(a, b)
    _emit(args, diff_mod.render_text(args.session_a, args.session_b, result),
          diff_mod.to_json(args.session_a, args.session_b, result))
    return EXIT_DIVERGED if result.divergence is not None else 0


class _Progress:
    """A progress line on stderr, only when stderr is a terminal."""

    def __init__(self, label: str):
        self.label = label
        self.enabled = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < PROGRESS_INTERVAL_S and done < total:
            return
        self.last = now
        pct = 100 * done // total if total else 100
        bar = "#" * (pct // 4)
        sys.stderr.write(f"\r{self.label} [{bar:<25}] {pct:3d}% {done}/{total} records")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


async def _sessions(args) -> int:
    since = None if args.since is None else int(time.time() * 1000) - args.since
    from .source import scan_topic

    found = patterns.Patterns(retry_threshold=args.retry_threshold, top=args.top)
    await scan_topic(args.bootstrap_server, args.topic, found.observe, since_ms=since,
                     timeout_s=args.timeout, progress=_Progress(f"scanning {args.topic}"))
    if not found.sessions:
        window = " in the given time range" if since is not None else ""
        raise _NotFound(f"topic {args.topic!r} holds no events{window}")
    if found.not_events:
        print(f"kafkito sessions: {found.not_events} record(s) are not agent events (not JSON "
              "with event_type); counted as raw", file=sys.stderr)
    _emit(args, found.render_text(), found.to_json())
    return 0


async def _watch(args) -> int:
    import anyio

    from .source import follow_topic

    if args.max_cost is None and args.max_tool_calls is None:
        print("kafkito watch: give --max-cost and/or --max-tool-calls", file=sys.stderr)
        return EXIT_USAGE
    w = patterns.Watch(args.max_cost, args.max_tool_calls)
    stop = None if args.duration is None else args.duration / 1000

    async def on_event(e) -> None:
        for alert in w.observe(e):
            payload = alert.to_json()
            _emit(args, alert.line() + "\n", {"alert": payload})
            if args.exec_cmd:
                code = await anyio.to_thread.run_sync(_exec, args.exec_cmd, json.dumps(payload))
                if code != 0:
                    print(f"kafkito watch: --exec command exited {code} for the alert on "
                          f"session {alert.session}", file=sys.stderr)

    await follow_topic(args.bootstrap_server, args.topic, on_event, from_beginning=args.from_beginning,
                       timeout_s=args.timeout, stop_after_s=stop)
    return 0


def _exec(cmd: str, stdin: str) -> int:
    try:
        return subprocess.run(cmd, shell=True, input=stdin.encode(), timeout=WATCH_EXEC_TIMEOUT_S).returncode
    except subprocess.TimeoutExpired:
        return -1


def main(argv: list[str] | None = None) -> int:
    """The commands on their own (``python -m kafkito.agents.cli``); ``kafkito`` has them too."""
    parser = argparse.ArgumentParser(prog="kafkito")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())

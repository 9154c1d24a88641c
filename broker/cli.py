"""The ``kafkito`` command line.

``kafkito serve`` starts a broker in the foreground and logs one ``listening on ...``
line when clients can connect. SIGINT and SIGTERM shut it down cleanly. Every setting
can come from ``--set name=value``, a ``KAFKITO_*`` environment variable or a TOML file
(``--config``); a bad one exits with status 2 and a message naming it.

``kafkito config`` prints every setting with its environment variable and default.

``kafkito verify DIR`` CRC-checks every batch of every partition of a data directory without
changing it (storage/verify.py), prints what is damaged and exits 1 if anything is.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

import trio

from .config import ConfigError, describe_settings, load_config, parse_set_flags
from .server import Broker, BrokerShutdownError, BrokerStartError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kafkito", description="A Kafka-compatible log broker.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run a broker in the foreground")
    serve.add_argument("--data-dir", help="data directory (log.dirs; default ./kafkito-data)")
    serve.add_argument("--listen", metavar="HOST:PORT", help="listener (listeners; default 127.0.0.1:9092)")
    serve.add_argument("--advertised-listener", metavar="HOST:PORT",
                       help="address clients are told to use (advertised.listeners)")
    serve.add_argument("--http", metavar="HOST:PORT|off",
                       help="HTTP listener (http.listeners; default 127.0.0.1:9080; off disables it)")
    serve.add_argument("--remote-storage", metavar="URL",
                       help="tiered storage: file:///path or s3://bucket/prefix (sets "
                            "remote.log.storage.url and remote.log.storage.system.enable)")
    serve.add_argument("--config", metavar="FILE.toml", help="TOML file of settings")
    serve.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                       help="a setting by its Kafka name, e.g. --set num.partitions=4 (repeatable)")
    serve.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    sub.add_parser("config", help="list every setting, its environment variable and default")
    verify = sub.add_parser("verify", help="CRC-check every segment of a data directory (read-only)")
    verify.add_argument("data_dir", metavar="DIR")
    from kafkito.client.cli import register  # topics, produce, consume, groups, mirror

    register(sub)
    from kafkito.agents.cli import add_commands as add_agent_commands

    add_agent_commands(sub)  # replay, diff, sessions, watch (each sets args.run)
    return parser


def _verify(data_dir: str) -> int:
    from kafkito.storage.verify import verify_data_dir

    storage_log = logging.getLogger("kafkito.storage")
    level = storage_log.level
    storage_log.setLevel(logging.CRITICAL)  # we print the findings ourselves
    try:
        results = verify_data_dir(data_dir)
    except OSError as exc:
        print(f"kafkito: cannot verify {data_dir}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    finally:
        storage_log.setLevel(level)  # main() may run in-process (tests, embedding)
    damaged = 0
    for r in results:
        print(f"{r.name}: {r.segments} segments, {r.batches} batches, {r.bytes} bytes: "
              f"{'ok' if r.ok else 'DAMAGED'}")
        for d in r.damage:
            print(f"  damaged: {d.describe()}")
        for problem in r.problems:
            print(f"  damaged: {problem}")
        if r.unflushed_tail is not None:
            print(f"  note: incomplete tail, maybe unflushed (recovery cuts it): "
                  f"{r.unflushed_tail.describe()}")
        for name in r.quarantined:
            print(f"  note: {name} holds bytes an earlier recovery cut out")
        damaged += not r.ok
    print(f"{len(results)} partitions checked, {damaged} damaged")
    return 1 if damaged else 0


def build_config(args: argparse.Namespace):
    overrides = parse_set_flags(args.set)
    for flag, name in (("data_dir", "log.dirs"), ("listen", "listeners"),
                       ("advertised_listener", "advertised.listeners"), ("http", "http.listeners")):
        value = getattr(args, flag)
        if value is not None:
            overrides.append((name, value))
    if getattr(args, "remote_storage", None):
        overrides += [("remote.log.storage.url", args.remote_storage),
                      ("remote.log.storage.system.enable", "true")]
    return load_config(config_file=args.config, overrides=overrides, origin="command line")


async def _serve(broker: Broker) -> None:
    """Run the broker until it stops; the first SIGINT/SIGTERM asks for a clean stop."""
    failure: BaseException | None = None
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def watch_signals() -> None:
                async for signum in signals:
                    logging.getLogger("kafkito.broker").info("received %s", signal.Signals(signum).name)
                    broker.stop()

            nursery.start_soon(watch_signals)
            try:
                await broker.run()
            except (BrokerStartError, BrokerShutdownError) as exc:
                failure = exc
            nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if getattr(args, "run", None) is not None:  # commands that bring their own runner
        return args.run(args)
    from kafkito.client.cli import run as run_client_command

    status = run_client_command(args)
    if status is not None:
        return status
    if args.command == "verify":
        return _verify(args.data_dir)
    if args.command == "config":
        for name, env, default, doc in describe_settings():
            print(f"{name:40} {env:45} {default:>16}  {doc}")
        return 0
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    try:
        config = build_config(args)
    except ConfigError as exc:
        print(f"kafkito: invalid configuration: {exc}", file=sys.stderr)
        return 2
    broker = Broker(config)
    try:
        trio.run(_serve, broker)
    except (BrokerStartError, BrokerShutdownError) as exc:
        print(f"kafkito: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

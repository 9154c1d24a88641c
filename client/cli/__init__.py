"""The client commands of the ``kafkito`` command line: topics, produce, consume, groups, mirror.

broker/cli.py owns the ``kafkito`` entry point and calls ``register(subparsers)`` to add
these; each command is a module with ``add_parser(subparsers)`` and ``run(args) -> int``.
Every command takes ``--bootstrap-server`` (default 127.0.0.1:9092) and ``--format
text|json``; errors print one line ``kafkito: ...`` on stderr and exit 1 (2 for bad usage).
"""

from __future__ import annotations

from . import consume, groups, mirror, produce, topics

COMMANDS = {"topics": topics, "produce": produce, "consume": consume, "groups": groups, "mirror": mirror}

__all__ = ["COMMANDS", "register", "run"]


def register(subparsers) -> None:
    for module in COMMANDS.values():
        module.add_parser(subparsers)


def run(args) -> int | None:
    """Run a client command; None when ``args.command`` is not one of ours."""
    module = COMMANDS.get(args.command)
    if module is None:
        return None
    from .common import guarded

    return guarded(module.run, args)

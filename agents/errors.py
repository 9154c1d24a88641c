"""The errors of kafkito.agents' readers and SDK, each with the CLI's exit code."""

from __future__ import annotations

__all__ = ["BrokerUnreachable", "SourceError", "TopicNotFound", "leaf_exception"]


class SourceError(Exception):
    """Reading events failed; ``str(self)`` is the one-line message the CLI prints."""

    exit_code = 1


class TopicNotFound(SourceError):
    exit_code = 3


class BrokerUnreachable(SourceError):
    exit_code = 4


def leaf_exception(e: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups: the client's task groups may
    wrap the cause of a failed start."""
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    return e

"""The client's exceptions: one class per Kafka error code, plus the client's own failures.

Theory of operation. Every error a broker answers with is an ``ErrorCode`` (protocol/);
``error_for(code, message)`` turns it into an instance of that code's own class, named
after Kafka's exception (``NOT_LEADER_OR_FOLLOWER`` → ``NotLeaderOrFollowerError``), so a
caller can ``except UnknownTopicOrPartitionError`` or inspect ``err.code``, ``err.name``
and ``err.retriable`` on the common base ``KafkaError``. The retriable flag is Kafka's
(``ErrorCode.retriable``): the client itself retries those, after refreshing metadata
where the error says the cluster moved.

Failures that never reached a broker's answer have classes of their own:
``KafkaConnectionError`` (retriable: the next attempt may find the broker back) and
``KafkaTimeoutError`` (an operation ran out of its ``*.timeout.ms``).
"""

from __future__ import annotations

from kafkito.protocol import ErrorCode

__all__ = [
    "KafkaConnectionError",
    "KafkaError",
    "KafkaTimeoutError",
    "IllegalStateError",
    "error_for",
    "raise_for",
]


class KafkaError(Exception):
    """Base of every client exception. ``code`` is Kafka's error code (-1 when the error is
    the client's own), ``name`` its Kafka name, ``retriable`` whether retrying may help."""

    code: int = -1
    name: str = "KAFKA_ERROR"
    retriable: bool = False

    def __init__(self, message: str | None = None) -> None:
        self.message = message
        super().__init__(f"{self.name}: {message}" if message else self.name)


class KafkaConnectionError(KafkaError):
    name = "NETWORK_EXCEPTION"
    code = int(ErrorCode.NETWORK_EXCEPTION)
    retriable = True


class KafkaTimeoutError(KafkaError):
    name = "REQUEST_TIMED_OUT"
    code = int(ErrorCode.REQUEST_TIMED_OUT)
    retriable = True


class IllegalStateError(KafkaError):
    """The client was used in a way its state does not allow (e.g. poll() with nothing
    assigned or subscribed, send() after close())."""

    name = "ILLEGAL_STATE"


def _class_name(name: str) -> str:
    words = name.lower().split("_")
    base = "".join(w.capitalize() for w in words)
    return base if base.endswith("Error") else base + "Error"


_BY_CODE: dict[int, type[KafkaError]] = {}


def _make_classes() -> None:
    module = globals()
    for code in ErrorCode:
        if code == ErrorCode.NONE:
            continue
        if code == ErrorCode.NETWORK_EXCEPTION:
            cls = KafkaConnectionError
        elif code == ErrorCode.REQUEST_TIMED_OUT:
            cls = KafkaTimeoutError
        else:
            cls = type(_class_name(code.name), (KafkaError,), {
                "code": int(code), "name": code.name, "retriable": code.retriable,
                "__doc__": f"Kafka error {int(code)} {code.name}.", "__module__": __name__,
            })
            module[cls.__name__] = cls
            __all__.append(cls.__name__)
        _BY_CODE[int(code)] = cls


_make_classes()


def error_for(code: int, message: str | None = None) -> KafkaError:
    """The exception for a Kafka error code (a bare ``KafkaError`` for a code newer than
    this client's table)."""
    cls = _BY_CODE.get(int(code))
    if cls is None:
        err = KafkaError(message or f"error code {code}")
        err.code = int(code)
        err.name = f"UNKNOWN_ERROR_{code}"
        return err
    return cls(message)


def raise_for(code: int, message: str | None = None) -> None:
    """Raise the exception for ``code`` unless it is NONE (0)."""
    if code:
        raise error_for(code, message)

"""kafkito.agents: agent sessions on a log: the event envelope, the tracer SDK, and the
analysis behind ``kafkito replay``, ``diff``, ``sessions`` and ``watch``.

Modules: ``envelope`` (the event format), ``tracer`` (the SDK), ``timeline`` / ``diff`` / ``patterns`` (pure
analysis), ``source`` (reading one session: the broker's key index over HTTP, else a scan
of the partition the key hashes to), ``cli`` (the commands).
"""

from .envelope import Event, parse_event
from .tracer import Tracer, TracerBufferFull, TracerError

__all__ = ["Event", "Tracer", "TracerBufferFull", "TracerError", "parse_event"]

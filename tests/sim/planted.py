"""Bugs planted on purpose, to show the simulation finds them (a test-only build).

Each is a monkeypatch over the real code, active only inside ``planted(name)``; the
simulation turns one on with ``--plant NAME`` or ``KAFKITO_SIM_PLANT=NAME``:

* ``ack_before_fsync``: Produce answers acks=all without waiting for the fsync (the
  flush wait returns at once), so a power loss can take acknowledged records;
* ``recovery_deletes_later_segment``: after an unclean shutdown, recovery deletes the last
  segment of a log that has more than one, as if a valid later segment were damage.
"""

from __future__ import annotations

import contextlib
import os

from kafkito.broker.partitions import PartitionManager
from kafkito.storage.log import PartitionLog

ENV = "KAFKITO_SIM_PLANT"


async def _no_flush_wait(self, targets) -> None:
    return None


def _recover_then_delete_last(original):
    def recover(self, clean: bool, *args, **kwargs) -> None:
        original(self, clean, *args, **kwargs)
        if not clean and len(self.segments) > 1:
            last = self.segments.pop()
            self._bases.pop()
            self.recovery.deleted_segments.append(last.base_offset)
            self._unlink_segment_now(last)
    return recover


PLANTS = {
    "ack_before_fsync": (PartitionManager, "flush_many", lambda original: _no_flush_wait),
    "recovery_deletes_later_segment": (PartitionLog, "_recover_segments", _recover_then_delete_last),
}


@contextlib.contextmanager
def planted(name: str | None):
    name = name or os.environ.get(ENV) or None
    if name is None:
        yield
        return
    owner, attr, make = PLANTS[name]
    original = getattr(owner, attr)
    setattr(owner, attr, make(original))
    try:
        yield
    finally:
        setattr(owner, attr, original)

"""ProducerIdManager: hands out producer ids that are never reused, even after a crash.

Ids are reserved in blocks of ``BLOCK_SIZE``: before the first id of a block is handed
out, the block's end is written (atomically, checksummed) to ``producer_ids`` in the
data directory. After a restart allocation resumes at the recorded end, so an id seen
in a log is never given to another producer. This is how Kafka's controller allocates
producer-id blocks, reduced to one broker.
"""

from __future__ import annotations

import os

from kafkito.storage import metafile
from kafkito.storage.fileio import DEFAULT_IO, FileIO

__all__ = ["ProducerIdManager"]

BLOCK_SIZE = 1000
_FILE = "producer_ids"


class ProducerIdManager:
    def __init__(self, data_dir: str, io: FileIO = DEFAULT_IO) -> None:
        self.path = os.path.join(data_dir, _FILE)
        self.io = io
        try:
            self._next = int(metafile.read(self.path, "producer-ids")["block_end"])
        except FileNotFoundError:
            self._next = 0
        self._block_end = self._next

    def next_id(self) -> int:
        if self._next >= self._block_end:
            block_end = self._next + BLOCK_SIZE
            # Recorded (fsync checked) before the block is used: if the write fails, no id of
            # it is handed out, so a restart can never hand one out again.
            metafile.write(self.path, "producer-ids", {"block_end": block_end}, self.io)
            self._block_end = block_end
        pid = self._next
        self._next += 1
        return pid

"""kafkito.storage.remote: the remote tier (tiered storage, KIP-405 with a built-in store).

Modules: ``store`` (the object-store interface; file:// and s3:// backends), ``manifest``
(the bucket layout and the per-partition manifest, the commit point of every change),
``reader`` (ranged reads through a bounded chunk cache with read-ahead), ``tier``
(``RemoteTier``: one partition's remote log, which ``PartitionLog`` consults below its
local log start), ``parquet`` (the Parquet cold tier), ``remote_log_manager``
(``RemoteLogManager``: offload passes with backoff, topic deletion, recovery from the
bucket). No trio here: the broker runs these calls in worker threads
(broker/remote_offload.py).
"""

from .manifest import PartitionManifest, RemoteSegment
from .remote_log_manager import RemoteLogManager
from .store import LocalDirStore, ObjectNotFoundError, ObjectStore, RemoteStorageError, open_store
from .tier import RemoteSlice, RemoteTier

__all__ = [
    "LocalDirStore", "ObjectNotFoundError", "ObjectStore", "PartitionManifest",
    "RemoteLogManager", "RemoteSegment", "RemoteSlice", "RemoteStorageError", "RemoteTier",
    "open_store",
]

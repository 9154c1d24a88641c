"""The object-store interface of the remote tier, and its one implementation over obstore.

Theory of operation.

The remote tier needs six verbs of an object store: put an object (atomically: readers see
the old object or the whole new one, never a torn one), get it, get a byte range of it, list
a prefix, delete some keys, and nothing else (no rename, no append, no conditional writes).
``ObjectStore`` names them; everything above this module speaks only these.

``open_store(url)`` builds one from a URL:

- ``file:///path`` (the default for tests and laptops): a directory; objects are files below
  it (``LocalDirStore``). A put writes a temporary file and renames it into place, so it is
  atomic. The uploader deletes local copies once the manifest naming them is put, so that
  put must also be durable, and so must everything it names: a put is durable (fsync of the
  file, rename, fsync of the directory) and first makes every earlier ``durable=False`` put
  durable too (a barrier). The uploader puts a segment's objects with ``durable=False`` and
  the manifest with the default, so the disk syncs each object once, with one barrier per
  manifest instead of a directory fsync per object. (obstore's own local store renames but
  never fsyncs, which is why it is not used here.)
- ``s3://bucket/prefix``: any S3-compatible endpoint. Credentials, region and endpoint come
  from the usual AWS settings (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
  ``AWS_SESSION_TOKEN``, ``AWS_REGION``/``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL`` or
  ``AWS_ENDPOINT_URL_S3``). Requests use path-style addressing (what MinIO and moto expect);
  set ``AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true`` for virtual-hosted buckets. An ``http://``
  endpoint is allowed (a local MinIO or moto); a large put is a multipart upload, which S3
  publishes only when it completes, so it is atomic too.

obstore (the Python binding of Rust's ``object_store`` crate) retries transient failures
itself; we cap its retries low (``RETRY_MAX``) so that an outage surfaces in seconds and the
offloader's own backoff (tier.py) takes over, logging the state change once.

Errors: a missing object raises ``ObjectNotFoundError``; any other failure raises
``RemoteStorageError`` (a ``KafkaStorageError``: the broker answers KAFKA_STORAGE_ERROR).
"""

from __future__ import annotations

import os
import threading
from datetime import timedelta
from typing import Iterable, Protocol
from urllib.parse import urlparse

from .. import metafile
from ..errors import KafkaStorageError
from ..fileio import DEFAULT_IO, FileIO

RETRY_MAX = 2  # obstore's own retries per request; the offloader backs off beyond that
REQUEST_TIMEOUT_S = 30
PUT_PART_BYTES = 8 << 20  # multipart part size of a streamed put


class RemoteStorageError(KafkaStorageError):
    """The object store failed (unreachable, refused, timed out)."""


class ObjectNotFoundError(RemoteStorageError):
    """The object does not exist."""


class ObjectStore(Protocol):
    url: str

    def put(self, key: str, data: bytes | memoryview | Iterable[bytes], *,
            durable: bool = True) -> None: ...
    def put_file(self, key: str, fd: int, size: int, *, durable: bool = True) -> None: ...
    def get(self, key: str) -> bytes: ...
    def get_range(self, key: str, start: int, end: int) -> bytes: ...
    def list(self, prefix: str) -> list[str]: ...
    def delete(self, keys: list[str]) -> None: ...


class ObstoreStore:
    """``ObjectStore`` over obstore, for s3:// (obstore's gs:// and az:// stores would take a
    few lines here; not offered untested)."""

    def __init__(self, url: str):
        import obstore  # imported here: a broker without a remote tier never loads it
        from obstore.store import from_url

        self._ob = obstore
        self.url = url
        parsed = urlparse(url)
        retry = {"max_retries": RETRY_MAX, "retry_timeout": timedelta(seconds=REQUEST_TIMEOUT_S),
                 "backoff": {"init_backoff": timedelta(milliseconds=50),
                             "max_backoff": timedelta(seconds=1), "base": 2}}
        if parsed.scheme in ("s3", "s3a"):
            endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
            client = {"timeout": timedelta(seconds=REQUEST_TIMEOUT_S),
                      "connect_timeout": timedelta(seconds=5)}
            if endpoint and endpoint.startswith("http://"):
                client["allow_http"] = True
            virtual = os.environ.get("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false").lower() == "true"
            self._store = from_url(url, client_options=client, retry_config=retry,
                                   virtual_hosted_style_request=virtual)
        else:
            raise ValueError(f"unsupported remote storage URL {url!r}: use file:///path or "
                             "s3://bucket/prefix")

    def _call(self, what: str, key: str, fn, *args, **kwargs):
        try:
            return fn(self._store, *args, **kwargs)
        except FileNotFoundError as e:
            raise ObjectNotFoundError(f"{self.url}: {key}: not found") from e
        except Exception as e:  # obstore raises its own error classes, all Exceptions
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise RemoteStorageError(f"{self.url}: {what} {key} failed: {first}") from e

    def put(self, key: str, data, *, durable: bool = True) -> None:
        # S3 acknowledges a put once it is stored: every put is durable.
        self._call("put", key, self._ob.put, key, data, chunk_size=PUT_PART_BYTES)

    def put_file(self, key: str, fd: int, size: int, *, durable: bool = True) -> None:
        """Bytes [0, size) of an open file, streamed (a multipart upload when large)."""
        def chunks():
            pos = 0
            while pos < size:
                data = os.pread(fd, min(PUT_PART_BYTES, size - pos), pos)
                if not data:
                    raise RemoteStorageError(f"{self.url}: put {key}: the file is shorter than {size}")
                yield data
                pos += len(data)
        self.put(key, chunks() if size > PUT_PART_BYTES else next(chunks(), b""))

    def get(self, key: str) -> bytes:
        return bytes(self._call("get", key, lambda s, k: self._ob.get(s, k).bytes(), key))

    def get_range(self, key: str, start: int, end: int) -> bytes:
        return bytes(self._call("get", key, self._ob.get_range, key, start=start, end=end))

    def list(self, prefix: str) -> list[str]:
        def run(store, p):
            return [m["path"] for batch in self._ob.list(store, p, chunk_size=1000) for m in batch]
        return self._call("list", prefix, run, prefix)

    def delete(self, keys: list[str]) -> None:
        for i in range(0, len(keys), 1000):
            chunk = keys[i:i + 1000]
            try:
                self._call("delete", chunk[0], self._ob.delete, chunk)
            except ObjectNotFoundError:  # the file store refuses a missing key; S3 does not
                for key in chunk:
                    try:
                        self._call("delete", key, self._ob.delete, key)
                    except ObjectNotFoundError:
                        pass

    def __repr__(self) -> str:
        return f"ObstoreStore({self.url!r})"


class LocalDirStore:
    """``ObjectStore`` over a local directory (``file:///path``); see the module docstring."""

    def __init__(self, url: str, io: FileIO = DEFAULT_IO):
        self.url = url
        self.root = os.path.abspath(urlparse(url).path)
        self.io = io
        os.makedirs(self.root, exist_ok=True)
        self._unsynced: set[str] = set()  # objects put with durable=False, not fsynced yet
        self._unsynced_dirs: set[str] = set()
        self._sync_lock = threading.Lock()

    def _path(self, key: str) -> str:
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"bad object key {key!r}")
        return os.path.join(self.root, key)

    def put(self, key: str, data, *, durable: bool = True) -> None:
        def write(fd: int) -> None:
            pos = 0
            for chunk in [data] if isinstance(data, (bytes, bytearray, memoryview)) else data:
                pos += self.io.pwritev(fd, [chunk], pos)
        self._put(key, write, durable)

    def put_file(self, key: str, fd: int, size: int, *, durable: bool = True) -> None:
        """Bytes [0, size) of an open file, copied in the kernel (copy_file_range: no
        trip through Python, and a reflink where the file system can)."""
        def write(out: int) -> None:
            pos = 0
            while pos < size:
                n = os.copy_file_range(fd, out, size - pos, pos, pos)
                if n == 0:
                    raise RemoteStorageError(f"{self.url}: put {key}: the file is shorter than {size}")
                pos += n
        self._put(key, write, durable)

    def _put(self, key: str, write, durable: bool) -> None:
        path = self._path(key)
        directory = os.path.dirname(path)
        try:
            os.makedirs(directory, exist_ok=True)
            if durable:
                self._sync_earlier_puts()
            tmp = path + metafile.TMP_SUFFIX
            fd = self.io.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            try:
                write(fd)
                if durable:
                    self.io.fsync(fd)
            finally:
                self.io.close(fd)
            self.io.rename(tmp, path)
            if durable:
                self.io.fsync_dir(directory)
            else:
                with self._sync_lock:
                    self._unsynced.add(path)
                    self._unsynced_dirs.add(directory)
        except OSError as e:
            raise RemoteStorageError(f"{self.url}: put {key} failed: {e.strerror or e}") from e

    def _sync_earlier_puts(self) -> None:
        """The barrier (module docstring): fsync every object put with durable=False so
        far, then their directories."""
        with self._sync_lock:
            paths, self._unsynced = self._unsynced, set()
            dirs, self._unsynced_dirs = self._unsynced_dirs, set()
        try:
            for path in paths:
                try:
                    fd = self.io.open(path, os.O_RDONLY)
                except FileNotFoundError:  # deleted meanwhile: nothing to make durable
                    continue
                try:
                    self.io.fsync(fd)
                finally:
                    self.io.close(fd)
            for d in dirs:
                if os.path.isdir(d):
                    self.io.fsync_dir(d)
        except OSError:
            with self._sync_lock:  # still not durable: the next barrier tries again
                self._unsynced |= paths
                self._unsynced_dirs |= dirs
            raise

    def get(self, key: str) -> bytes:
        try:
            with open(self._path(key), "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise ObjectNotFoundError(f"{self.url}: {key}: not found") from None
        except OSError as e:
            raise RemoteStorageError(f"{self.url}: get {key} failed: {e.strerror or e}") from e

    def get_range(self, key: str, start: int, end: int) -> bytes:
        try:
            fd = os.open(self._path(key), os.O_RDONLY)
        except FileNotFoundError:
            raise ObjectNotFoundError(f"{self.url}: {key}: not found") from None
        try:
            return os.pread(fd, end - start, start)
        finally:
            os.close(fd)

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix.rstrip("/")) if prefix else self.root
        out = []
        for dirpath, _dirs, names in os.walk(base):
            for name in names:
                if not name.endswith(metafile.TMP_SUFFIX):
                    out.append(os.path.relpath(os.path.join(dirpath, name), self.root))
        return sorted(out)

    def delete(self, keys: list[str]) -> None:
        dirs = set()
        for key in keys:
            path = self._path(key)
            try:
                os.unlink(path)
                dirs.add(os.path.dirname(path))
            except FileNotFoundError:
                pass
            except OSError as e:
                raise RemoteStorageError(f"{self.url}: delete {key} failed: {e.strerror or e}") from e
        for d in sorted(dirs, reverse=True):  # empty partition and topic directories go too
            while d != self.root and d.startswith(self.root):
                try:
                    os.rmdir(d)
                except OSError:
                    break
                d = os.path.dirname(d)

    def __repr__(self) -> str:
        return f"LocalDirStore({self.url!r})"


def open_store(url: str) -> ObjectStore:
    scheme = urlparse(url).scheme
    if scheme == "file":
        return LocalDirStore(url)
    return ObstoreStore(url)
